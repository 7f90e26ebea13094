using System.Globalization;
using EdgeQuant.Core.Errors;

namespace EdgeQuant.Verification.Compare;

/// <summary>How much worse a figure may get before it is a regression: a fraction of the baseline, or an absolute amount in the figure's unit.</summary>
public readonly record struct Tolerance(double Amount, bool Relative)
{
    public static Tolerance None { get; } = new(0, false);

    /// <summary>The allowance in the figure's unit for this baseline value.</summary>
    public double For(double baseline) => Relative ? Amount * Math.Abs(baseline) : Amount;

    public override string ToString() => Relative
        ? (Amount * 100).ToString("0.###", CultureInfo.InvariantCulture) + " %"
        : Amount.ToString("G6", CultureInfo.InvariantCulture);
}

/// <summary>
/// The tolerances of one comparison. Defaults: accuracy figures none (only their uncertainty: the same tokens give
/// the same figures, so any real drift is a change); speed 20 % (timings on a shared or thermally throttling device
/// move by that much between identical runs); memory 10 %. A setting names a metric, a group or nothing (all);
/// the most specific one wins.
/// </summary>
public sealed class CompareTolerances
{
    private readonly Dictionary<string, Tolerance> _metric = new(StringComparer.Ordinal);
    private readonly Dictionary<MetricGroup, Tolerance> _group = new()
    {
        [MetricGroup.Accuracy] = Tolerance.None,
        [MetricGroup.Speed] = new Tolerance(0.20, true),
        [MetricGroup.Memory] = new Tolerance(0.10, true),
        [MetricGroup.Size] = Tolerance.None,
    };
    private readonly HashSet<MetricGroup> _groupSet = [];
    private Tolerance? _all;

    public Tolerance For(CompareMetric metric) =>
        _metric.TryGetValue(metric.Name, out var t) ? t
        : _all is { } all && !_groupSet.Contains(metric.Group) ? all
        : _group[metric.Group];

    /// <summary>
    /// Parses <c>--tolerance</c> values: <c>5%</c> (every figure, relative), <c>speed=15%</c> (a group:
    /// accuracy, speed, memory, size), <c>kld_mean=0.002</c> (one figure, absolute in its unit) or
    /// <c>decode_tps=10%</c>. Later settings of the same key win.
    /// </summary>
    public static CompareTolerances Parse(IEnumerable<string> settings)
    {
        var t = new CompareTolerances();
        foreach (var raw in settings)
        {
            var s = raw.Trim();
            int eq = s.IndexOf('=');
            string? key = eq >= 0 ? s[..eq].Trim() : null;
            var tol = ParseAmount(eq >= 0 ? s[(eq + 1)..] : s, raw);
            if (key is null) t._all = tol;
            else if (Enum.TryParse<MetricGroup>(key, ignoreCase: true, out var g) && !int.TryParse(key, out _))
            {
                t._group[g] = tol;
                t._groupSet.Add(g);
            }
            else if (CompareMetrics.Find(key) is not null) t._metric[key] = tol;
            else
                throw new BadInputException($"--tolerance {raw}: '{key}' is neither a group (accuracy, speed, memory, size) nor a compared figure " +
                    $"({string.Join(", ", CompareMetrics.All.Select(m => m.Name))})");
        }
        return t;
    }

    private static Tolerance ParseAmount(string text, string raw)
    {
        var s = text.Trim();
        bool relative = s.EndsWith('%');
        if (relative) s = s[..^1].Trim();
        if (!double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) || !double.IsFinite(v) || v < 0)
            throw new BadInputException($"--tolerance {raw}: '{text.Trim()}' is not a non-negative number (e.g. 5%, speed=15%, kld_mean=0.002)");
        return relative ? new Tolerance(v / 100, true) : new Tolerance(v, false);
    }
}
