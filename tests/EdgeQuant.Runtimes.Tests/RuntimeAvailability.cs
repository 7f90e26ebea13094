using EdgeQuant.Runtimes;
using EdgeQuant.Testing;

namespace EdgeQuant.Runtimes.Tests;

/// <summary>
/// Whether the native runtimes can be loaded in this test run. Tests built with an artifacts path outside the
/// tree cannot find <c>runtimes/</c> by walking up from their binaries, so when <c>EDGEQUANT_RUNTIMES</c> is unset
/// this points it at the repository's <c>runtimes/</c> folder (the layout <c>make runtimes</c> makes).
/// A missing runtime skips a test with the numbered message as the reason, except under CI=true, where the
/// test runs and fails with that message.
/// </summary>
public static class RuntimeAvailability
{
    private static readonly object Gate = new();
    private static bool _configured;

    /// <summary>Points <c>EDGEQUANT_RUNTIMES</c> at the repository's runtimes folder when unset (idempotent).</summary>
    public static void Configure()
    {
        lock (Gate)
        {
            if (_configured) return;
            _configured = true;
            if (string.IsNullOrEmpty(Environment.GetEnvironmentVariable(NativeLibraryResolver.EnvironmentVariable)))
            {
                var runtimes = Path.Combine(SharedData.RepoRoot, "runtimes");
                if (Directory.Exists(runtimes)) Environment.SetEnvironmentVariable(NativeLibraryResolver.EnvironmentVariable, runtimes);
            }
        }
    }

    /// <summary>The library loaded (configuring first); throws the numbered <see cref="RuntimeNotFoundException"/> when missing.</summary>
    public static LoadedNativeLibrary Require(NativeLibraryInfo library)
    {
        Configure();
        return NativeLibraryResolver.LoadShared(library);
    }

    /// <summary>A skip reason when the library is missing and we are not in CI; null otherwise.</summary>
    public static string? SkipReason(NativeLibraryInfo library)
    {
        if (SharedData.IsCi) return null;
        try
        {
            Require(library);
            return null;
        }
        catch (RuntimeNotFoundException e)
        {
            return $"{e.Message} (under CI=true this test fails instead)";
        }
    }

    internal static string? SharedDataSkipReason(string[] relatives)
    {
        if (SharedData.IsCi) return null;
        foreach (var r in relatives)
        {
            var p = SharedData.PathOf(r);
            if (!File.Exists(p) && !Directory.Exists(p))
                return $"shared test data not found: {p} (set EDGEQUANT_SHARED_DATA; under CI=true this fails instead)";
        }
        return null;
    }
}

/// <summary>A fact needing ONNX Runtime (and optionally shared data files): skipped locally when missing, failed under CI=true.</summary>
public sealed class OnnxRuntimeFactAttribute : FactAttribute
{
    public OnnxRuntimeFactAttribute(params string[] sharedFiles)
    {
        Skip = RuntimeAvailability.SkipReason(NativeLibraries.OnnxRuntime) ?? RuntimeAvailability.SharedDataSkipReason(sharedFiles);
    }
}
