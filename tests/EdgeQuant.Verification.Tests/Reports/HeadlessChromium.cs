using System.Diagnostics;
using System.IO.Compression;
using EdgeQuant.Runtimes;
using EdgeQuant.Testing;
using EdgeQuant.Verification.Tests.Latency;
using Xunit;

namespace EdgeQuant.Verification.Tests.Reports;

/// <summary>
/// Runs Debian's <c>chromium</c> headless for the browser check of <c>report.html</c>. Every run gets its own
/// profile, HOME and XDG folders (Chromium writes there, and parallel runs must not share a profile lock), a time
/// limit, and on timeout the whole process tree is killed (Chromium forks zygote/renderer children).
/// </summary>
internal static class HeadlessChromium
{
    /// <summary>Generous: a cold start on the loaded 2-core CI machine can take tens of seconds.</summary>
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(120);

    private static readonly string[] Names = ["chromium", "chromium-browser"];

    /// <summary>The browser executable: <c>EDGEQUANT_CHROMIUM</c> when set, else the first of the names on PATH.</summary>
    public static string? Find()
    {
        if (Environment.GetEnvironmentVariable("EDGEQUANT_CHROMIUM") is { Length: > 0 } env) return File.Exists(env) ? env : null;
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
            foreach (var name in Names)
            {
                var p = Path.Combine(dir, name);
                if (File.Exists(p)) return p;
            }
        return null;
    }

    public static string? SkipReason()
    {
        if (SharedData.IsCi || Find() is not null) return null;
        return "chromium not found (EDGEQUANT_CHROMIUM, or chromium on PATH: tools/install-test-deps.sh installs Debian's; under CI=true this test fails instead)";
    }

    public sealed record Result(int ExitCode, string Stdout, string Stderr, TimeSpan Elapsed);

    /// <summary>Runs <c>chromium --headless ... EXTRA URL</c> in <paramref name="workDir"/> (which must be writable).</summary>
    public static Result Run(string workDir, string url, params string[] extra)
    {
        var exe = Find() ?? throw new InvalidOperationException("chromium not found (set EDGEQUANT_CHROMIUM, or run tools/install-test-deps.sh)");
        var home = Directory.CreateDirectory(Path.Combine(workDir, "home")).FullName;
        var profile = Directory.CreateDirectory(Path.Combine(workDir, $"profile-{Guid.NewGuid():N}")).FullName;
        var psi = new ProcessStartInfo(exe)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workDir,
        };
        foreach (var a in (string[])["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                     "--no-default-browser-check", "--disable-extensions", "--disable-breakpad", "--hide-scrollbars", "--mute-audio",
                     $"--user-data-dir={profile}"])
            psi.ArgumentList.Add(a);
        foreach (var a in extra) psi.ArgumentList.Add(a);
        psi.ArgumentList.Add(url);
        psi.Environment["HOME"] = home;
        psi.Environment["XDG_CONFIG_HOME"] = Directory.CreateDirectory(Path.Combine(home, ".config")).FullName;
        psi.Environment["XDG_CACHE_HOME"] = Directory.CreateDirectory(Path.Combine(home, ".cache")).FullName;
        psi.Environment["XDG_DATA_HOME"] = Directory.CreateDirectory(Path.Combine(home, ".local", "share")).FullName;

        var sw = Stopwatch.StartNew();
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {exe}");
        // Read both pipes concurrently: --dump-dom prints the whole page, more than a pipe buffer holds.
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        bool exited = p.WaitForExit(Timeout);
        // Children can keep the pipes open after the main process is gone; do not wait on them forever either.
        var left = Timeout - sw.Elapsed;
        bool drained = exited && Task.WaitAll([stdout, stderr], left > TimeSpan.FromSeconds(5) ? left : TimeSpan.FromSeconds(5));
        if (!exited || !drained)
        {
            try { p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { } catch (System.ComponentModel.Win32Exception) { }
            p.WaitForExit(10_000);
            string err = stderr.IsCompleted ? stderr.Result : "(stderr not drained)";
            throw new TimeoutException($"chromium did not finish within {Timeout.TotalSeconds:F0} s (killed the process tree): {Tail(err)}");
        }
        return new Result(p.ExitCode, stdout.Result, stderr.Result, sw.Elapsed);
    }

    public static string Tail(string s, int chars = 2000) => s.Length <= chars ? s : "..." + s[^chars..];
}

/// <summary>A fact needing llama.cpp, shared files (for the real report) and chromium; skipped locally, failed under CI=true.</summary>
public sealed class BrowserReportFactAttribute : FactAttribute
{
    public BrowserReportFactAttribute(params string[] sharedFiles) =>
        Skip = LatencyTestRuntimes.SkipReason(NativeLibraries.LlamaCpp, sharedFiles) ?? HeadlessChromium.SkipReason();
}

/// <summary>
/// A minimal PNG reader written for the screenshot check (signature, chunk CRCs, IHDR, zlib-inflated IDAT, the five
/// row filters), 8-bit non-interlaced grey/RGB/RGBA only, which is what Chromium writes. Anything else is refused.
/// </summary>
internal sealed class PngImage
{
    private static readonly byte[] Signature = [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];
    private static readonly uint[] CrcTable = MakeCrcTable();

    public int Width { get; private init; }
    public int Height { get; private init; }
    public int Channels { get; private init; }
    /// <summary>Unfiltered rows, <see cref="Channels"/> bytes per pixel, no filter bytes.</summary>
    public byte[] Pixels { get; private init; } = [];

    public static PngImage Decode(byte[] png)
    {
        if (png.Length < Signature.Length || !png.AsSpan(0, Signature.Length).SequenceEqual(Signature)) throw new InvalidDataException("not a PNG: bad signature");
        int pos = Signature.Length, width = 0, height = 0, channels = 0;
        bool seenEnd = false;
        using var idat = new MemoryStream();
        while (pos + 12 <= png.Length && !seenEnd)
        {
            uint len = BigEndian(png, pos);
            if (len > (uint)(png.Length - pos - 12)) throw new InvalidDataException($"PNG chunk at byte {pos}: length {len} runs past the end");
            string type = System.Text.Encoding.ASCII.GetString(png, pos + 4, 4);
            var data = png.AsSpan(pos + 8, (int)len);
            uint crc = Crc(png.AsSpan(pos + 4, 4 + (int)len));
            if (crc != BigEndian(png, pos + 8 + (int)len)) throw new InvalidDataException($"PNG chunk {type} at byte {pos}: CRC mismatch");
            switch (type)
            {
                case "IHDR":
                    if (len != 13) throw new InvalidDataException("PNG IHDR: length is not 13");
                    width = checked((int)BigEndian(png, pos + 8));
                    height = checked((int)BigEndian(png, pos + 12));
                    byte depth = data[8], colour = data[9], interlace = data[12];
                    if (depth != 8 || interlace != 0) throw new InvalidDataException($"PNG: bit depth {depth}, interlace {interlace} not supported");
                    channels = colour switch { 0 => 1, 2 => 3, 4 => 2, 6 => 4, _ => throw new InvalidDataException($"PNG: colour type {colour} not supported") };
                    if (width <= 0 || height <= 0 || (long)width * height > 64L << 20) throw new InvalidDataException($"PNG: size {width}x{height} out of range");
                    break;
                case "IDAT": idat.Write(data); break;
                case "IEND": seenEnd = true; break;
            }
            pos += 12 + (int)len;
        }
        if (channels == 0) throw new InvalidDataException("PNG: no IHDR");
        if (!seenEnd) throw new InvalidDataException("PNG: no IEND (truncated)");
        int stride = width * channels;
        var raw = new byte[(long)(stride + 1) * height];
        idat.Position = 0;
        using (var z = new ZLibStream(idat, CompressionMode.Decompress))
        {
            z.ReadExactly(raw);
            if (z.ReadByte() != -1) throw new InvalidDataException("PNG: more image data than the size says");
        }
        var pixels = new byte[(long)stride * height];
        for (int y = 0; y < height; y++)
        {
            byte filter = raw[(long)y * (stride + 1)];
            var src = raw.AsSpan(y * (stride + 1) + 1, stride);
            var cur = pixels.AsSpan(y * stride, stride);
            ReadOnlySpan<byte> prev = y == 0 ? new byte[stride] : pixels.AsSpan((y - 1) * stride, stride);
            for (int i = 0; i < stride; i++)
            {
                int a = i >= channels ? cur[i - channels] : 0, b = prev[i], c = i >= channels ? prev[i - channels] : 0;
                int pred = filter switch
                {
                    0 => 0,
                    1 => a,
                    2 => b,
                    3 => (a + b) >> 1,
                    4 => Paeth(a, b, c),
                    _ => throw new InvalidDataException($"PNG row {y}: filter type {filter}"),
                };
                cur[i] = (byte)(src[i] + pred);
            }
        }
        return new PngImage { Width = width, Height = height, Channels = channels, Pixels = pixels };
    }

    /// <summary>The pixel at (x, y) as 0xRRGGBB (grey expanded; alpha ignored).</summary>
    public int Rgb(int x, int y)
    {
        int o = (y * Width + x) * Channels;
        return Channels >= 3 ? (Pixels[o] << 16) | (Pixels[o + 1] << 8) | Pixels[o + 2] : Pixels[o] * 0x010101;
    }

    private static int Paeth(int a, int b, int c)
    {
        int p = a + b - c, pa = Math.Abs(p - a), pb = Math.Abs(p - b), pc = Math.Abs(p - c);
        return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
    }

    private static uint BigEndian(byte[] b, int o) => (uint)(b[o] << 24 | b[o + 1] << 16 | b[o + 2] << 8 | b[o + 3]);

    private static uint Crc(ReadOnlySpan<byte> s)
    {
        uint c = 0xFFFFFFFF;
        foreach (var x in s) c = CrcTable[(c ^ x) & 0xFF] ^ (c >> 8);
        return c ^ 0xFFFFFFFF;
    }

    private static uint[] MakeCrcTable()
    {
        var t = new uint[256];
        for (uint n = 0; n < 256; n++)
        {
            uint c = n;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320 ^ (c >> 1) : c >> 1;
            t[n] = c;
        }
        return t;
    }
}
