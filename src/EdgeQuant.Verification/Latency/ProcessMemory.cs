namespace EdgeQuant.Verification.Latency;

/// <summary>
/// Resident memory from the kernel's own counters (<c>/proc/self/status</c>). These are process-wide: they include
/// the .NET runtime, every library loaded and whatever else the process allocated, not only the model.
/// </summary>
public static class ProcessMemory
{
    /// <summary>Peak resident set size (VmHWM) in bytes, or null where /proc is unavailable.</summary>
    public static long? PeakRssBytes() => ReadStatusKb("VmHWM") is { } kb ? kb * 1024 : null;

    /// <summary>Current resident set size (VmRSS) in bytes, or null where /proc is unavailable.</summary>
    public static long? CurrentRssBytes() => ReadStatusKb("VmRSS") is { } kb ? kb * 1024 : null;

    /// <summary>
    /// Resets VmHWM to the current RSS (writing 5 to <c>/proc/self/clear_refs</c>, Linux 4.0+), so a later
    /// <see cref="PeakRssBytes"/> covers only what followed. False when the kernel or a sandbox refuses.
    /// </summary>
    public static bool TryResetPeak()
    {
        try
        {
            File.WriteAllText("/proc/self/clear_refs", "5");
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException)
        {
            return false;
        }
    }

    /// <summary>One "Name:   1234 kB" field of a status file's text (for tests), or null.</summary>
    public static long? ParseStatusKb(string status, string field)
    {
        foreach (var line in status.Split('\n'))
        {
            if (!line.StartsWith(field, StringComparison.Ordinal) || line.Length <= field.Length || line[field.Length] != ':') continue;
            var value = line[(field.Length + 1)..].Trim();
            if (value.EndsWith("kB", StringComparison.Ordinal)) value = value[..^2].Trim();
            return long.TryParse(value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out long kb) ? kb : null;
        }
        return null;
    }

    private static long? ReadStatusKb(string field)
    {
        try
        {
            return File.Exists("/proc/self/status") ? ParseStatusKb(File.ReadAllText("/proc/self/status"), field) : null;
        }
        catch (IOException)
        {
            return null;
        }
    }
}
