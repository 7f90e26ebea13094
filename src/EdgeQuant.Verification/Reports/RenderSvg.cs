using System.Globalization;
using System.Text;
using static EdgeQuant.Verification.Reports.RenderFormat;

namespace EdgeQuant.Verification.Reports;

/// <summary>
/// Small inline SVG charts for <c>report.html</c>: no script, no external assets, so the page renders the same in
/// a CI artifact viewer, a mail client or offline. Data are drawn as <c>&lt;path&gt;</c> elements (one per series)
/// with class names a test or a stylesheet can find.
/// </summary>
internal static class RenderSvg
{
    private const double Width = 640, Height = 220, Left = 64, Right = 14, Top = 16, Bottom = 40;
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    /// <summary>A line over x = 0..n-1, y from 0; optional dashed horizontal reference line (e.g. the mean).</summary>
    public static string Line(string id, string title, IReadOnlyList<double> values, string xLabel, string yLabel, double? reference = null,
        string? referenceLabel = null)
    {
        var finite = values.Where(double.IsFinite).ToArray();
        double yMax = NiceMax(Math.Max(finite.Length == 0 ? 0 : finite.Max(), reference ?? 0));
        double xMax = Math.Max(values.Count - 1, 1);
        var sb = Open(id, title);
        Axes(sb, 0, xMax, 0, yMax, xLabel, yLabel, integerX: true);

        var d = new StringBuilder();
        bool pen = false;
        for (int i = 0; i < values.Count; i++)
        {
            if (!double.IsFinite(values[i]))
            {
                pen = false; // a gap, not a fake zero
                continue;
            }
            d.Append(pen ? " L" : (d.Length > 0 ? " M" : "M")).Append(F(X(i, 0, xMax))).Append(' ').Append(F(Y(values[i], 0, yMax)));
            pen = true;
        }
        if (values.Count == 1 && d.Length > 0) d.Append(" h 2"); // one point still draws a visible mark
        sb.Append("<path class=\"series\" d=\"").Append(d).Append("\" fill=\"none\" stroke=\"#2563eb\" stroke-width=\"1.5\"/>");
        if (reference is { } r && double.IsFinite(r))
        {
            double y = Y(r, 0, yMax);
            sb.Append("<path class=\"reference\" d=\"M").Append(F(Left)).Append(' ').Append(F(y)).Append(" H").Append(F(Width - Right))
              .Append("\" stroke=\"#dc2626\" stroke-dasharray=\"5 4\" stroke-width=\"1\"/>");
            if (referenceLabel is not null)
                sb.Append("<text x=\"").Append(F(Width - Right - 4)).Append("\" y=\"").Append(F(y - 4)).Append("\" text-anchor=\"end\" class=\"note\">")
                  .Append(Xml(referenceLabel)).Append("</text>");
        }
        return Close(sb);
    }

    /// <summary>
    /// A histogram of <paramref name="values"/> with vertical markers (e.g. p50/p95/p99). Bins: √n clamped to
    /// 8..40. A long tail (max above 3 × p99) is folded into the last bin, labelled "≥", so the body of the
    /// distribution keeps its resolution.
    /// </summary>
    public static string Histogram(string id, string title, IReadOnlyList<double> values, string xLabel,
        IReadOnlyList<(string Label, double Value)> markers)
    {
        var v = values.Where(double.IsFinite).ToArray();
        var sb = Open(id, title);
        if (v.Length == 0) return Close(sb);
        Array.Sort(v);
        double lo = v[0], hi = v[^1];
        double p99 = v[(int)Math.Min(v.Length - 1, Math.Ceiling(0.99 * v.Length) - 1)];
        bool folded = hi > 3 * p99 && p99 > lo;
        double top = folded ? 1.5 * p99 : hi;
        if (top <= lo) top = lo + Math.Max(Math.Abs(lo) * 0.01, 1e-6);
        int bins = Math.Clamp((int)Math.Round(Math.Sqrt(v.Length)), 8, 40);
        var counts = new int[bins];
        foreach (double x in v) counts[Math.Clamp((int)((x - lo) / (top - lo) * bins), 0, bins - 1)]++;
        double yMax = NiceMax(counts.Max());
        Axes(sb, lo, top, 0, yMax, xLabel, "tokens", integerX: false);

        var d = new StringBuilder();
        for (int b = 0; b < bins; b++)
        {
            if (counts[b] == 0) continue;
            double x0 = X(lo + (top - lo) * b / bins, lo, top), x1 = X(lo + (top - lo) * (b + 1) / bins, lo, top);
            double y0 = Y(0, 0, yMax), y1 = Y(counts[b], 0, yMax);
            d.Append(d.Length > 0 ? " " : "").Append('M').Append(F(x0 + 0.5)).Append(' ').Append(F(y0)).Append(" V").Append(F(y1))
             .Append(" H").Append(F(x1 - 0.5)).Append(" V").Append(F(y0)).Append(" Z");
        }
        sb.Append("<path class=\"series\" d=\"").Append(d).Append("\" fill=\"#93c5fd\" stroke=\"#2563eb\" stroke-width=\"1\"/>");
        if (folded)
            sb.Append("<text x=\"").Append(F(Width - Right)).Append("\" y=\"").Append(F(Top + 10)).Append("\" text-anchor=\"end\" class=\"note\">last bin: ≥ ")
              .Append(Xml(Sig(top - (top - lo) / bins, 3))).Append(" (max ").Append(Xml(Sig(hi, 3))).Append(")</text>");
        int k = 0;
        foreach (var (label, value) in markers)
        {
            if (!double.IsFinite(value)) continue;
            double x = X(Math.Min(value, top), lo, top);
            sb.Append("<path class=\"marker\" d=\"M").Append(F(x)).Append(' ').Append(F(Top)).Append(" V").Append(F(Height - Bottom))
              .Append("\" stroke=\"#dc2626\" stroke-dasharray=\"3 3\" stroke-width=\"1\"/>");
            sb.Append("<text x=\"").Append(F(x + 3)).Append("\" y=\"").Append(F(Top + 12 + 12 * k++)).Append("\" class=\"note\">")
              .Append(Xml(label)).Append(' ').Append(Xml(Sig(value, 3))).Append("</text>");
        }
        return Close(sb);
    }

    private static StringBuilder Open(string id, string title)
    {
        var sb = new StringBuilder();
        sb.Append("<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"").Append(Xml(id)).Append("\" class=\"plot\" viewBox=\"0 0 ")
          .Append(F(Width)).Append(' ').Append(F(Height)).Append("\" width=\"").Append(F(Width)).Append("\" height=\"").Append(F(Height))
          .Append("\" role=\"img\"><title>").Append(Xml(title)).Append("</title>");
        return sb;
    }

    private static string Close(StringBuilder sb) => sb.Append("</svg>").ToString();

    private static void Axes(StringBuilder sb, double xMin, double xMax, double yMin, double yMax, string xLabel, string yLabel, bool integerX)
    {
        double x0 = Left, x1 = Width - Right, y0 = Height - Bottom, y1 = Top;
        sb.Append("<path class=\"axis\" d=\"M").Append(F(x0)).Append(' ').Append(F(y1)).Append(" V").Append(F(y0)).Append(" H").Append(F(x1))
          .Append("\" fill=\"none\" stroke=\"#6b7280\" stroke-width=\"1\"/>");
        for (int t = 0; t <= 4; t++)
        {
            double yv = yMin + (yMax - yMin) * t / 4, y = Y(yv, yMin, yMax);
            sb.Append("<text x=\"").Append(F(x0 - 6)).Append("\" y=\"").Append(F(y + 4)).Append("\" text-anchor=\"end\" class=\"tick\">")
              .Append(Xml(Sig(yv, 3))).Append("</text>");
            if (t > 0)
                sb.Append("<path class=\"grid\" d=\"M").Append(F(x0)).Append(' ').Append(F(y)).Append(" H").Append(F(x1)).Append("\" stroke=\"#e5e7eb\" stroke-width=\"1\"/>");
        }
        for (int t = 0; t <= 4; t++)
        {
            double xv = xMin + (xMax - xMin) * t / 4, x = X(xv, xMin, xMax);
            string label = integerX ? Math.Round(xv).ToString(Inv) : Sig(xv, 3);
            sb.Append("<text x=\"").Append(F(x)).Append("\" y=\"").Append(F(y0 + 16)).Append("\" text-anchor=\"middle\" class=\"tick\">")
              .Append(Xml(label)).Append("</text>");
        }
        sb.Append("<text x=\"").Append(F((x0 + x1) / 2)).Append("\" y=\"").Append(F(Height - 4)).Append("\" text-anchor=\"middle\" class=\"label\">")
          .Append(Xml(xLabel)).Append("</text>");
        sb.Append("<text x=\"12\" y=\"").Append(F((y0 + y1) / 2)).Append("\" text-anchor=\"middle\" class=\"label\" transform=\"rotate(-90 12 ")
          .Append(F((y0 + y1) / 2)).Append(")\">").Append(Xml(yLabel)).Append("</text>");
    }

    private static double X(double v, double min, double max) => Left + (Width - Left - Right) * (max > min ? (v - min) / (max - min) : 0);
    private static double Y(double v, double min, double max) => Height - Bottom - (Height - Top - Bottom) * (max > min ? (v - min) / (max - min) : 0);

    /// <summary>A round axis maximum (1, 2, 2.5 or 5 × 10^k) at or above <paramref name="v"/>; 1 for an empty or zero series.</summary>
    internal static double NiceMax(double v)
    {
        if (!(v > 0) || !double.IsFinite(v)) return 1;
        double p = Math.Pow(10, Math.Floor(Math.Log10(v)));
        foreach (double m in new[] { 1, 2, 2.5, 5, 10 })
            if (m * p >= v) return m * p;
        return 10 * p;
    }

    private static string F(double v) => v.ToString("0.##", Inv);
}
