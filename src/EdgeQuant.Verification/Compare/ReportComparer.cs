using EdgeQuant.Verification.Reports;

namespace EdgeQuant.Verification.Compare;

/// <summary>The verdict on one figure.</summary>
public enum ChangeVerdict
{
    /// <summary>Better beyond its uncertainty.</summary>
    Better,
    /// <summary>The change is within the uncertainty of the two measurements.</summary>
    Same,
    /// <summary>Worse beyond its uncertainty but not beyond the tolerance (or a figure that never gates).</summary>
    Worse,
    /// <summary>Worse beyond uncertainty and tolerance: <c>compare</c> exits 3.</summary>
    Regression,
    /// <summary>Missing from one report, or not comparable (different reference text or context).</summary>
    NotCompared,
}

/// <summary>One figure of a comparison.</summary>
/// <param name="Change">Current − baseline (signed, in the figure's unit); null when not compared.</param>
/// <param name="RelativeChange">Change over |baseline|; null when the baseline is 0 or missing.</param>
/// <param name="Sigma">Combined standard uncertainty of the change: √(σ_b² + σ_c²).</param>
/// <param name="Worsening">How much worse (positive) or better (negative) in the figure's unit.</param>
/// <param name="Allowance">The tolerance in the figure's unit.</param>
public sealed record MetricComparison(
    string Metric,
    string Label,
    string Unit,
    string Better,
    bool Gating,
    double? Baseline,
    double? BaselineUnc,
    double? Current,
    double? CurrentUnc,
    double? Change,
    double? RelativeChange,
    double? Sigma,
    double? Worsening,
    double? Allowance,
    string Tolerance,
    ChangeVerdict Verdict,
    string? Note = null);

/// <summary>A whole comparison: what was compared, each figure, and whether anything regressed.</summary>
public sealed record ComparisonReport(
    string BaselinePath,
    string CurrentPath,
    string BaselineCandidate,
    string CurrentCandidate,
    string BaselineRuntime,
    string CurrentRuntime,
    double Sigmas,
    IReadOnlyList<MetricComparison> Metrics,
    IReadOnlyList<string> Warnings)
{
    public int Regressions => Metrics.Count(m => m.Verdict == ChangeVerdict.Regression);
    public bool Regressed => Regressions > 0;
}

/// <summary>
/// Compares two verification reports figure by figure. For a figure where lower is better, the worsening is
/// w = current − baseline (the other way round where higher is better), its uncertainty σ = √(σ_b² + σ_c²)
/// (treating the two runs as independent, which overstates σ when both scored the same tokens, so the test is
/// conservative), and with z = <see cref="DefaultSigmas"/>:
/// <list type="bullet">
/// <item><b>regression</b> when w − zσ &gt; tolerance: even the favourable end of the interval is worse than allowed;</item>
/// <item><b>worse</b> when w − zσ &gt; 0 but within tolerance (or the figure never gates);</item>
/// <item><b>better</b> when −w − zσ &gt; 0;</item>
/// <item><b>same</b> otherwise.</item>
/// </list>
/// </summary>
public static class ReportComparer
{
    /// <summary>Two standard uncertainties: about 95 % two-sided for normal errors, llama-perplexity's ± being one σ.</summary>
    public const double DefaultSigmas = 2;

    public static ComparisonReport Compare(VerificationReport baseline, VerificationReport current, CompareTolerances? tolerances = null,
        double sigmas = DefaultSigmas, string baselinePath = "baseline", string currentPath = "current")
    {
        ArgumentNullException.ThrowIfNull(baseline);
        ArgumentNullException.ThrowIfNull(current);
        if (!(sigmas >= 0) || !double.IsFinite(sigmas)) throw new ArgumentOutOfRangeException(nameof(sigmas), sigmas, "a non-negative number of standard uncertainties");
        tolerances ??= new CompareTolerances();
        var warnings = new List<string>();
        string? accuracyProblem = AccuracyComparable(baseline, current);
        if (accuracyProblem is not null && baseline.Accuracy is not null && current.Accuracy is not null)
            warnings.Add($"accuracy figures not compared: {accuracyProblem}");
        if (baseline.Latency is not null && current.Latency is not null)
        {
            var (bc, cc) = (baseline.Environment?.CpuModel ?? baseline.Latency.CpuModel, current.Environment?.CpuModel ?? current.Latency.CpuModel);
            if (bc is not null && cc is not null && bc != cc) warnings.Add($"latency measured on different CPUs ({bc} vs {cc})");
            if (baseline.Latency.Threads is { } bt && current.Latency.Threads is { } ct && bt != ct)
                warnings.Add($"latency measured with different thread counts ({bt} vs {ct})");
        }

        var rows = new List<MetricComparison>();
        foreach (var metric in CompareMetrics.All)
        {
            var b = metric.Read(baseline);
            var c = metric.Read(current);
            var tol = tolerances.For(metric);
            string better = metric.Better == Better.Lower ? "lower" : "higher";
            if (b is null && c is null) continue; // a section neither report has: nothing to say
            if (metric.Group == MetricGroup.Accuracy && accuracyProblem is not null)
            {
                rows.Add(new MetricComparison(metric.Name, metric.Label, metric.Unit, better, metric.Gating, b?.Value, b?.Uncertainty, c?.Value, c?.Uncertainty,
                    null, null, null, null, null, tol.ToString(), ChangeVerdict.NotCompared, accuracyProblem));
                continue;
            }
            if (b is not { } bv || c is not { } cv)
            {
                rows.Add(new MetricComparison(metric.Name, metric.Label, metric.Unit, better, metric.Gating, b?.Value, b?.Uncertainty, c?.Value, c?.Uncertainty,
                    null, null, null, null, null, tol.ToString(), ChangeVerdict.NotCompared, b is null ? "not in the baseline" : "not in the current report"));
                continue;
            }
            double change = cv.Value - bv.Value;
            double worsening = metric.Better == Better.Lower ? change : -change;
            double sigma = Math.Sqrt(bv.Uncertainty * bv.Uncertainty + cv.Uncertainty * cv.Uncertainty);
            double allowance = tol.For(bv.Value);
            double margin = sigmas * sigma;
            var verdict = worsening - margin > 0
                ? (metric.Gating && worsening - margin > allowance ? ChangeVerdict.Regression : ChangeVerdict.Worse)
                : -worsening - margin > 0 ? ChangeVerdict.Better : ChangeVerdict.Same;
            rows.Add(new MetricComparison(metric.Name, metric.Label, metric.Unit, better, metric.Gating, bv.Value, bv.Uncertainty, cv.Value, cv.Uncertainty,
                change, bv.Value != 0 ? change / Math.Abs(bv.Value) : null, sigma, worsening, allowance, tol.ToString(), verdict,
                metric.Gating ? null : "shown only; never a regression"));
        }

        return new ComparisonReport(baselinePath, currentPath, baseline.Candidate.Path, current.Candidate.Path,
            baseline.Candidate.RuntimeName, current.Candidate.RuntimeName, sigmas, rows, warnings);
    }

    /// <summary>Why two reports' accuracy figures cannot be held against each other, or null when they can.</summary>
    private static string? AccuracyComparable(VerificationReport b, VerificationReport c)
    {
        if (b.Reference is { } rb && c.Reference is { } rc)
        {
            if (!string.Equals(rb.TextSha256, rc.TextSha256, StringComparison.OrdinalIgnoreCase)) return "the references were made from different texts";
            if (!string.Equals(rb.ModelSha256, rc.ModelSha256, StringComparison.OrdinalIgnoreCase)) return "the references come from different models";
        }
        if (b.Accuracy is { } ab && c.Accuracy is { } ac && (ab.NCtx != ac.NCtx || ab.NScored != ac.NScored))
            return $"different context or token count (n_ctx {ab.NCtx} vs {ac.NCtx}, {ab.NScored} vs {ac.NScored} scored)";
        return null;
    }
}
