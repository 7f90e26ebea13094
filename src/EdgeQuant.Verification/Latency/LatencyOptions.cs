using EdgeQuant.Core.Errors;

namespace EdgeQuant.Verification.Latency;

/// <summary>
/// What the latency probe runs. Defaults follow llama-bench's habits (a full-context prompt batch, a fixed number of
/// greedy tokens) with a short untimed warm-up; see <see cref="LatencyProbe"/> for the protocol.
/// </summary>
public sealed record LatencyOptions
{
    /// <summary>Context length (n_ctx) of the runner; the prefill figure is one batch of this many tokens.</summary>
    public int ContextSize { get; init; } = 512;

    /// <summary>Single-token decode steps timed after the prompt (the per-token latency samples).</summary>
    public int DecodeTokens { get; init; } = 128;

    /// <summary>Prompt length for time to first token and the decode run; null: min(n_ctx / 2, n_ctx − <see cref="DecodeTokens"/>).</summary>
    public int? PromptLength { get; init; }

    /// <summary>
    /// Token ids to use as the prompt (and, repeated, as the prefill batch); e.g. the reference's tokens, so latency is
    /// measured on real text. Null: seeded pseudo-random ids (latency does not depend on which ids are fed).
    /// When given, the prompt is exactly these tokens unless <see cref="PromptLength"/> is set.
    /// </summary>
    public IReadOnlyList<int>? PromptTokens { get; init; }

    /// <summary>Seed of the synthetic prompt (decoding itself is greedy, so it needs no seed).</summary>
    public int Seed { get; init; } = 42;

    /// <summary>Worker threads of the runtime (llama.cpp n_threads and n_threads_batch, ORT intra-op, engine workers).</summary>
    public int Threads { get; init; } = Environment.ProcessorCount;

    /// <summary>Timed prefill batches (each from an empty cache); the figure is their median.</summary>
    public int PrefillRuns { get; init; } = 3;

    /// <summary>Untimed single-token steps (from an empty cache) after the untimed warm-up prefill.</summary>
    public int WarmupDecodeTokens { get; init; } = 8;

    /// <summary>
    /// Reset the kernel's peak-RSS counter (VmHWM, through <c>/proc/self/clear_refs</c>) before loading, so the peak
    /// covers the probe rather than everything the process did before. Off when another measurement in the same
    /// process must keep its peak.
    /// </summary>
    public bool ResetPeakRss { get; init; } = true;

    internal void Validate()
    {
        if (ContextSize < 2) throw new BadInputException($"latency: context size {ContextSize} is too small (at least 2)");
        if (DecodeTokens < 1) throw new BadInputException($"latency: decode tokens {DecodeTokens} must be positive");
        if (Threads is < 1 or > 1024) throw new BadInputException($"latency: threads {Threads} is outside 1..1024");
        if (PrefillRuns is < 1 or > 1000) throw new BadInputException($"latency: prefill runs {PrefillRuns} is outside 1..1000");
        if (WarmupDecodeTokens < 0) throw new BadInputException($"latency: warm-up tokens {WarmupDecodeTokens} must not be negative");
        if (PromptTokens is { Count: 0 }) throw new BadInputException("latency: the prompt token list is empty");
        int prompt = ResolvePromptLength();
        if (prompt < 1) throw new BadInputException($"latency: prompt length {prompt} must be positive");
        if ((long)prompt + DecodeTokens > ContextSize)
            throw new BadInputException($"latency: a prompt of {prompt} tokens plus {DecodeTokens} decoded tokens does not fit the context of {ContextSize}");
        if (WarmupDecodeTokens > ContextSize)
            throw new BadInputException($"latency: {WarmupDecodeTokens} warm-up tokens do not fit the context of {ContextSize}");
    }

    internal int ResolvePromptLength() =>
        PromptLength ?? (PromptTokens is { } given && PromptLength is null
            ? given.Count
            : Math.Min(ContextSize / 2, ContextSize - DecodeTokens));
}
