using System.Diagnostics;
using EdgeQuant.Core.Errors;
using EdgeQuant.Models;
using EdgeQuant.Models.Engine;
using EdgeQuant.Runtimes.Evaluation;

namespace EdgeQuant.Compression.Imatrix;

/// <summary>How <see cref="ImatrixRunner.Collect"/> walks the text (llama-imatrix's options and defaults).</summary>
public sealed record ImatrixRunOptions
{
    /// <summary>Tokens per chunk (llama-imatrix <c>-c</c>, default 512); also the recorded <c>imatrix.chunk_size</c>.</summary>
    public int Context { get; init; } = 512;

    /// <summary>At most this many chunks (<c>--chunks</c>); null: every whole chunk of the text.</summary>
    public int? Chunks { get; init; }

    /// <summary>Collect the output projection too (<c>--process-output</c>; untied output only, as in llama.cpp).</summary>
    public bool ProcessOutput { get; init; }

    /// <summary>Also compute the perplexity of each chunk's second half, as llama-imatrix does unless <c>--no-ppl</c>.</summary>
    public bool ComputePerplexity { get; init; } = true;

    public int Threads { get; init; } = Environment.ProcessorCount;

    /// <summary>Recorded in <c>imatrix.datasets</c> (llama-imatrix records the <c>-f</c> path as given).</summary>
    public IReadOnlyList<string> Datasets { get; init; } = [];

    /// <summary>The token each chunk starts with; null: the model tokenizer's BOS when it adds one, else none.</summary>
    public int? Bos { get; init; }
}

/// <summary>After each chunk: how far, and the running perplexity (NaN without <see cref="ImatrixRunOptions.ComputePerplexity"/>).</summary>
public readonly record struct ImatrixProgress(int Chunk, int Chunks, double Perplexity, TimeSpan Elapsed);

/// <summary>
/// Collects an importance matrix with the reference engine the way llama-imatrix does (tools/imatrix/imatrix.cpp
/// <c>compute_imatrix</c>): the text's tokens (tokenized with BOS, no special parsing) in chunks of n_ctx, each from an
/// empty KV cache with its first token replaced by BOS when the vocabulary adds one; every token of a chunk is
/// evaluated and feeds every <c>blk.*</c> weight's input; the output projection only with ProcessOutput. Needs at
/// least 2 · n_ctx tokens, as llama-imatrix does.
/// </summary>
public static class ImatrixRunner
{
    /// <summary>llama-imatrix's defaults: logical batch (-b) and physical micro-batch (-ub).</summary>
    internal const int LlamaBatch = 2048, LlamaMicroBatch = 512;

    /// <summary>collect_imatrix declines products over fewer rows than this ("why are small batches ignored?").</summary>
    internal const int MinCollectedRows = 16;

    public static ImportanceMatrix Collect(Model model, IReadOnlyList<int> tokens, ImatrixRunOptions o, IProgress<ImatrixProgress>? progress,
        CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(tokens);
        ArgumentNullException.ThrowIfNull(o);
        int nCtx = o.Context;
        if (nCtx < 2) throw new BadInputException($"--ctx: {nCtx} is too short (at least 2 tokens per chunk)");
        if (o.Chunks is < 1) throw new BadInputException($"--chunks: {o.Chunks} must be positive");
        if (o.Threads < 1) throw new BadInputException($"--threads: {o.Threads} must be positive");
        if (tokens.Count < 2L * nCtx)
            throw new BadInputException($"the text tokenizes to only {tokens.Count} tokens; llama-imatrix needs at least 2 x --ctx = {2L * nCtx}");
        int? bos = o.Bos;
        if (bos is null && model.Tokenizer is not null)
        {
            var tok = Models.Tokenizers.Tokenizer.FromModel(model);
            bos = tok.AddBos ? tok.BosId : null;
        }
        int chunks = tokens.Count / nCtx;
        if (o.Chunks is { } max) chunks = Math.Min(chunks, max);

        var engine = ReferenceEngine.Load(model, new EngineOptions { Threads = o.Threads, MaxBatch = LlamaMicroBatch }, ct);
        // llama.cpp's tied output is token_embd.weight, which collect_imatrix never keeps.
        bool untiedOutput = model.Find("output.weight") is not null;
        var collector = new ImatrixCollector(o.ProcessOutput && untiedOutput);
        using var hook = engine.AddHook(collector);
        var session = engine.CreateSession(nCtx);

        int vocab = engine.VocabSize, first = nCtx / 2;
        bool wantLogits = o.ComputePerplexity || collector.IncludeOutput;
        // With --process-output every row's logits are needed (llama-imatrix asks for all of them); for perplexity alone
        // the scored half is enough.
        int logitStart = collector.IncludeOutput ? 0 : first;
        var logits = wantLogits ? new float[(long)(nCtx - logitStart) * vocab] : [];
        var chunk = new int[nCtx];
        double nll = 0;
        long scored = 0;
        var clock = Stopwatch.StartNew();
        var plan = MicroBatchPlan(nCtx, chunks);
        for (int c = 0; c < chunks; c++)
        {
            ct.ThrowIfCancellationRequested();
            for (int i = 0; i < nCtx; i++) chunk[i] = tokens[c * nCtx + i];
            if (bos is { } b) chunk[0] = b;
            session.Reset();
            foreach (var (start, length, counted) in plan[c])
            {
                collector.Enabled = counted;
                var rows = new List<int>();
                if (wantLogits)
                    for (int i = Math.Max(start, logitStart); i < start + length; i++) rows.Add(i - start);
                var dst = wantLogits ? logits.AsSpan((int)((long)(Math.Max(start, logitStart) - logitStart) * vocab)) : [];
                session.Decode(chunk.AsSpan(start, length), rows.ToArray(), dst, ct);
            }
            collector.Enabled = true;
            if (o.ComputePerplexity)
            {
                for (int i = first; i < nCtx - 1; i++)
                {
                    nll += Perplexity.NegativeLogLikelihood(logits.AsSpan((i - logitStart) * vocab, vocab), tokens[c * nCtx + i + 1]);
                    scored++;
                }
            }
            progress?.Report(new ImatrixProgress(c + 1, chunks, scored > 0 ? Math.Exp(nll / scored) : double.NaN, clock.Elapsed));
        }
        return collector.ToMatrix(o.Datasets, nCtx);
    }

    /// <summary>
    /// Per chunk, the token ranges llama-imatrix's micro-batches cover and whether collect_imatrix keeps them. With
    /// its defaults (-b 2048, -ub 512) it decodes n_seq = max(1, 2048 / n_ctx) chunks per batch as parallel
    /// sequences; the KV cache (one stream per sequence) splits such a batch into micro-batches holding the same
    /// max(1, 512 / n_seq) positions of every sequence (one sequence: 512 positions), and a micro-batch of fewer
    /// than 16 tokens in all is not collected. Only the tail of a chunk can fall in one.
    /// </summary>
    public static List<(int Start, int Length, bool Counted)>[] MicroBatchPlan(int nCtx, int chunks)
    {
        int nSeq = Math.Max(1, LlamaBatch / nCtx);
        var plan = new List<(int, int, bool)>[chunks];
        for (int g = 0; g < chunks; g += nSeq)
        {
            int seqs = Math.Min(nSeq, chunks - g);
            int step = seqs == 1 ? LlamaMicroBatch : Math.Max(1, LlamaMicroBatch / seqs);
            var ranges = new List<(int Start, int Length, bool Counted)>();
            for (int s = 0; s < nCtx; s += step)
            {
                int len = Math.Min(step, nCtx - s);
                bool counted = (long)len * seqs >= MinCollectedRows;
                // Neighbouring ranges with the same verdict are decoded together (fewer, larger products).
                if (ranges.Count > 0 && ranges[^1].Counted == counted)
                    ranges[^1] = (ranges[^1].Start, ranges[^1].Length + len, counted);
                else ranges.Add((s, len, counted));
            }
            for (int c = g; c < g + seqs; c++) plan[c] = ranges;
        }
        return plan;
    }
}
