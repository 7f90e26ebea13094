using EdgeQuant.Verification.Reports;

namespace EdgeQuant.Verification.Latency;

/// <summary>
/// What <see cref="LatencyProbe.Measure"/> found. Every name carries its unit (<c>Ms</c> milliseconds, <c>Bytes</c>,
/// <c>TokensPerSecond</c>). Derived figures are computed from the samples kept here, so they agree with each other:
/// <c>DecodeTokensPerSecond == 1000 / DecodeMeanMs</c> and <c>PrefillTokensPerSecond == PrefillTokens / (PrefillMedianMs / 1000)</c>.
/// </summary>
public sealed record LatencyFigures
{
    /// <summary>The runtime measured (resolved, never <see cref="RuntimeKind.Auto"/>).</summary>
    public required RuntimeKind Runtime { get; init; }

    /// <summary>The runner's label, e.g. <c>llama.cpp (icelake)</c>, <c>onnxruntime 1.30.0</c>.</summary>
    public required string RuntimeName { get; init; }

    public required string CandidatePath { get; init; }

    /// <summary>Bytes on disk of the candidate: the file, or every file of an HF folder, or an .onnx plus its external-data files.</summary>
    public required long ModelFileBytes { get; init; }

    /// <summary>Threads the runtime was set to use (llama.cpp: as the context reports it).</summary>
    public required int Threads { get; init; }

    /// <summary>Context length asked for (llama.cpp rounds its KV cache up to a multiple of 256; see <see cref="RuntimeContextLength"/>).</summary>
    public required int ContextSize { get; init; }

    /// <summary>Most positions the opened runner holds.</summary>
    public required int RuntimeContextLength { get; init; }

    /// <summary>Model load plus context/session creation, wall time (the library's one-time initialization excluded).</summary>
    public required double LoadMs { get; init; }

    /// <summary>The untimed warm-up's full-context prefill: the first batch after load (page faults on mapped weights, allocations, JIT).</summary>
    public required double ColdPrefillMs { get; init; }

    /// <summary>Tokens in each timed prefill batch (= <see cref="ContextSize"/>).</summary>
    public required int PrefillTokens { get; init; }

    /// <summary>Wall time of each timed prefill batch, in run order.</summary>
    public required IReadOnlyList<double> PrefillMs { get; init; }

    public required double PrefillMedianMs { get; init; }

    /// <summary><see cref="PrefillTokens"/> / median prefill time.</summary>
    public required double PrefillTokensPerSecond { get; init; }

    /// <summary>Prompt tokens before the first generated token.</summary>
    public required int PromptTokens { get; init; }

    /// <summary>From submitting the prompt (empty cache, warm process) to knowing the first generated token id.</summary>
    public required double TimeToFirstTokenMs { get; init; }

    /// <summary>Timed single-token steps (= <see cref="DecodeMs"/>.Count).</summary>
    public required int DecodeTokens { get; init; }

    /// <summary>Wall time of each decode step (feed one token, read its logits, pick the argmax), in generation order.</summary>
    public required IReadOnlyList<double> DecodeMs { get; init; }

    public required double DecodeMeanMs { get; init; }
    public required double DecodeP50Ms { get; init; }
    public required double DecodeP95Ms { get; init; }
    public required double DecodeP99Ms { get; init; }
    public required double DecodeMinMs { get; init; }
    public required double DecodeMaxMs { get; init; }

    /// <summary>Decode steps per second: <see cref="DecodeTokens"/> / total decode time = 1000 / <see cref="DecodeMeanMs"/>.</summary>
    public required double DecodeTokensPerSecond { get; init; }

    /// <summary>The greedy continuation: the token picked after the prompt, then one per decode step (DecodeTokens + 1 ids).</summary>
    public required IReadOnlyList<int> GeneratedTokens { get; init; }

    /// <summary>Peak resident set size (VmHWM) of the whole process, not of the model alone; null where /proc is unavailable.</summary>
    public required long? PeakRssBytes { get; init; }

    /// <summary>What <see cref="PeakRssBytes"/> covers: <c>probe</c> (counter reset before the load) or <c>process</c> (since the process started).</summary>
    public required string PeakRssScope { get; init; }

    /// <summary>CPU model from /proc/cpuinfo (<see cref="Reports.EnvironmentInfo.ReadCpuModel"/>); null when unreadable.</summary>
    public required string? CpuModel { get; init; }

    public required int LogicalCpus { get; init; }

    /// <summary>The warm-up that preceded the timed runs, in words (reports print it).</summary>
    public required string WarmupPolicy { get; init; }

    /// <summary>The report's latency section (<see cref="LatencyReport"/>): the same figures under the report's names and units.</summary>
    public LatencyReport ToReport() => new()
    {
        LoadMs = LoadMs,
        PrefillTps = PrefillTokensPerSecond,
        PrefillTokens = PrefillTokens,
        TtftMs = TimeToFirstTokenMs,
        DecodeTps = DecodeTokensPerSecond,
        DecodeTokens = DecodeTokens,
        TokenMsP50 = DecodeP50Ms,
        TokenMsP95 = DecodeP95Ms,
        TokenMsP99 = DecodeP99Ms,
        TokenMs = DecodeMs,
        PeakRssMb = PeakRssBytes is { } b ? b / (1024.0 * 1024.0) : null,
        ModelFileBytes = ModelFileBytes,
        Threads = Threads,
        CpuModel = CpuModel,
    };
}
