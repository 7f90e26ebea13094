using System.Globalization;
using System.Xml;

namespace EdgeQuant.Verification.Reports;

/// <summary>
/// <c>junit.xml</c>: one <c>&lt;testcase&gt;</c> per gate (classname <c>edgequant.verify.gates</c>, name
/// <c>--max-kld</c>), a failed gate carrying a <c>&lt;failure&gt;</c> whose message names the metric, its value and the
/// threshold. The suite's properties hold the headline figures, so CI systems that show properties (Jenkins,
/// GitLab) list them without opening the other reports. No gates: an empty suite (tests="0"), which passes.
/// </summary>
public static class JunitReport
{
    public const string GateClassName = "edgequant.verify.gates";

    public static string Render(VerificationReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        var settings = new XmlWriterSettings { Indent = true, OmitXmlDeclaration = false, Encoding = new System.Text.UTF8Encoding(false) };
        using var stream = new MemoryStream();
        using (var w = XmlWriter.Create(stream, settings))
        {
            int failures = report.Gates.Count(g => !g.Passed);
            string tests = report.Gates.Count.ToString(CultureInfo.InvariantCulture);
            string fails = failures.ToString(CultureInfo.InvariantCulture);
            string time = (report.Accuracy?.EvalSeconds ?? 0).ToString("F3", CultureInfo.InvariantCulture);
            string suiteName = "edgequant verify " + Path.GetFileName(report.Candidate.Path.TrimEnd('/', '\\'));

            w.WriteStartDocument();
            w.WriteStartElement("testsuites");
            w.WriteAttributeString("name", "edgequant verify");
            w.WriteAttributeString("tests", tests);
            w.WriteAttributeString("failures", fails);
            w.WriteAttributeString("errors", "0");
            w.WriteAttributeString("time", time);

            w.WriteStartElement("testsuite");
            w.WriteAttributeString("name", Clean(suiteName));
            w.WriteAttributeString("tests", tests);
            w.WriteAttributeString("failures", fails);
            w.WriteAttributeString("errors", "0");
            w.WriteAttributeString("skipped", "0");
            w.WriteAttributeString("time", time);
            w.WriteAttributeString("timestamp", report.CreatedUtc.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ss", CultureInfo.InvariantCulture));
            if (report.Environment?.MachineName is { Length: > 0 } host) w.WriteAttributeString("hostname", Clean(host));

            w.WriteStartElement("properties");
            Property(w, "candidate", report.Candidate.Path);
            Property(w, "runtime", report.Candidate.RuntimeName);
            Property(w, "threads", report.Candidate.Threads.ToString(CultureInfo.InvariantCulture));
            if (report.Reference is { } r) Property(w, "reference", r.Path);
            foreach (var row in ReportSummary.Rows(report))
                Property(w, row.Metric, row.Uncertainty.Length > 0 ? row.Value + " " + row.Uncertainty : row.Value);
            if (report.Environment?.CpuModel is { } cpu) Property(w, "cpu_model", cpu);
            w.WriteEndElement();

            foreach (var g in report.Gates)
            {
                w.WriteStartElement("testcase");
                w.WriteAttributeString("classname", GateClassName);
                w.WriteAttributeString("name", "--" + Clean(g.Name));
                w.WriteAttributeString("time", "0");
                if (!g.Passed)
                {
                    w.WriteStartElement("failure");
                    w.WriteAttributeString("message", Clean(ReportSummary.GateMessage(g)));
                    w.WriteAttributeString("type", "GateFailed");
                    w.WriteString(Clean($"gate --{g.Name}: {g.Metric} {g.Comparison} {RenderFormat.WithUnit(g.Threshold, g.Unit)}; " +
                        $"measured {(g.Actual is null ? "nothing" : RenderFormat.WithUnit(g.Actual, g.Unit))}"));
                    w.WriteEndElement();
                }
                else
                {
                    w.WriteElementString("system-out", Clean(ReportSummary.GateMessage(g)));
                }
                w.WriteEndElement();
            }
            w.WriteEndElement();
            w.WriteEndElement();
            w.WriteEndDocument();
        }
        return System.Text.Encoding.UTF8.GetString(stream.ToArray());
    }

    private static void Property(XmlWriter w, string name, string value)
    {
        w.WriteStartElement("property");
        w.WriteAttributeString("name", Clean(name));
        w.WriteAttributeString("value", Clean(value));
        w.WriteEndElement();
    }

    /// <summary>XmlWriter refuses characters XML 1.0 cannot hold (a control byte in a path); replace them.</summary>
    private static string Clean(string s)
    {
        var sb = new System.Text.StringBuilder(s.Length);
        foreach (char c in s) sb.Append(XmlConvert.IsXmlChar(c) || char.IsSurrogate(c) ? c : '?');
        return sb.ToString();
    }
}
