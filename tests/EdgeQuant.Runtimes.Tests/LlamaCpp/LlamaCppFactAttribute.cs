using EdgeQuant.Runtimes.LlamaCpp;
using EdgeQuant.Testing;

namespace EdgeQuant.Runtimes.Tests.LlamaCpp;

/// <summary>
/// A fact that needs the llama.cpp runtime (and optionally shared data files). Skipped with the numbered reason when
/// either is missing on a developer machine; under CI=true it runs anyway, so a missing runtime fails the test.
/// </summary>
public sealed class LlamaCppFactAttribute : FactAttribute
{
    public LlamaCppFactAttribute(params string[] sharedFiles)
    {
        if (SharedData.IsCi) return;
        if (LlamaCppAvailability.SkipReason is { } reason) Skip = reason;
        else if (sharedFiles.Select(SharedData.PathOf).FirstOrDefault(p => !File.Exists(p)) is { } missing)
            Skip = $"shared test data not found: {missing} (set EDGEQUANT_SHARED_DATA; under CI=true this fails instead)";
    }
}

internal static class LlamaCppAvailability
{
    private static readonly Lazy<string?> Reason = new(() =>
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

    public static string? SkipReason => Reason.Value;
}

/// <summary>Paths of the shared files these tests use.</summary>
internal static class LlamaTestData
{
    public const string Stories260K = "models/stories260K/stories260K.gguf";
    public const string TinyStories = "corpus/tinystories-sample.txt";
}
