using EdgeQuant.Runtimes;
using EdgeQuant.Runtimes.OnnxRuntime;
using EdgeQuant.Testing;

namespace EdgeQuant.Cli.Tests.Eval;

/// <summary>
/// A fact needing ONNX Runtime and shared data files: skipped with the reason on a developer machine that lacks
/// either, run (and so failed) under CI=true.
/// </summary>
public sealed class OnnxRuntimeFactAttribute : FactAttribute
{
    private static readonly Lazy<string?> RuntimeMissing = new(() =>
    {
        try
        {
            _ = OrtEnvironment.Version;
            return null;
        }
        catch (RuntimeNotFoundException e)
        {
            return $"ONNX Runtime unavailable: {e.Message} (under CI=true this fails instead)";
        }
    });

    public OnnxRuntimeFactAttribute(params string[] sharedFiles)
    {
        if (SharedData.IsCi) return;
        if (RuntimeMissing.Value is { } reason) Skip = reason;
        else if (sharedFiles.Select(SharedData.PathOf).FirstOrDefault(p => !File.Exists(p)) is { } missing)
            Skip = $"shared test data not found: {missing} (set EDGEQUANT_SHARED_DATA; under CI=true this fails instead)";
    }
}
