using System.Globalization;
using System.Text;
using EdgeQuant.Verification.Reports;

namespace EdgeQuant.Verification.Compare;

/// <summary>
/// The comparison as Markdown a team pastes into release notes: a one-line verdict, what was compared, one table
/// (baseline ± σ, current ± σ, change, verdict per figure) and the rule used, spelled out.
/// </summary>
public static class CompareMarkdown
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    public static string Render(ComparisonReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        var sb = new StringBuilder();
        int regressions = report.Regressions;
        int better = report.Metrics.Count(m => m.Verdict == ChangeVerdict.Better);
        int worse = report.Metrics.Count(m => m.Verdict == ChangeVerdict.Worse);
        sb.Append("## ").Append(regressions > 0 ? "❌ " : "✅ ").Append("EdgeQuant compare: ")
          .Append(regressions > 0 ? $"{regressions} regression{(regressions == 1 ? "" : "s")}" : "no regression")
          .Append($" ({better} better, {worse} worse within tolerance, {report.Metrics.Count(m => m.Verdict == ChangeVerdict.Same)} same)\n\n");
        sb.Append("Baseline ").Append(Code(Path.GetFileName(report.BaselinePath))).Append(" (").Append(Code(report.BaselineCandidate)).Append(", ")
          .Append(Cell(report.BaselineRuntime)).Append(") → current ").Append(Code(Path.GetFileName(report.CurrentPath))).Append(" (")
          .Append(Code(report.CurrentCandidate)).Append(", ").Append(Cell(report.CurrentRuntime)).Append(").\n\n");
        foreach (var w in report.Warnings) sb.Append("> ⚠️ ").Append(Cell(w)).Append('\n');
        if (report.Warnings.Count > 0) sb.Append('\n');

        if (report.Metrics.Count == 0)
        {
            sb.Append("_The two reports share no figure._\n");
            return sb.ToString();
        }
        sb.Append("| figure | baseline | current | change | verdict |\n|---|---:|---:|---:|---|\n");
        foreach (var m in report.Metrics)
        {
            sb.Append("| ").Append(Cell(m.Label)).Append(" | ").Append(Value(m, m.Baseline, m.BaselineUnc)).Append(" | ").Append(Value(m, m.Current, m.CurrentUnc))
              .Append(" | ").Append(ChangeText(m)).Append(" | ").Append(VerdictText(m)).Append(" |\n");
        }
        sb.Append('\n').Append("Verdicts: a change counts only beyond ").Append(report.Sigmas.ToString("0.##", Inv))
          .Append(" combined standard uncertainties (√(σ_b² + σ_c²)); a regression is worse by more than that plus the tolerance (")
          .Append(string.Join(", ", report.Metrics.Where(m => m.Gating).GroupBy(m => m.Tolerance).Select(g => $"{g.Key}: {string.Join(", ", g.Select(x => x.Metric))}")))
          .Append("). Load time and file size are shown, never regressions.\n");
        return sb.ToString();
    }

    private static string Value(MetricComparison m, double? v, double? unc)
    {
        if (v is not { } x) return "—";
        if (m.Unit == ReportUnits.Fraction)
            return RenderFormat.Percent(x) + (unc is > 0 ? " ± " + RenderFormat.Sig(unc.Value * 100, 2) : "");
        if (m.Unit == ReportUnits.Bytes) return RenderFormat.Bytes((long)x);
        string digits = m.Metric switch
        {
            "ppl_cand" => x.ToString("F4", Inv),
            "ln_ppl_ratio" or "kld_mean" or "kld_p99" => x.ToString("F6", Inv),
            _ => RenderFormat.Sig(x, 4),
        };
        string u = unc is > 0 ? " ± " + (m.Metric is "ppl_cand" ? unc.Value.ToString("F4", Inv)
            : m.Metric is "ln_ppl_ratio" or "kld_mean" ? unc.Value.ToString("F6", Inv) : RenderFormat.Sig(unc, 2)) : "";
        string unit = m.Unit is ReportUnits.Ratio or "1" ? "" : " " + m.Unit;
        return digits + u + unit;
    }

    private static string ChangeText(MetricComparison m)
    {
        if (m.Change is not { } d) return "—";
        if (m.Unit == ReportUnits.Fraction) return (d >= 0 ? "+" : "") + (d * 100).ToString("F2", Inv) + " pp";
        // A log ratio near zero has no meaningful relative change: show the difference itself.
        if (m.Metric == "ln_ppl_ratio") return (d >= 0 ? "+" : "") + d.ToString("F6", Inv);
        if (m.RelativeChange is { } r) return (r >= 0 ? "+" : "") + (r * 100).ToString("F1", Inv) + " %";
        return (d >= 0 ? "+" : "") + RenderFormat.Sig(d, 3);
    }

    private static string VerdictText(MetricComparison m) => m.Verdict switch
    {
        ChangeVerdict.Better => "better",
        ChangeVerdict.Same => "same",
        ChangeVerdict.Worse => m.Gating ? "worse (within tolerance)" : "worse (not gated)",
        ChangeVerdict.Regression => "❌ **regression**",
        _ => "not compared" + (m.Note is { } n ? $": {Cell(n)}" : ""),
    };

    private static string Cell(string? s) => RenderFormat.MdCell(s);
    private static string Code(string? s) => RenderFormat.MdCode(s);
}
