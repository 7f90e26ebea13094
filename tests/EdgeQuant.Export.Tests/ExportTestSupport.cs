using EdgeQuant.Runtimes;
using EdgeQuant.Runtimes.LlamaCpp;
using EdgeQuant.Testing;

namespace EdgeQuant.Export.Tests;

/// <summary>Needs the llama.cpp runtime (make runtimes) and optionally shared data: skipped when missing, failed under CI=true.</summary>
public sealed class LlamaCppExportFactAttribute : FactAttribute
{
    public LlamaCppExportFactAttribute(params string[] sharedFiles)
    {
        if (SharedData.IsCi) return;
        if (LlamaRuntime.SkipReason is { } reason) Skip = reason;
        else if (sharedFiles.Select(SharedData.PathOf).FirstOrDefault(p => !File.Exists(p)) is { } missing)
            Skip = $"shared test data not found: {missing} (set EDGEQUANT_SHARED_DATA; under CI=true this fails instead)";
    }
}

public sealed class LlamaCppExportTheoryAttribute : TheoryAttribute
{
    public LlamaCppExportTheoryAttribute()
    {
        if (!SharedData.IsCi && LlamaRuntime.SkipReason is { } reason) Skip = reason;
    }
}

internal static class LlamaRuntime
{
    private static readonly Lazy<string?> Reason = new(() =>
    {
        Configure();
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

    /// <summary>Tests built into an artifacts path outside the tree cannot find runtimes/ by walking up from their binaries.</summary>
    public static void Configure()
    {
        if (!string.IsNullOrEmpty(Environment.GetEnvironmentVariable(NativeLibraryResolver.EnvironmentVariable))) return;
        var runtimes = Path.Combine(SharedData.RepoRoot, "runtimes");
        if (Directory.Exists(runtimes)) Environment.SetEnvironmentVariable(NativeLibraryResolver.EnvironmentVariable, runtimes);
    }

    /// <summary>llama.cpp's logits for every position of <paramref name="tokens"/> (full precision context, one batch).</summary>
    public static float[] Logits(string gguf, int[] tokens)
    {
        Configure();
        using var runner = LlamaCppRunner.Open(gguf, LlamaContextOptions.FullPrecision(tokens.Length, threads: 2));
        var logits = new float[tokens.Length * runner.VocabSize];
        runner.Evaluate(tokens, 0, Enumerable.Range(0, tokens.Length).ToArray(), logits);
        return logits;
    }
}

internal static class Numbers
{
    public static double RelativeL2(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected)
    {
        Assert.Equal(expected.Length, actual.Length);
        double num = 0, den = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            double d = (double)actual[i] - expected[i];
            num += d * d;
            den += (double)expected[i] * expected[i];
        }
        return Math.Sqrt(num / den);
    }

    public static int[] RandomTokens(int count, int vocab, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => rng.Next(vocab)).ToArray();
    }
}
