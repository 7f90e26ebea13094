using System.Globalization;
using System.Text;
using static EdgeQuant.Verification.Reports.RenderFormat;

namespace EdgeQuant.Verification.Reports;

/// <summary>
/// <c>report.html</c>: one self-contained page (inline CSS and SVG, no script, no external asset) with the verdict,
/// the summary table (<c>#summary-table</c>), the gates (<c>#gates-table</c>), plots of the per-chunk mean KLD
/// (<c>#plot-chunk-kld</c>), the per-token latency distribution (<c>#plot-token-latency</c>) and its sequence
/// (<c>#plot-token-series</c>), and the environment. Written as well-formed XHTML, so it also parses as XML (tests
/// and tools can read it with an XML parser) while browsers treat it as HTML5.
/// </summary>
public static class HtmlReport
{
    private const string Style =
        "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem;color:#111827}" +
        "h1{font-size:1.4rem;margin-bottom:.25rem}h2{font-size:1.1rem;margin-top:2rem;border-bottom:1px solid #e5e7eb}" +
        "table{border-collapse:collapse;margin:.5rem 0}td,th{padding:.25rem .75rem;border-bottom:1px solid #f3f4f6;text-align:left}" +
        "td.num{text-align:right;font-variant-numeric:tabular-nums}th{background:#f9fafb}tr.group td{font-weight:600;background:#f9fafb}" +
        ".verdict{display:inline-block;padding:.2rem .6rem;border-radius:.3rem;font-weight:600}" +
        ".pass{background:#dcfce7;color:#166534}.fail{background:#fee2e2;color:#991b1b}.none{background:#e5e7eb;color:#374151}" +
        "code{font-size:.9em;background:#f3f4f6;padding:0 .2rem;border-radius:.2rem;word-break:break-all}" +
        "figure{margin:1rem 0}figcaption{font-size:.9rem;color:#4b5563}svg.plot{max-width:100%;height:auto}" +
        "svg text{font-size:11px;fill:#374151}svg text.note{fill:#991b1b}footer{margin-top:2rem;font-size:.8rem;color:#6b7280}";

    public static string Render(VerificationReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        var sb = new StringBuilder();
        string verdictClass = report.Gates.Count == 0 ? "none" : report.Passed ? "pass" : "fail";
        string candidateName = Path.GetFileName(report.Candidate.Path.TrimEnd('/', '\\'));
        sb.Append("<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n")
          .Append("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n")
          .Append("<title>EdgeQuant verify: ").Append(Xml(candidateName)).Append(" — ").Append(Xml(ReportSummary.Verdict(report))).Append("</title>\n")
          .Append("<style>").Append(Style).Append("</style>\n</head>\n<body>\n");

        sb.Append("<header><h1>EdgeQuant verify: <code>").Append(Xml(candidateName)).Append("</code></h1>\n<p><span id=\"verdict\" class=\"verdict ")
          .Append(verdictClass).Append("\">").Append(Xml(ReportSummary.Verdict(report))).Append("</span></p>\n");
        var c = report.Candidate;
        sb.Append("<p>Candidate <code>").Append(Xml(c.Path)).Append("</code> (").Append(Xml(c.Format)).Append(", ").Append(Xml(Bytes(c.FileBytes)))
          .Append(") in <b>").Append(Xml(c.RuntimeName)).Append("</b>, ").Append(Xml(Int(c.Threads))).Append(c.Threads == 1 ? " thread" : " threads");
        if (report.Reference is { } r)
        {
            sb.Append("; reference <code>").Append(Xml(r.Path)).Append("</code> (").Append(Xml(r.Mode == "top_k" && r.TopK is { } k ? $"top-{k}" : r.Mode))
              .Append(", n_ctx ").Append(Xml(Int(r.NCtx))).Append(", ").Append(Xml(Int(r.NChunks))).Append(" chunks, ")
              .Append(Xml(Sig(r.BytesPerScoredToken, 3))).Append(" bytes per scored token)");
        }
        sb.Append(".</p></header>\n");

        sb.Append("<section id=\"summary\"><h2>Summary</h2>\n");
        var rows = ReportSummary.Rows(report);
        if (rows.Count == 0) sb.Append("<p>No accuracy or latency figures in this report.</p>\n");
        else
        {
            sb.Append("<table id=\"summary-table\"><thead><tr><th>figure</th><th>value</th><th>±</th><th>field</th></tr></thead><tbody>\n");
            string? group = null;
            foreach (var row in rows)
            {
                if (row.Group != group)
                {
                    group = row.Group;
                    sb.Append("<tr class=\"group\"><td colspan=\"4\">").Append(Xml(group)).Append("</td></tr>\n");
                }
                sb.Append("<tr><td>").Append(Xml(row.Label)).Append("</td><td class=\"num\">").Append(Xml(row.Value)).Append("</td><td class=\"num\">")
                  .Append(Xml(row.Uncertainty)).Append("</td><td><code>").Append(Xml(row.Metric)).Append("</code></td></tr>\n");
            }
            sb.Append("</tbody></table>\n");
        }
        sb.Append("</section>\n");

        sb.Append("<section id=\"gates\"><h2>Gates</h2>\n");
        if (report.Gates.Count == 0) sb.Append("<p>No gates were set.</p>\n");
        else
        {
            sb.Append("<table id=\"gates-table\"><thead><tr><th>gate</th><th>metric</th><th>threshold</th><th>actual</th><th>result</th></tr></thead><tbody>\n");
            foreach (var g in report.Gates)
            {
                sb.Append("<tr class=\"").Append(g.Passed ? "pass" : "fail").Append("\"><td><code>--").Append(Xml(g.Name)).Append("</code></td><td>")
                  .Append(Xml(g.Metric)).Append("</td><td class=\"num\">").Append(Xml(g.Comparison)).Append(' ').Append(Xml(WithUnit(g.Threshold, g.Unit)))
                  .Append("</td><td class=\"num\">").Append(Xml(g.Actual is null ? "not measured" : WithUnit(g.Actual, g.Unit))).Append("</td><td>")
                  .Append(g.Passed ? "pass" : "FAIL").Append("</td></tr>\n");
            }
            sb.Append("</tbody></table>\n");
        }
        sb.Append("</section>\n");

        sb.Append("<section id=\"plots\"><h2>Plots</h2>\n");
        if (report.Accuracy is { ChunkKld.Count: > 0 } a)
        {
            sb.Append("<figure>").Append(RenderSvg.Line("plot-chunk-kld", "Mean KL divergence per chunk", a.ChunkKld, "chunk", "mean KLD (nats)",
                    a.KldMean, "mean " + Fixed(a.KldMean, 6)))
              .Append("<figcaption>Mean KL divergence of the candidate from the reference in each chunk of ")
              .Append(Xml(Int(a.NCtx))).Append(" tokens; the dashed line is the mean over all ").Append(Xml(Int(a.NScored))).Append(" scored tokens.</figcaption></figure>\n");
        }
        else sb.Append("<p>No per-chunk KLD in this report.</p>\n");
        if (report.Latency is { TokenMs.Count: > 0 } l)
        {
            var markers = new List<(string, double)>();
            if (l.TokenMsP50 is { } p50) markers.Add(("p50", p50));
            if (l.TokenMsP95 is { } p95) markers.Add(("p95", p95));
            if (l.TokenMsP99 is { } p99) markers.Add(("p99", p99));
            sb.Append("<figure>").Append(RenderSvg.Histogram("plot-token-latency", "Per-token decode latency distribution", l.TokenMs, "ms per token", markers))
              .Append("<figcaption>Distribution of the wall time of ").Append(Xml(Int(l.TokenMs.Count)))
              .Append(" single-token decode steps (greedy), with the percentiles the gates read.</figcaption></figure>\n");
            sb.Append("<figure>").Append(RenderSvg.Line("plot-token-series", "Per-token decode latency in generation order", l.TokenMs, "generated token", "ms",
                    l.TokenMsP50, "p50"))
              .Append("<figcaption>The same steps in order: a trend shows the cost of a growing KV cache, spikes show interference.</figcaption></figure>\n");
        }
        else sb.Append("<p>No per-token latencies in this report.</p>\n");
        sb.Append("</section>\n");

        sb.Append("<section id=\"environment\"><h2>Environment</h2>\n<table id=\"environment-table\"><tbody>\n");
        void Env(string k, string? v) => sb.Append("<tr><th>").Append(Xml(k)).Append("</th><td>").Append(Xml(v ?? "unknown")).Append("</td></tr>\n");
        var e = report.Environment;
        Env("CPU", e?.CpuModel ?? report.Latency?.CpuModel);
        if (e is not null)
        {
            Env("logical cores", Int(e.LogicalCores));
            Env("OS", $"{e.Os} ({e.Architecture})");
            Env(".NET", e.DotnetVersion);
            if (e.MachineName is { } m) Env("machine", m);
        }
        Env("runtime", c.RuntimeName);
        Env("threads", Int(c.Threads));
        Env("edgequant", report.ToolVersion);
        Env("written", report.CreatedUtc.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss 'UTC'", CultureInfo.InvariantCulture));
        sb.Append("</tbody></table></section>\n");
        sb.Append("<footer>").Append(Xml(report.Schema)).Append(" schema version ").Append(report.SchemaVersion.ToString(CultureInfo.InvariantCulture))
          .Append("; the figures and their units are in report.json.</footer>\n</body>\n</html>\n");
        return sb.ToString();
    }
}
