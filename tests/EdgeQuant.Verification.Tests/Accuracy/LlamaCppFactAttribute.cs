using EdgeQuant.Runtimes;
using EdgeQuant.Runtimes.LlamaCpp;
using EdgeQuant.Testing;

namespace EdgeQuant.Verification.Tests.Accuracy;

/// <summary>
/// A fact needing the llama.cpp runtime and shared data files: skipped with the reason on a developer machine that
/// lacks either, run (and so failed) under CI=true.
/// </summary>
public sealed class LlamaCppFactAttribute : FactAttribute
{
    private static readonly Lazy<string?> RuntimeMissing = new(() =>
    {
        try
        {
            LlamaLibrary.EnsureInitialized();
            return null;
        }
        catch (RuntimeNotFoundException e)
        {
            return $"llama.cpp runtime unavailable: {e.Message} (under CI=true this fails instead)";
        }
    });

    public LlamaCppFactAttribute(params string[] sharedFiles)
    {
        if (SharedData.IsCi) return;
        if (RuntimeMissing.Value is { } reason) Skip = reason;
        else if (sharedFiles.Select(SharedData.PathOf).FirstOrDefault(p => !File.Exists(p)) is { } missing)
            Skip = $"shared test data not found: {missing} (set EDGEQUANT_SHARED_DATA; under CI=true this fails instead)";
    }
}
