using System.Globalization;
using static EdgeQuant.Verification.Reports.RenderFormat;

namespace EdgeQuant.Verification.Reports;

/// <summary>One line of the summary table every renderer shows.</summary>
/// <param name="Group"><c>accuracy</c> or <c>latency</c>.</param>
/// <param name="Metric">The report's JSON name of the figure (several for a combined line, joined by '/').</param>
/// <param name="Label">What a reader sees.</param>
/// <param name="Value">The figure with its unit.</param>
/// <param name="Uncertainty">"± …" or empty.</param>
public sealed record SummaryRow(string Group, string Metric, string Label, string Value, string Uncertainty);

/// <summary>
/// The summary lines of a report, in one place so Markdown and HTML agree. Accuracy figures are printed with
/// llama-perplexity's precision (PPL 4 decimals, KLD and ln ratio 6, same-top and Δp as percent with 3), so a
/// reader can hold them against its output.
/// </summary>
public static class ReportSummary
{
    public static IReadOnlyList<SummaryRow> Rows(VerificationReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        var rows = new List<SummaryRow>();
        if (report.Accuracy is { } a)
        {
            void Add(string metric, string label, string value, string unc = "") => rows.Add(new SummaryRow("accuracy", metric, label, value, unc));
            Add("ppl_cand", "PPL (candidate)", Fixed(a.PplCand, 4), Unc4(a.PplCandUnc));
            Add("ppl_base", "PPL (reference)", Fixed(a.PplBase, 4), Unc4(a.PplBaseUnc));
            Add("ppl_increase", "PPL increase", Pct(a.PplIncrease, 3));
            Add("ln_ppl_ratio", "ln(PPL ratio)", Fixed(a.LnPplRatio, 6), UncF(a.LnPplRatioUnc, 6));
            Add("kld_mean", "mean KLD", Fixed(a.KldMean, 6) + " nats", UncF(a.KldMeanUnc, 6));
            Add("kld_p99_9/kld_p99/kld_p95/kld_p90/kld_median", "KLD 99.9 / 99 / 95 / 90 % / median",
                string.Join(" / ", new[] { a.KldP99_9, a.KldP99, a.KldP95, a.KldP90, a.KldMedian }.Select(v => Fixed(v, 6))) + " nats");
            Add("same_top_p", "same top token", Pct(a.SameTopP, 3), UncPct(a.SameTopPUnc));
            Add("delta_p_mean", "mean Δp", Pct(a.DeltaPMean, 3), UncPct(a.DeltaPMeanUnc));
            Add("delta_p_rms", "RMS Δp", Pct(a.DeltaPRms, 3), UncPct(a.DeltaPRmsUnc));
            Add("n_scored", "scored tokens", $"{Int(a.NScored)} in {Int(a.NChunks)} chunks of {Int(a.NCtx)}");
            if (a.Approximation is { Length: > 0 } approx) Add("approximation", "approximation", approx);
        }
        if (report.Latency is { } l)
        {
            void Add(string metric, string label, string value) => rows.Add(new SummaryRow("latency", metric, label, value, ""));
            if (l.LoadMs is not null) Add("load_ms", "load", Sig(l.LoadMs, 3) + " ms");
            if (l.PrefillTps is not null)
                Add("prefill_tps", "prefill", Sig(l.PrefillTps, 3) + " tokens/s" + (l.PrefillTokens is { } n ? $" (batch of {Int(n)})" : ""));
            if (l.TtftMs is not null) Add("ttft_ms", "time to first token", Sig(l.TtftMs, 3) + " ms");
            if (l.DecodeTps is not null)
                Add("decode_tps", "decode", Sig(l.DecodeTps, 3) + " tokens/s" + (l.DecodeTokens is { } n ? $" ({Int(n)} tokens)" : ""));
            if (l.TokenMsP50 is not null || l.TokenMsP95 is not null || l.TokenMsP99 is not null)
                Add("token_ms_p50/token_ms_p95/token_ms_p99", "per-token p50 / p95 / p99",
                    $"{Sig(l.TokenMsP50, 3)} / {Sig(l.TokenMsP95, 3)} / {Sig(l.TokenMsP99, 3)} ms");
            if (l.PeakRssMb is not null) Add("peak_rss_mb", "peak RSS (process)", Sig(l.PeakRssMb, 4) + " MiB");
            if (l.ModelFileBytes is not null) Add("model_file_bytes", "model file", Bytes(l.ModelFileBytes));
            if (l.Threads is not null) Add("threads", "threads", Int(l.Threads));
        }
        return rows;
    }

    /// <summary>"PASSED" / "FAILED (k of n gates)" / "no gates set".</summary>
    public static string Verdict(VerificationReport report)
    {
        int failed = report.Gates.Count(g => !g.Passed);
        if (report.Gates.Count == 0) return "no gates set";
        return failed == 0 ? $"PASSED ({report.Gates.Count} of {report.Gates.Count} gates)" : $"FAILED ({failed} of {report.Gates.Count} gates)";
    }

    /// <summary>One sentence for a gate's outcome: "kld_mean 0.0978 nats &gt; 0.01 nats (max-kld)".</summary>
    public static string GateMessage(GateResult g)
    {
        string actual = g.Actual is null ? "not measured" : WithUnit(g.Actual, g.Unit);
        string op = g.Passed ? g.Comparison : g.Comparison switch { "<=" => ">", ">=" => "<", var c => "not " + c };
        var text = g.Actual is null
            ? $"{g.Metric} was not measured (--{g.Name} {WithUnit(g.Threshold, g.Unit)})"
            : $"{g.Metric} {actual} {op} {WithUnit(g.Threshold, g.Unit)} (--{g.Name})";
        return g.Note is { Length: > 0 } note ? text + "; " + note : text;
    }

    private static string Unc4(double u) => double.IsFinite(u) ? "± " + u.ToString("F4", CultureInfo.InvariantCulture) : "";
    private static string UncF(double u, int decimals) => double.IsFinite(u) ? "± " + Fixed(u, decimals) : "";
    private static string Pct(double f, int decimals) => double.IsFinite(f) ? (f * 100).ToString("F" + decimals, CultureInfo.InvariantCulture) + " %" : "n/a";
    private static string UncPct(double f) => double.IsFinite(f) ? "± " + Pct(f, 3) : "";
}
