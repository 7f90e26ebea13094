using System.Diagnostics;
using EdgeQuant.Core.Errors;

namespace EdgeQuant.Runtimes.Evaluation;

/// <summary>How to measure perplexity.</summary>
/// <param name="ContextLength">N: tokens per chunk; each chunk is decoded from an empty cache as one sequence.</param>
/// <param name="MaxChunks">Score at most this many chunks (null: every whole chunk in the text).</param>
public sealed record PerplexityOptions(int ContextLength, int? MaxChunks = null);

/// <summary>After each chunk: how far, and the running perplexity.</summary>
public sealed record PerplexityProgress(int ChunksDone, int ChunkCount, double Perplexity);

/// <summary>The figure and how it was obtained.</summary>
/// <param name="Perplexity">exp(mean NLL).</param>
/// <param name="Uncertainty">llama-perplexity's ±: PPL × the standard error of the mean NLL.</param>
/// <param name="MeanNll">Mean negative log-likelihood per scored token (nats).</param>
/// <param name="ScoredTokens">Tokens whose probability was scored (chunks × (N/2 − 1)).</param>
/// <param name="Chunks">Chunks decoded.</param>
/// <param name="TextTokens">Tokens in the whole text (with BOS when added).</param>
/// <param name="DecodedTokens">Tokens fed to the runner (chunks × N).</param>
/// <param name="Elapsed">Wall time of the chunk loop (decoding and scoring).</param>
/// <param name="RunnerTime">Time the runner reported for its native work.</param>
public sealed record PerplexityResult(
    double Perplexity,
    double Uncertainty,
    double MeanNll,
    int ScoredTokens,
    int Chunks,
    int ContextLength,
    int TextTokens,
    long DecodedTokens,
    TimeSpan Elapsed,
    TimeSpan RunnerTime)
{
    /// <summary>Tokens decoded per second of wall time.</summary>
    public double TokensPerSecond => Elapsed > TimeSpan.Zero ? DecodedTokens / Elapsed.TotalSeconds : double.NaN;
}

/// <summary>
/// Perplexity under llama-perplexity's protocol (tools/perplexity of llama.cpp, <c>-c N -b N</c>), for any
/// <see cref="ILogitsRunner"/>, so every runtime is measured by the same code:
/// <list type="number">
/// <item>the text loses one trailing newline and is tokenized once, with BOS at the start when the vocabulary adds
/// BOS, and no special-token parsing (<see cref="PrepareText"/>; tokenization is the caller's);</item>
/// <item>chunk c is tokens [cN, (c+1)N); only when BOS is added its first token is replaced by BOS (GPT-2-style
/// vocabularies add none, so their chunks start as they are); each chunk starts from an empty cache;</item>
/// <item>the logits at positions i = N/2 … N−2 score token i+1: NLL = logsumexp(logits) − logit[target];</item>
/// <item>PPL = exp(mean NLL); the ± is exp(mean) × sqrt((E[NLL²] − E[NLL]²) / (count − 1)).</item>
/// </list>
/// </summary>
public static class Perplexity
{
    /// <summary>The text as llama-perplexity feeds it to the tokenizer: one trailing newline dropped.</summary>
    public static string PrepareText(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        // llama.cpp's file reader drops exactly one trailing '\n' (a "\r\n" keeps its '\r').
        return text.EndsWith('\n') ? text[..^1] : text;
    }

    /// <param name="runner">The model in some runtime; <see cref="ILogitsRunner.Reset"/> is called before each chunk.</param>
    /// <param name="tokens">The whole text's tokens, BOS included when the vocabulary adds it.</param>
    /// <param name="bosToken">The BOS id when the vocabulary adds BOS (each chunk then starts with it); null otherwise.</param>
    public static PerplexityResult Evaluate(ILogitsRunner runner, ReadOnlySpan<int> tokens, int? bosToken, PerplexityOptions options,
        IProgress<PerplexityProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(runner);
        ArgumentNullException.ThrowIfNull(options);
        int n = options.ContextLength;
        if (n < 4) throw new BadInputException($"context length {n} is too short for perplexity (at least 4: N/2 − 1 tokens are scored per chunk)");
        if (n > runner.ContextLength)
            throw new BadInputException($"context length {n} exceeds what {runner.Name} can hold ({runner.ContextLength})");
        if (options.MaxChunks is <= 0) throw new BadInputException($"--chunks must be positive, not {options.MaxChunks}");
        // llama-perplexity refuses texts shorter than two contexts: too few scored tokens for a meaningful ±.
        if (tokens.Length < 2 * n)
            throw new BadInputException($"the text tokenizes to {tokens.Length} tokens; perplexity with a context of {n} needs at least {2 * n}");
        if (bosToken is { } b && (uint)b >= (uint)runner.VocabSize)
            throw new BadInputException($"BOS token {b} is outside the vocabulary of {runner.VocabSize}");

        for (int i = 0; i < tokens.Length; i++)
        {
            if ((uint)tokens[i] >= (uint)runner.VocabSize)
                throw new BadInputException($"token {tokens[i]} at text position {i} is outside the vocabulary of {runner.VocabSize} ({runner.Name})");
        }

        int chunks = tokens.Length / n;
        if (options.MaxChunks is { } max) chunks = Math.Min(chunks, max);
        int first = n / 2;
        int rows = n - 1 - first;
        int vocab = runner.VocabSize;

        var outputPositions = new int[rows];
        for (int k = 0; k < rows; k++) outputPositions[k] = first + k;
        var logits = new float[checked(rows * vocab)];
        var chunk = new int[n];

        double nll = 0, nll2 = 0;
        long count = 0;
        var runnerTime = TimeSpan.Zero;
        var clock = Stopwatch.StartNew();
        for (int c = 0; c < chunks; c++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var source = tokens.Slice(c * n, n);
            source.CopyTo(chunk);
            if (bosToken is { } bos) chunk[0] = bos;

            runner.Reset();
            runner.Evaluate(chunk, 0, outputPositions, logits);
            runnerTime += runner.LastRunTime;

            for (int k = 0; k < rows; k++)
            {
                // The target comes from the text itself; only position 0 was replaced by BOS.
                int target = source[first + k + 1];
                double v = NegativeLogLikelihood(logits.AsSpan(k * vocab, vocab), target);
                nll += v;
                nll2 += v * v;
            }
            count += rows;
            progress?.Report(new PerplexityProgress(c + 1, chunks, Math.Exp(nll / count)));
        }
        clock.Stop();

        double mean = nll / count;
        double variance = nll2 / count - mean * mean;
        double ppl = Math.Exp(mean);
        double unc = variance > 0 && count > 1 ? ppl * Math.Sqrt(variance / (count - 1)) : double.NaN;
        return new PerplexityResult(ppl, unc, mean, checked((int)count), chunks, n, tokens.Length, (long)chunks * n, clock.Elapsed, runnerTime);
    }

    /// <summary>
    /// logsumexp(logits) − logits[target], computed as llama-perplexity does (max in float, exp in float, sum in
    /// double), so the figure matches its own to the last printed digit.
    /// </summary>
    public static double NegativeLogLikelihood(ReadOnlySpan<float> logits, int target)
    {
        float max = float.NegativeInfinity;
        foreach (var l in logits) if (l > max) max = l;
        double sum = 0;
        foreach (var l in logits) sum += MathF.Exp(l - max);
        return -(logits[target] - max - Math.Log(sum));
    }
}
