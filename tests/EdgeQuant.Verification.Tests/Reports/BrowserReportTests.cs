using System.Diagnostics;
using System.Net;
using System.Text.RegularExpressions;
using EdgeQuant.Testing;
using EdgeQuant.Verification.Reports;
using Xunit.Abstractions;

namespace EdgeQuant.Verification.Tests.Reports;

/// <summary>
/// <c>report.html</c> of a real run (stories260K F32 vs Q4_0 in llama.cpp) opened in a real browser, headless
/// Debian Chromium: the screenshot must be a valid, non-blank PNG of the window size with the plots' colours painted
/// in it, and the DOM after Chromium's HTML parser (<c>--dump-dom</c>) must still hold the summary table row for row
/// and the three SVG plots with non-empty paths. The screenshot is kept under the test output
/// (<c>test-artifacts/report-screenshot.png</c> beside the test assembly) for CI to archive.
/// </summary>
public sealed class BrowserReportTests(RealReportFixture fixture, ITestOutputHelper output) : IClassFixture<RealReportFixture>
{
    private const int WindowWidth = 1280, WindowHeight = 2000;

    [BrowserReportFact(RealReportFixture.Stories, RealReportFixture.Text)]
    public void Report_renders_in_headless_chromium_with_summary_table_and_plots()
    {
        var report = fixture.Report;
        var html = HtmlReport.Render(report);
        using var tmp = new TempDir("eq-browser-report");
        var page = tmp.File("report.html");
        File.WriteAllText(page, html);
        var url = new Uri(page).AbsoluteUri;
        var total = Stopwatch.StartNew();

        // Screenshot.
        var shot = tmp.File("screenshot.png");
        var r1 = HeadlessChromium.Run(tmp.Path, url, $"--screenshot={shot}", $"--window-size={WindowWidth},{WindowHeight}");
        Assert.True(r1.ExitCode == 0 && File.Exists(shot),
            $"chromium --screenshot exited {r1.ExitCode}, screenshot {(File.Exists(shot) ? "written" : "missing")}: {HeadlessChromium.Tail(r1.Stderr)}");
        var pngBytes = File.ReadAllBytes(shot);
        var artifacts = Directory.CreateDirectory(Path.Combine(AppContext.BaseDirectory, "test-artifacts"));
        var kept = Path.Combine(artifacts.FullName, "report-screenshot.png");
        File.Copy(shot, kept, overwrite: true);
        File.WriteAllText(Path.Combine(artifacts.FullName, "report-screenshot.html"), html);

        var png = PngImage.Decode(pngBytes);
        Assert.Equal((WindowWidth, WindowHeight), (png.Width, png.Height));
        var colours = new Dictionary<int, int>();
        for (int y = 0; y < png.Height; y++)
            for (int x = 0; x < png.Width; x++)
            {
                int c = png.Rgb(x, y);
                colours[c] = colours.GetValueOrDefault(c) + 1;
            }
        if (colours.Count == 1) Assert.Fail($"the screenshot is one colour (#{colours.Keys.Single():x6}): nothing was painted");
        var background = colours.MaxBy(kv => kv.Value);
        // Colours only the report's own styles and plots use, so their presence means Chromium painted those parts:
        // the failing-verdict badge (#fee2e2, the fixture's gates fail), the histogram bars' fill (#93c5fd) and the
        // series stroke (#2563eb, anti-aliased edges aside, the line's core is painted in the exact colour).
        int verdictPixels = colours.GetValueOrDefault(0xfee2e2), barPixels = colours.GetValueOrDefault(0x93c5fd), linePixels = colours.GetValueOrDefault(0x2563eb);
        output.WriteLine($"screenshot {kept}: {pngBytes.Length} bytes, {png.Width}x{png.Height}x{png.Channels}, {colours.Count} colours, " +
                         $"background #{background.Key:x6} {100.0 * background.Value / (png.Width * png.Height):F1}%, verdict badge {verdictPixels} px, " +
                         $"histogram fill {barPixels} px, series stroke {linePixels} px; chromium {r1.Elapsed.TotalSeconds:F1} s");
        Assert.True(verdictPixels > 0, "the failing-verdict badge colour #fee2e2 is not in the screenshot");
        Assert.True(barPixels > 0, "the latency histogram's fill colour #93c5fd is not in the screenshot");
        Assert.True(linePixels > 0, "the plot series colour #2563eb is not in the screenshot");

        // The DOM after Chromium parsed the page (an HTML parser, not the XML one ReportRenderTests uses).
        var r2 = HeadlessChromium.Run(tmp.Path, url, "--dump-dom");
        Assert.True(r2.ExitCode == 0, $"chromium --dump-dom exited {r2.ExitCode}: {HeadlessChromium.Tail(r2.Stderr)}");
        var dom = r2.Stdout;
        Assert.Matches(@"^\s*(<!DOCTYPE html>\s*)?<html\b", dom);
        Assert.EndsWith("</html>", dom.TrimEnd());

        var table = Element(dom, "table", "summary-table");
        var rows = Regex.Matches(table, @"<tr(?<attrs>[^>]*)>(?<body>.*?)</tr>", RegexOptions.Singleline)
            .Where(m => !m.Groups["attrs"].Value.Contains("class=") && m.Groups["body"].Value.Contains("<td"))
            .Select(m => Regex.Matches(m.Groups["body"].Value, @"<td[^>]*>(?<c>.*?)</td>", RegexOptions.Singleline)
                .Select(c => WebUtility.HtmlDecode(Regex.Replace(c.Groups["c"].Value, "<[^>]*>", ""))).ToArray())
            .ToList();
        var expected = ReportSummary.Rows(report);
        Assert.NotEmpty(expected);
        Assert.Equal(expected.Select(e => new[] { e.Label, e.Value, e.Uncertainty, e.Metric }), rows);
        Assert.Contains(rows, r => r[0] == "PPL (candidate)");

        // Each plot: an <svg> with paths whose d attributes are non-empty drawing commands; the data series has one
        // vertex per chunk (KLD) or per generated token (latency sequence).
        var a = report.Accuracy!;
        var l = report.Latency!;
        foreach (var (id, vertices) in new (string, int?)[] { ("plot-chunk-kld", a.ChunkKld.Count), ("plot-token-latency", null), ("plot-token-series", l.TokenMs!.Count) })
        {
            var svg = Element(dom, "svg", id);
            var paths = Regex.Matches(svg, @"<path\b[^>]*>").Select(m => m.Value).ToList();
            Assert.NotEmpty(paths);
            foreach (var p in paths)
            {
                var d = Regex.Match(p, "\\sd=\"(?<d>[^\"]*)\"").Groups["d"].Value;
                Assert.Matches(@"^\s*M\s*-?[0-9.]+[ ,]+-?[0-9.]+", d);
            }
            var series = paths.Single(p => p.Contains("class=\"series\""));
            var sd = Regex.Match(series, "\\sd=\"(?<d>[^\"]*)\"").Groups["d"].Value;
            if (vertices is { } n) Assert.Equal(n, sd.Count(ch => ch is 'M' or 'L'));
            output.WriteLine($"#{id}: {paths.Count} paths, series d {sd.Length} chars");
        }
        Assert.Equal(RealReportFixture.Chunks, a.ChunkKld.Count);

        // Controls for the screenshot checks: the decoder refuses a corrupted file (CRC) and a truncated one, and an
        // empty page screenshotted the same way is one colour, so the non-blank check above can fail.
        var corrupt = (byte[])pngBytes.Clone();
        corrupt[pngBytes.Length / 2] ^= 0x40;
        Assert.Throws<InvalidDataException>(() => PngImage.Decode(corrupt));
        Assert.Throws<InvalidDataException>(() => PngImage.Decode(pngBytes[..(pngBytes.Length - 20)]));
        var blank = tmp.File("blank.html");
        File.WriteAllText(blank, "<!DOCTYPE html><html><head><title>blank</title></head><body></body></html>");
        var blankShot = tmp.File("blank.png");
        var r3 = HeadlessChromium.Run(tmp.Path, new Uri(blank).AbsoluteUri, $"--screenshot={blankShot}", $"--window-size={WindowWidth},{WindowHeight}");
        Assert.True(r3.ExitCode == 0 && File.Exists(blankShot), $"chromium --screenshot of a blank page exited {r3.ExitCode}: {HeadlessChromium.Tail(r3.Stderr)}");
        var blankPng = PngImage.Decode(File.ReadAllBytes(blankShot));
        var blankColours = new HashSet<int>();
        for (int y = 0; y < blankPng.Height; y++)
            for (int x = 0; x < blankPng.Width; x++) blankColours.Add(blankPng.Rgb(x, y));
        Assert.Single(blankColours);
        output.WriteLine($"DOM {dom.Length} chars, {rows.Count} summary rows; chromium {r1.Elapsed.TotalSeconds:F1} s + {r2.Elapsed.TotalSeconds:F1} s (+ {r3.Elapsed.TotalSeconds:F1} s blank control); total {total.Elapsed.TotalSeconds:F1} s");
        Console.WriteLine($"report screenshot kept at {kept}");
    }

    /// <summary>The serialized element <c>&lt;tag id="id"&gt;...&lt;/tag&gt;</c> (table and svg do not nest in this report).</summary>
    private static string Element(string dom, string tag, string id)
    {
        var open = Regex.Matches(dom, $@"<{tag}\b[^>]*\bid=""{Regex.Escape(id)}""[^>]*>").ToList();
        Assert.True(open.Count == 1, $"expected one <{tag} id=\"{id}\"> in the browser's DOM, found {open.Count}");
        int start = open[0].Index;
        int end = dom.IndexOf($"</{tag}>", start, StringComparison.Ordinal);
        Assert.True(end > start, $"<{tag} id=\"{id}\"> is not closed in the browser's DOM");
        var body = dom[start..(end + tag.Length + 3)];
        Assert.DoesNotContain($"<{tag}", body[1..]);
        return body;
    }
}
