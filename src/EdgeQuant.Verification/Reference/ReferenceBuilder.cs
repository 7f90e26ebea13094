using System.Diagnostics;
using EdgeQuant.Core.Errors;
using EdgeQuant.Runtimes;
using EdgeQuant.Runtimes.Evaluation;
using EdgeQuant.Verification.Accuracy;

namespace EdgeQuant.Verification.Reference;

/// <summary>How to build a reference.</summary>
/// <param name="ContextLength">n_ctx: tokens per chunk.</param>
/// <param name="MaxChunks">At most this many chunks (null: every whole chunk of the text).</param>
/// <param name="TopK">Store the top K per position instead of the full 16-bit distribution.</param>
/// <param name="ModelName">Stored in the header for reports (a file name, not a path).</param>
public sealed record ReferenceBuildOptions(int ContextLength, int? MaxChunks, int? TopK, string ModelName, byte[] ModelSha256, byte[] TextSha256);

/// <param name="Perplexity">The reference model's own perplexity from its float logits (llama-perplexity's figure).</param>
public sealed record ReferenceBuildResult(string Path, long FileBytes, ReferenceHeader Header, double Perplexity, double PerplexityUnc,
    TimeSpan Elapsed)
{
    public double BytesPerScoredToken => (double)FileBytes / Header.ScoredPositions;
}

/// <summary>
/// Runs the reference model once over the text in llama-perplexity's chunks and writes what a device needs to
/// measure drift without it (<see cref="ReferenceWriter"/>).
/// </summary>
public static class ReferenceBuilder
{
    /// <param name="tokens">The whole text's tokens, BOS included when the vocabulary adds it.</param>
    /// <param name="bos">BOS id each chunk starts with, null when the vocabulary adds none.</param>
    public static ReferenceBuildResult Build(ILogitsRunner runner, ReadOnlySpan<int> tokens, int? bos, ReferenceBuildOptions options,
        string outputPath, IProgress<(int Done, int Total)>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(runner);
        ArgumentNullException.ThrowIfNull(options);
        int n = options.ContextLength;
        if (n is < 4 or > ReferenceFormat.MaxContext) throw new BadInputException($"--ctx: {n} is outside 4..{ReferenceFormat.MaxContext}");
        if (n > runner.ContextLength) throw new BadInputException($"--ctx: {n} exceeds what {runner.Name} can hold ({runner.ContextLength})");
        if (options.MaxChunks is < 1) throw new BadInputException($"--chunks: {options.MaxChunks} must be positive");
        int vocab = runner.VocabSize;
        if (options.TopK is { } tk && (tk < 1 || tk > Math.Min(vocab, ReferenceFormat.MaxTopK)))
            throw new BadInputException($"--top-k: {tk} is outside 1..{Math.Min(vocab, ReferenceFormat.MaxTopK)} (the vocabulary has {vocab} tokens)");
        // As llama-perplexity: fewer than two contexts of text is refused.
        if (tokens.Length < 2 * n)
            throw new BadInputException($"the text tokenizes to {tokens.Length} tokens; a reference with a context of {n} needs at least {2 * n}");
        if (bos is { } b && (uint)b >= (uint)vocab) throw new BadInputException($"BOS token {b} is outside the vocabulary of {vocab}");
        for (int i = 0; i < tokens.Length; i++)
        {
            if ((uint)tokens[i] >= (uint)vocab)
                throw new BadInputException($"token {tokens[i]} at text position {i} is outside the vocabulary of {vocab} ({runner.Name})");
        }
        int chunks = Math.Min(tokens.Length / n, Math.Min(options.MaxChunks ?? int.MaxValue, ReferenceFormat.MaxChunks));
        int first = ReferenceFormat.FirstScored(n), rows = ReferenceFormat.ScoredPerChunk(n);
        if ((long)chunks * rows < KldAccumulator.MinimumScored)
            throw new BadInputException($"{chunks} chunks of {n} score only {(long)chunks * rows} tokens; verification needs at least {KldAccumulator.MinimumScored} (raise --chunks or --ctx)");

        var header = new ReferenceHeader(options.TopK is null ? ReferenceMode.Full : ReferenceMode.TopK, vocab, n, chunks, options.TopK ?? 0,
            bos, tokens.Length, options.ModelSha256, options.TextSha256, options.ModelName);
        var outputs = new int[rows];
        for (int k = 0; k < rows; k++) outputs[k] = first + k;
        var logits = new float[checked(rows * vocab)];
        var chunk = new int[n];
        double nll = 0, nll2 = 0;
        var clock = Stopwatch.StartNew();
        using var writer = new ReferenceWriter(outputPath, header, tokens[..(chunks * n)]);
        for (int c = 0; c < chunks; c++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var source = tokens.Slice(c * n, n);
            source.CopyTo(chunk);
            if (bos is { } bosId) chunk[0] = bosId;
            runner.Reset();
            runner.Evaluate(chunk, 0, outputs, logits);
            for (int k = 0; k < rows; k++)
            {
                var row = logits.AsSpan(k * vocab, vocab);
                int target = source[first + k + 1];
                writer.Add(row, target);
                double v = Perplexity.NegativeLogLikelihood(row, target);
                nll += v;
                nll2 += v * v;
            }
            progress?.Report((c + 1, chunks));
        }
        long bytes = writer.Complete();
        clock.Stop();
        long count = (long)chunks * rows;
        var (mean, unc) = KldAccumulator.MeanAndUncertainty(nll, nll2, count);
        double ppl = Math.Exp(mean);
        return new ReferenceBuildResult(Path.GetFullPath(outputPath), bytes, header, ppl, ppl * unc, clock.Elapsed);
    }
}
