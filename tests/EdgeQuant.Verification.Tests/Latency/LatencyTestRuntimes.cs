using EdgeQuant.Runtimes;
using EdgeQuant.Testing;

namespace EdgeQuant.Verification.Tests.Latency;

/// <summary>
/// Native runtimes for the latency tests. Builds with an artifacts path outside the tree cannot find
/// <c>runtimes/</c> by walking up from their binaries, so <c>EDGEQUANT_RUNTIMES</c> is pointed at the repository's
/// folder when unset. A missing runtime or data file skips locally and fails under CI=true.
/// </summary>
internal static class LatencyTestRuntimes
{
    private static readonly Lock Gate = new();
    private static bool _configured;

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

    public static string? SkipReason(NativeLibraryInfo library, string[] sharedFiles)
    {
        Configure();
        if (SharedData.IsCi) return null;
        try
        {
            NativeLibraryResolver.LoadShared(library);
        }
        catch (RuntimeNotFoundException e)
        {
            return $"{e.Message} (under CI=true this test fails instead)";
        }
        foreach (var f in sharedFiles)
        {
            var p = SharedData.PathOf(f);
            if (!File.Exists(p) && !Directory.Exists(p))
                return $"shared test data not found: {p} (set EDGEQUANT_SHARED_DATA; under CI=true this fails instead)";
        }
        return null;
    }
}

/// <summary>A fact needing llama.cpp and shared files.</summary>
public sealed class LatencyLlamaCppFactAttribute : FactAttribute
{
    public LatencyLlamaCppFactAttribute(params string[] sharedFiles) =>
        Skip = LatencyTestRuntimes.SkipReason(NativeLibraries.LlamaCpp, sharedFiles);
}

/// <summary>A fact needing ONNX Runtime and shared files.</summary>
public sealed class LatencyOnnxRuntimeFactAttribute : FactAttribute
{
    public LatencyOnnxRuntimeFactAttribute(params string[] sharedFiles) =>
        Skip = LatencyTestRuntimes.SkipReason(NativeLibraries.OnnxRuntime, sharedFiles);
}
