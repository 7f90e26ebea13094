using System.Diagnostics;
using System.Globalization;
using EdgeQuant.Core.Errors;
using EdgeQuant.Runtimes;
using EdgeQuant.Verification.Reference;
using EdgeQuant.Verification.Reports;

namespace EdgeQuant.Verification.Accuracy;

/// <summary>After each chunk: how far, and the running mean KLD.</summary>
public sealed record DriftProgress(int ChunksDone, int ChunkCount, double MeanKld);

/// <summary>
/// Runs a candidate model on exactly the reference's chunks, as llama-perplexity's KLD mode does (each chunk from
/// an empty cache, its first token replaced by BOS when the reference's vocabulary adds one, positions
/// n_ctx/2 … n_ctx−2 scored against the token after each), and compares its logits with the stored distributions.
/// </summary>
public static class DriftEvaluator
{
    /// <param name="candidate">Any runtime's runner; <see cref="ILogitsRunner.Reset"/> is called before each chunk.</param>
    /// <param name="maxChunks">Use only the first chunks of the reference (null: all).</param>
    public static AccuracyReport Evaluate(ILogitsRunner candidate, ReferenceFile reference, int? maxChunks = null,
        IProgress<DriftProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(candidate);
        ArgumentNullException.ThrowIfNull(reference);
        var h = reference.Header;
        if (candidate.VocabSize != h.NVocab)
            throw new BadInputException($"{reference.Path}: the reference has a vocabulary of {h.NVocab} tokens but {candidate.Name} has {candidate.VocabSize}; " +
                "the candidate must share the reference model's tokenizer");
        if (candidate.ContextLength < h.NCtx)
            throw new BadInputException($"{reference.Path}: chunks of {h.NCtx} tokens do not fit {candidate.Name}'s context of {candidate.ContextLength}");
        if (maxChunks is < 1) throw new BadInputException($"--chunks must be positive, not {maxChunks}");
        int chunks = Math.Min(h.NChunks, maxChunks ?? int.MaxValue);
        int n = h.NCtx, first = h.FirstScored, rows = h.ScoredPerChunk, vocab = h.NVocab;

        var outputs = new int[rows];
        for (int k = 0; k < rows; k++) outputs[k] = first + k;
        var logits = new float[checked(rows * vocab)];
        var chunk = new int[n];
        var acc = new KldAccumulator();
        var clock = Stopwatch.StartNew();
        for (int c = 0; c < chunks; c++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var source = reference.ChunkTokens(c);
            source.CopyTo(chunk);
            if (h.Bos is { } bos) chunk[0] = bos;
            candidate.Reset();
            candidate.Evaluate(chunk, 0, outputs, logits);
            for (int k = 0; k < rows; k++)
            {
                var row = logits.AsSpan(k * vocab, vocab);
                CheckFinite(row, candidate, c, first + k);
                // The target is the text's own token; only position 0 was replaced by BOS.
                int target = source[first + k + 1];
                if (h.Mode == ReferenceMode.Full) acc.AddFull(row, target, reference.Full(c, k));
                else acc.AddTopK(row, target, reference.TopK(c, k));
            }
            progress?.Report(new DriftProgress(c + 1, chunks, acc.MeanKld));
        }
        clock.Stop();
        return acc.Finish(chunks, n, rows, h.Mode == ReferenceMode.TopK ? TopKNote(h.TopK) : null, clock.Elapsed.TotalSeconds);
    }

    /// <summary>What a report says about a top-K reference's figures.</summary>
    public static string TopKNote(int k) =>
        $"top-{k.ToString(CultureInfo.InvariantCulture)} reference: KLD over the most likely reference tokens plus one bucket for all others " +
        "(a lower bound of the full KLD); PPL, Δp and same-top are exact";

    private static void CheckFinite(ReadOnlySpan<float> row, ILogitsRunner runner, int chunk, int position)
    {
        foreach (var l in row)
        {
            // A NaN would silently poison every sum; a broken candidate is a finding, stated where it shows.
            if (float.IsNaN(l) || float.IsPositiveInfinity(l))
                throw new InternalFailureException($"{runner.Name} produced a non-finite logit ({l}) at chunk {chunk}, position {position}");
        }
    }
}
