using EdgeQuant.Verification.Reports;

namespace EdgeQuant.Verification.Compare;

/// <summary>Which way is better for a figure.</summary>
public enum Better
{
    Lower,
    Higher,
}

/// <summary>Tolerance groups a user can set at once (<c>--tolerance speed=15%</c>).</summary>
public enum MetricGroup
{
    Accuracy,
    Speed,
    Memory,
    Size,
}

/// <summary>A figure's value and its standard uncertainty (0 when the report carries none).</summary>
public readonly record struct Measured(double Value, double Uncertainty);

/// <summary>
/// One figure <c>compare</c> looks at: its report name, which way is better, how to read it with its uncertainty,
/// and whether a worsening beyond tolerance counts as a regression (<see cref="Gating"/>) or is only shown.
/// </summary>
public sealed record CompareMetric(string Name, string Label, MetricGroup Group, Better Better, bool Gating, Func<VerificationReport, Measured?> Read)
{
    public string Unit => ReportUnits.Of(Name);
}

/// <summary>
/// The one table of compared figures, in report order. Uncertainties are standard errors: the accuracy ones are the
/// report's <c>_unc</c> twins (llama-perplexity's); for per-token latency they are derived from the kept samples
/// (see <see cref="SampleUncertainty"/>); single timings (load, prefill, TTFT) and memory have none, so their
/// tolerance has to absorb run-to-run noise.
/// </summary>
public static class CompareMetrics
{
    public static IReadOnlyList<CompareMetric> All { get; } =
    [
        new("ppl_cand", "PPL (candidate)", MetricGroup.Accuracy, Better.Lower, true, r => M(r.Accuracy?.PplCand, r.Accuracy?.PplCandUnc)),
        new("ln_ppl_ratio", "ln(PPL ratio)", MetricGroup.Accuracy, Better.Lower, true, r => M(r.Accuracy?.LnPplRatio, r.Accuracy?.LnPplRatioUnc)),
        new("kld_mean", "mean KLD", MetricGroup.Accuracy, Better.Lower, true, r => M(r.Accuracy?.KldMean, r.Accuracy?.KldMeanUnc)),
        new("kld_p99", "KLD 99 %", MetricGroup.Accuracy, Better.Lower, true, r => M(r.Accuracy?.KldP99, 0)),
        new("same_top_p", "same top token", MetricGroup.Accuracy, Better.Higher, true, r => M(r.Accuracy?.SameTopP, r.Accuracy?.SameTopPUnc)),
        new("delta_p_rms", "RMS Δp", MetricGroup.Accuracy, Better.Lower, true, r => M(r.Accuracy?.DeltaPRms, r.Accuracy?.DeltaPRmsUnc)),
        new("decode_tps", "decode", MetricGroup.Speed, Better.Higher, true, r => M(r.Latency?.DecodeTps, SampleUncertainty.DecodeTps(r.Latency))),
        new("token_ms_p50", "per-token p50", MetricGroup.Speed, Better.Lower, true, r => M(r.Latency?.TokenMsP50, SampleUncertainty.Percentile(r.Latency?.TokenMs, 50))),
        new("token_ms_p95", "per-token p95", MetricGroup.Speed, Better.Lower, true, r => M(r.Latency?.TokenMsP95, SampleUncertainty.Percentile(r.Latency?.TokenMs, 95))),
        new("token_ms_p99", "per-token p99", MetricGroup.Speed, Better.Lower, true, r => M(r.Latency?.TokenMsP99, SampleUncertainty.Percentile(r.Latency?.TokenMs, 99))),
        new("prefill_tps", "prefill", MetricGroup.Speed, Better.Higher, true, r => M(r.Latency?.PrefillTps, 0)),
        new("ttft_ms", "time to first token", MetricGroup.Speed, Better.Lower, true, r => M(r.Latency?.TtftMs, 0)),
        // Load time mostly measures the page cache (a cold or warm file), so it is shown, never a regression.
        new("load_ms", "load", MetricGroup.Speed, Better.Lower, false, r => M(r.Latency?.LoadMs, 0)),
        new("peak_rss_mb", "peak RSS (process)", MetricGroup.Memory, Better.Lower, true, r => M(r.Latency?.PeakRssMb, 0)),
        // A different size is a different model, chosen on purpose: shown, never a regression.
        new("model_file_bytes", "model file", MetricGroup.Size, Better.Lower, false, r => M(r.Latency?.ModelFileBytes ?? r.Candidate.FileBytes, 0)),
    ];

    /// <summary>The metric named <paramref name="name"/> (report JSON name), or null.</summary>
    public static CompareMetric? Find(string name) => All.FirstOrDefault(m => m.Name == name);

    private static Measured? M(double? value, double? uncertainty) =>
        value is { } v && double.IsFinite(v) ? new Measured(v, uncertainty is { } u && double.IsFinite(u) && u > 0 ? u : 0) : null;
}

/// <summary>Standard uncertainties of latency figures computed from the per-token samples a report keeps.</summary>
public static class SampleUncertainty
{
    /// <summary>
    /// Of decode tokens/s = 1000 / mean(ms): the standard error of the mean, carried through the reciprocal
    /// (σ_tps = tps · σ_mean / mean). Steps are treated as independent, which understates the error when the
    /// machine's load drifts during the run; the speed tolerance covers that.
    /// </summary>
    public static double? DecodeTps(LatencyReport? latency)
    {
        if (latency?.TokenMs is not { Count: >= 2 } ms || latency.DecodeTps is not { } tps) return null;
        double mean = ms.Average();
        if (!(mean > 0)) return null;
        double sd = Math.Sqrt(ms.Sum(x => (x - mean) * (x - mean)) / (ms.Count - 1));
        return tps * (sd / Math.Sqrt(ms.Count)) / mean;
    }

    /// <summary>
    /// Of the p-th percentile, distribution-free: the order statistics at ranks n·q ± 1.96·√(n·q·(1−q)) bound a 95 %
    /// interval for the quantile (binomial argument, no assumption on the latency distribution); half its width
    /// over 1.96 serves as a standard uncertainty. With 128 samples p99's interval reaches the maximum, so p99
    /// tails are honestly uncertain.
    /// </summary>
    public static double? Percentile(IReadOnlyList<double>? samples, double p)
    {
        if (samples is not { Count: >= 2 }) return null;
        var s = samples.Where(double.IsFinite).Order().ToArray();
        if (s.Length < 2) return null;
        int n = s.Length;
        double q = p / 100, half = 1.96 * Math.Sqrt(n * q * (1 - q));
        int lo = Math.Clamp((int)Math.Floor(n * q - half), 0, n - 1);
        int hi = Math.Clamp((int)Math.Ceiling(n * q + half), 0, n - 1);
        return (s[hi] - s[lo]) / 2 / 1.96;
    }
}
