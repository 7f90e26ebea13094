using System.Globalization;
using System.Xml;
using System.Xml.Linq;
using EdgeQuant.Verification.Reports;
using EdgeQuant.Verification.Tests.Latency;
using Xunit.Abstractions;

namespace EdgeQuant.Verification.Tests.Reports;

public sealed class ReportRenderTests(RealReportFixture fixture, ITestOutputHelper output) : IClassFixture<RealReportFixture>
{
    private static readonly XNamespace XhtmlNs = "http://www.w3.org/1999/xhtml";
    private static readonly XNamespace SvgNs = "http://www.w3.org/2000/svg";

    [LatencyLlamaCppFact(RealReportFixture.Stories, RealReportFixture.Text)]
    public void Html_is_one_well_formed_self_contained_page_with_summary_gates_and_plots()
    {
        var report = fixture.Report;
        var html = HtmlReport.Render(report);
        var doc = ParseXml(html);
        var root = doc.Root!;
        Assert.Equal(XhtmlNs + "html", root.Name);

        // Self-contained: no script, no stylesheet link, no external image or font.
        Assert.DoesNotContain(root.Descendants(), e => e.Name.LocalName is "script" or "link" or "img" or "iframe");
        Assert.DoesNotContain(root.Descendants().Attributes(), a => a.Name.LocalName is "src" or "href");

        var summary = root.Descendants(XhtmlNs + "table").Single(t => (string?)t.Attribute("id") == "summary-table");
        var summaryRows = summary.Descendants(XhtmlNs + "tr").Where(r => r.Attribute("class") is null && r.Elements(XhtmlNs + "td").Any()).ToList();
        Assert.Equal(ReportSummary.Rows(report).Count, summaryRows.Count);
        var pplRow = summaryRows.Single(r => r.Elements(XhtmlNs + "td").First().Value == "PPL (candidate)");
        Assert.Equal(report.Accuracy!.PplCand.ToString("F4", CultureInfo.InvariantCulture), pplRow.Elements(XhtmlNs + "td").ElementAt(1).Value);

        var gates = root.Descendants(XhtmlNs + "table").Single(t => (string?)t.Attribute("id") == "gates-table");
        var gateRows = gates.Element(XhtmlNs + "tbody")!.Elements(XhtmlNs + "tr").ToList();
        Assert.Equal(report.Gates.Select(g => g.Passed ? "pass" : "fail"), gateRows.Select(r => (string)r.Attribute("class")!));
        Assert.Equal("verdict fail", (string?)root.Descendants().Single(e => (string?)e.Attribute("id") == "verdict").Attribute("class"));

        // The KLD plot has one vertex per chunk; the latency histogram draws bars whose heights add up to the token count.
        var kldPlot = Svg(root, "plot-chunk-kld");
        var kldPath = (string)kldPlot.Descendants(SvgNs + "path").Single(p => (string?)p.Attribute("class") == "series").Attribute("d")!;
        Assert.Equal(RealReportFixture.Chunks, kldPath.Count(ch => ch is 'M' or 'L'));
        var histogram = Svg(root, "plot-token-latency");
        var bars = (string)histogram.Descendants(SvgNs + "path").Single(p => (string?)p.Attribute("class") == "series").Attribute("d")!;
        Assert.NotEmpty(bars);
        Assert.Equal(3, histogram.Descendants(SvgNs + "path").Count(p => (string?)p.Attribute("class") == "marker"));
        var series = Svg(root, "plot-token-series");
        Assert.Equal(report.Latency!.TokenMs!.Count, ((string)series.Descendants(SvgNs + "path").Single(p => (string?)p.Attribute("class") == "series").Attribute("d")!)
            .Count(ch => ch is 'M' or 'L'));

        // Kept under the test output as a CI artifact, for a look in a browser.
        var artifacts = Directory.CreateDirectory(Path.Combine(AppContext.BaseDirectory, "test-artifacts"));
        File.WriteAllText(Path.Combine(artifacts.FullName, "verify-report.html"), html);
        output.WriteLine($"report.html {html.Length} chars; {summaryRows.Count} summary rows; {gateRows.Count} gates; kept in {artifacts.FullName}");
    }

    [LatencyLlamaCppFact(RealReportFixture.Stories, RealReportFixture.Text)]
    public void Junit_has_one_case_per_gate_and_the_failures_name_metric_value_and_threshold()
    {
        var report = fixture.Report;
        var doc = ParseXml(JunitReport.Render(report));
        var suite = doc.Root!.Element("testsuite")!;
        Assert.Equal(report.Gates.Count, (int)suite.Attribute("tests")!);
        Assert.Equal(report.Gates.Count(g => !g.Passed), (int)suite.Attribute("failures")!);
        Assert.Equal(2, (int)suite.Attribute("failures")!); // the fixture's two impossible gates
        var cases = suite.Elements("testcase").ToList();
        Assert.Equal(report.Gates.Select(g => "--" + g.Name), cases.Select(c => (string)c.Attribute("name")!));
        foreach (var (gate, testcase) in report.Gates.Zip(cases))
        {
            var failure = testcase.Element("failure");
            Assert.Equal(JunitReport.GateClassName, (string)testcase.Attribute("classname")!);
            if (gate.Passed)
            {
                Assert.Null(failure);
                continue;
            }
            Assert.NotNull(failure);
            var message = (string)failure!.Attribute("message")!;
            Assert.Contains(gate.Metric, message);
            Assert.Contains("--" + gate.Name, message);
            Assert.Contains(gate.Comparison == "<=" ? " > " : " < ", message);
        }
        var kld = report.Gates.Single(g => g.Name == "max-kld");
        Assert.Equal($"kld_mean {kld.Actual!.Value.ToString("F4", CultureInfo.InvariantCulture)}"[..12],
            ((string)cases[0].Element("failure")!.Attribute("message")!)[..12]);
        Assert.Contains(suite.Element("properties")!.Elements("property"), p => (string)p.Attribute("name")! == "kld_mean");
    }

    [LatencyLlamaCppFact(RealReportFixture.Stories, RealReportFixture.Text)]
    public void Markdown_is_a_verdict_a_gates_table_and_a_summary_table()
    {
        var report = fixture.Report;
        var md = MarkdownReport.Render(report);
        output.WriteLine(md);
        var lines = md.Split('\n');
        Assert.StartsWith("## ❌ EdgeQuant verify: FAILED (2 of 4 gates)", lines[0]);

        var tables = Tables(lines);
        Assert.Equal(2, tables.Count);
        var gates = tables[0];
        Assert.Equal("| gate | metric | threshold | actual | result |", gates[0]);
        Assert.Equal(2 + report.Gates.Count, gates.Count);
        Assert.Equal(2, gates.Count(l => l.Contains("❌ **fail**")));
        var accuracy = report.Accuracy!;
        Assert.Contains(gates, l => l.StartsWith("| `--min-top1` | same_top_p | >= 50.00 % | " + (accuracy.SameTopP * 100).ToString("F2", CultureInfo.InvariantCulture) + " %"));
        var summary = tables[1];
        Assert.Contains($"| PPL (candidate) | {accuracy.PplCand.ToString("F4", CultureInfo.InvariantCulture)} | ± {accuracy.PplCandUnc.ToString("F4", CultureInfo.InvariantCulture)} |", summary);
        Assert.Contains(summary, l => l.StartsWith("| decode | ") && l.Contains("tokens/s (64 tokens)"));
        // Every row of a table has the same number of cells (unescaped pipes).
        foreach (var t in tables)
            Assert.All(t, l => Assert.Equal(CellCount(t[0]), CellCount(l)));
    }

    [LatencyLlamaCppFact(RealReportFixture.Stories, RealReportFixture.Text)]
    public void Rendering_a_report_read_back_from_json_gives_the_same_pages()
    {
        var report = fixture.Report;
        var path = VerificationReportJson.WriteFile(report, fixture.Directory);
        var back = VerificationReportJson.ReadFile(path);
        Assert.Equal(MarkdownReport.Render(report), MarkdownReport.Render(back));
        Assert.Equal(HtmlReport.Render(report), HtmlReport.Render(back));
        Assert.Equal(JunitReport.Render(report), JunitReport.Render(back));
        var written = ReportFiles.WriteRendered(back, fixture.Directory);
        Assert.Equal(["report.md", "report.html", "junit.xml"], written.Select(Path.GetFileName));
        Assert.Empty(Directory.GetFiles(fixture.Directory, "*.tmp-*"));
    }

    [Fact]
    public void Hostile_text_and_empty_sections_still_render_well_formed()
    {
        var report = new VerificationReport
        {
            Candidate = new CandidateInfo("/tmp/a<b>&c|d`e\"f'\u0001.gguf", "gguf", "llama.cpp <x>", "r&d", 12345, 2),
            Gates = [new GateResult("max-rss-mb", "peak_rss_mb", "<=", 100, null, ReportUnits.Megabytes, false, "latency not measured")],
        };
        var html = ParseXml(HtmlReport.Render(report));
        Assert.Contains("/tmp/a<b>&c|d`e\"f'?.gguf", html.Root!.Value);
        Assert.Empty(html.Root.Descendants(SvgNs + "svg"));
        var junit = ParseXml(JunitReport.Render(report));
        Assert.Contains("was not measured", (string)junit.Descendants("failure").Single().Attribute("message")!);
        var md = MarkdownReport.Render(report);
        Assert.Contains("FAILED (1 of 1 gates)", md);
        Assert.Contains("_No accuracy or latency figures in this report._", md);
        var gateRow = md.Split('\n').Single(l => l.StartsWith("| `--max-rss-mb`"));
        Assert.Equal(5, CellCount(gateRow));

        var empty = new VerificationReport { Candidate = report.Candidate };
        Assert.Equal("0", (string)ParseXml(JunitReport.Render(empty)).Root!.Element("testsuite")!.Attribute("tests")!);
        Assert.Contains("no gates set", MarkdownReport.Render(empty));
        ParseXml(HtmlReport.Render(empty));
    }

    private static XDocument ParseXml(string text)
    {
        // HTML5's doctype has no DTD to fetch; everything else must be well-formed XML.
        using var reader = XmlReader.Create(new StringReader(text), new XmlReaderSettings { DtdProcessing = DtdProcessing.Ignore });
        return XDocument.Load(reader);
    }

    private static XElement Svg(XElement root, string id) =>
        root.Descendants(SvgNs + "svg").Single(s => (string?)s.Attribute("id") == id);

    private static List<List<string>> Tables(string[] lines)
    {
        var tables = new List<List<string>>();
        List<string>? current = null;
        bool inDetails = false;
        foreach (var line in lines)
        {
            if (line.StartsWith("<details")) inDetails = true;
            if (!inDetails && line.StartsWith('|'))
            {
                if (current is null) tables.Add(current = []);
                current.Add(line);
            }
            else current = null;
        }
        return tables;
    }

    private static int CellCount(string row)
    {
        int pipes = 0;
        for (int i = 0; i < row.Length; i++)
        {
            if (row[i] == '\\') i++;
            else if (row[i] == '|') pipes++;
        }
        return pipes - 1;
    }
}
