using System.Globalization;
using EdgeQuant.Core.Errors;
using EdgeQuant.Verification.Reports;

namespace EdgeQuant.Verification.Gates;

/// <summary>Whether a gate is a ceiling or a floor.</summary>
public enum GateDirection
{
    /// <summary>Passes when the measured value is at most the threshold.</summary>
    AtMost,
    /// <summary>Passes when the measured value is at least the threshold.</summary>
    AtLeast,
}

/// <summary>One gate a user can set: the option, the report field it reads, the direction, and how to read it from a report.</summary>
public sealed record GateDefinition(string Name, string Metric, GateDirection Direction, string Description, Func<VerificationReport, double?> Read)
{
    public string Comparison => Direction == GateDirection.AtMost ? "<=" : ">=";

    /// <summary>True for gates that read the latency section.</summary>
    public bool NeedsLatency { get; init; }
}

/// <summary>A gate with its threshold, as set on the command line.</summary>
public sealed record GateSpec(GateDefinition Gate, double Threshold);

/// <summary>
/// The one table of gates (<c>verify --max-kld …</c>): it drives the options, the checks and the report. A gate
/// whose figure was not measured (no latency probe, say) fails with a note rather than passing silently.
/// </summary>
public static class GateCatalog
{
    public static GateDefinition MaxKld { get; } = new("max-kld", "kld_mean", GateDirection.AtMost,
        "Fail (exit 3) when the mean KL divergence from the reference exceeds X nats.", r => r.Accuracy?.KldMean);

    public static GateDefinition MinTop1 { get; } = new("min-top1", "same_top_p", GateDirection.AtLeast,
        "Fail (exit 3) when top-1 agreement with the reference is below X (a fraction, 0..1).", r => r.Accuracy?.SameTopP);

    public static GateDefinition MaxPplIncrease { get; } = new("max-ppl-increase", "ppl_increase", GateDirection.AtMost,
        "Fail (exit 3) when PPL(candidate)/PPL(reference) - 1 exceeds X (0.05 = 5 %).", r => r.Accuracy?.PplIncrease);

    public static GateDefinition MaxP95Ms { get; } = new("max-p95-ms", "token_ms_p95", GateDirection.AtMost,
        "Fail (exit 3) when the 95th-percentile per-token decode latency exceeds X ms.", r => r.Latency?.TokenMsP95) { NeedsLatency = true };

    public static GateDefinition MinDecodeTps { get; } = new("min-decode-tps", "decode_tps", GateDirection.AtLeast,
        "Fail (exit 3) when decoding is slower than X tokens/s.", r => r.Latency?.DecodeTps) { NeedsLatency = true };

    public static GateDefinition MaxRssMb { get; } = new("max-rss-mb", "peak_rss_mb", GateDirection.AtMost,
        "Fail (exit 3) when the peak resident memory exceeds X MiB.", r => r.Latency?.PeakRssMb) { NeedsLatency = true };

    public static IReadOnlyList<GateDefinition> All { get; } = [MaxKld, MinTop1, MaxPplIncrease, MaxP95Ms, MinDecodeTps, MaxRssMb];
}

/// <summary>Checks thresholds against a report.</summary>
public static class GateEvaluator
{
    /// <summary>Refuses a threshold that can never mean anything (NaN, infinite, negative; a fraction above 1).</summary>
    public static GateSpec Spec(GateDefinition gate, double threshold)
    {
        if (!double.IsFinite(threshold) || threshold < 0)
            throw new BadInputException($"--{gate.Name}: {threshold.ToString(CultureInfo.InvariantCulture)} must be a finite, non-negative number");
        if (gate.Metric == "same_top_p" && threshold > 1)
            throw new BadInputException($"--{gate.Name}: {threshold.ToString(CultureInfo.InvariantCulture)} is a fraction of agreeing positions and must be within 0..1 (e.g. 0.9 for 90 %)");
        return new GateSpec(gate, threshold);
    }

    public static IReadOnlyList<GateResult> Evaluate(VerificationReport report, IEnumerable<GateSpec> specs)
    {
        var results = new List<GateResult>();
        foreach (var s in specs)
        {
            double? actual = s.Gate.Read(report);
            string unit = ReportUnits.Of(s.Gate.Metric);
            if (actual is not { } v || double.IsNaN(v))
            {
                results.Add(new GateResult(s.Gate.Name, s.Gate.Metric, s.Gate.Comparison, s.Threshold, null, unit, false,
                    $"{s.Gate.Metric} was not measured"));
                continue;
            }
            bool passed = s.Gate.Direction == GateDirection.AtMost ? v <= s.Threshold : v >= s.Threshold;
            results.Add(new GateResult(s.Gate.Name, s.Gate.Metric, s.Gate.Comparison, s.Threshold, v, unit, passed));
        }
        return results;
    }

    /// <summary>One line naming each failed gate, e.g. <c>max-kld (kld_mean 0.0978 &gt; 0.05 nats)</c>; null when all passed.</summary>
    public static string? DescribeFailures(IEnumerable<GateResult> results)
    {
        var failed = results.Where(r => !r.Passed).Select(Describe).ToList();
        return failed.Count == 0 ? null : string.Join("; ", failed);
    }

    public static string Describe(GateResult r)
    {
        if (r.Actual is not { } v) return $"{r.Name} ({r.Note ?? r.Metric + " not measured"})";
        string op = r.Passed ? r.Comparison : r.Comparison == "<=" ? ">" : "<";
        return string.Format(CultureInfo.InvariantCulture, "{0} ({1} {2:G6} {3} {4:G6} {5})", r.Name, r.Metric, v, op, r.Threshold, r.Unit);
    }
}
