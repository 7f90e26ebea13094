using System.Globalization;
using System.Text;

namespace EdgeQuant.Verification.Reports;

/// <summary>Number and text formatting shared by the Markdown, HTML and JUnit renderers, so all three print a figure the same way.</summary>
internal static class RenderFormat
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    /// <summary>
    /// <paramref name="digits"/> significant digits, never in exponent form above 1e-4 (a KLD of 0.000864 reads as
    /// such, not 8.64E-04); below that, exponent form with the same digits. NaN/∞ and null print as "n/a".
    /// </summary>
    public static string Sig(double? value, int digits = 4)
    {
        if (value is not { } v || !double.IsFinite(v)) return "n/a";
        if (v == 0) return "0";
        double a = Math.Abs(v);
        if (a < 1e-4) return v.ToString("0." + new string('0', digits - 1) + "e+0", Inv);
        int magnitude = (int)Math.Floor(Math.Log10(a));
        int decimals = Math.Clamp(digits - 1 - magnitude, 0, 12);
        return v.ToString("F" + decimals.ToString(Inv), Inv);
    }

    /// <summary>A fraction as percent with two decimals: 0.9826 → "98.26 %".</summary>
    public static string Percent(double? fraction) =>
        fraction is { } f && double.IsFinite(f) ? (f * 100).ToString("F2", Inv) + " %" : "n/a";

    /// <summary>Fixed decimals, or "n/a".</summary>
    public static string Fixed(double? value, int decimals) =>
        value is { } v && double.IsFinite(v) ? v.ToString("F" + decimals.ToString(Inv), Inv) : "n/a";

    public static string Int(long? value) => value is { } v ? v.ToString("N0", Inv) : "n/a";

    /// <summary>Bytes in binary units with three significant digits: 1.21 MiB.</summary>
    public static string Bytes(long? bytes)
    {
        if (bytes is not { } b) return "n/a";
        string[] units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
        double v = b;
        int u = 0;
        while (Math.Abs(v) >= 1024 && u < units.Length - 1)
        {
            v /= 1024;
            u++;
        }
        return u == 0 ? b.ToString(Inv) + " bytes" : Sig(v, 3) + " " + units[u];
    }

    /// <summary>A figure as a gate compares it: percent for fractions, else significant digits with the unit.</summary>
    public static string WithUnit(double? value, string unit) => unit switch
    {
        ReportUnits.Fraction => Percent(value),
        ReportUnits.Ratio or "1" => Sig(value),
        _ => Sig(value) + " " + unit,
    };

    /// <summary>Escapes text for XML/XHTML content and attribute values (also drops characters XML 1.0 forbids).</summary>
    public static string Xml(string? text)
    {
        if (string.IsNullOrEmpty(text)) return "";
        var sb = new StringBuilder(text.Length + 16);
        foreach (char c in text)
        {
            switch (c)
            {
                case '&': sb.Append("&amp;"); break;
                case '<': sb.Append("&lt;"); break;
                case '>': sb.Append("&gt;"); break;
                case '"': sb.Append("&quot;"); break;
                case '\'': sb.Append("&#39;"); break;
                default:
                    if (c < 0x20 && c is not ('\t' or '\n' or '\r')) sb.Append('?');
                    else if (c is '\uFFFE' or '\uFFFF') sb.Append('?');
                    else sb.Append(c);
                    break;
            }
        }
        return sb.ToString();
    }

    /// <summary>Escapes text for a Markdown table cell (pipes, backticks, line breaks).</summary>
    public static string MdCell(string? text) =>
        string.IsNullOrEmpty(text) ? "" : text.Replace("\\", "\\\\").Replace("|", "\\|").Replace("`", "\\`").ReplaceLineEndings(" ");

    /// <summary>A path for inline code in Markdown: backticks cannot be escaped inside code, so they become quotes.</summary>
    public static string MdCode(string? text) => "`" + (text ?? "").Replace('`', '\'').ReplaceLineEndings(" ") + "`";

    /// <summary>"±" cell: the uncertainty or empty.</summary>
    public static string Unc(double? unc, int digits = 2) => unc is { } u && double.IsFinite(u) ? "± " + Sig(u, digits) : "";
}
