using System.Text;
using static EdgeQuant.Verification.Reports.RenderFormat;

namespace EdgeQuant.Verification.Reports;

/// <summary>
/// <c>report.md</c>: GitHub-flavoured Markdown sized for a CI job summary (<c>$GITHUB_STEP_SUMMARY</c>) or a PR
/// comment: a verdict line, the gates (failures first in the reader's eye: a ❌ per failed gate), one summary
/// table, and the environment in a collapsed block. Plain tables only, so GitLab and Azure DevOps render it too.
/// </summary>
public static class MarkdownReport
{
    public static string Render(VerificationReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        var sb = new StringBuilder();
        bool failed = report.Gates.Any(g => !g.Passed);
        string mark = report.Gates.Count == 0 ? "ℹ️" : failed ? "❌" : "✅";
        sb.Append("## ").Append(mark).Append(" EdgeQuant verify: ").Append(ReportSummary.Verdict(report)).Append("\n\n");

        var c = report.Candidate;
        sb.Append("Candidate ").Append(MdCode(c.Path)).Append(" (").Append(MdCell(c.Format)).Append(", ").Append(Bytes(c.FileBytes))
          .Append(") in **").Append(MdCell(c.RuntimeName)).Append("**, ").Append(Int(c.Threads)).Append(c.Threads == 1 ? " thread" : " threads");
        if (report.Reference is { } r)
        {
            sb.Append("; reference ").Append(MdCode(r.Path)).Append(" (").Append(MdCell(r.Mode == "top_k" && r.TopK is { } k ? $"top-{k}" : r.Mode))
              .Append(", n_ctx ").Append(Int(r.NCtx)).Append(", ").Append(Int(r.NChunks)).Append(" chunks)");
        }
        sb.Append(".\n\n");

        if (report.Gates.Count > 0)
        {
            sb.Append("| gate | metric | threshold | actual | result |\n|---|---|---|---|---|\n");
            foreach (var g in report.Gates)
            {
                sb.Append("| `--").Append(MdCell(g.Name)).Append("` | ").Append(MdCell(g.Metric)).Append(" | ").Append(MdCell(g.Comparison)).Append(' ')
                  .Append(MdCell(WithUnit(g.Threshold, g.Unit))).Append(" | ").Append(MdCell(g.Actual is null ? "not measured" : WithUnit(g.Actual, g.Unit)))
                  .Append(" | ").Append(g.Passed ? "✅ pass" : "❌ **fail**").Append(" |\n");
            }
            sb.Append('\n');
        }

        var rows = ReportSummary.Rows(report);
        if (rows.Count > 0)
        {
            sb.Append("| figure | value | ± |\n|---|---:|---:|\n");
            string? group = null;
            foreach (var row in rows)
            {
                if (row.Group != group)
                {
                    group = row.Group;
                    sb.Append("| **").Append(group).Append("** | | |\n");
                }
                sb.Append("| ").Append(MdCell(row.Label)).Append(" | ").Append(MdCell(row.Value)).Append(" | ").Append(MdCell(row.Uncertainty)).Append(" |\n");
            }
            sb.Append('\n');
        }
        else
        {
            sb.Append("_No accuracy or latency figures in this report._\n\n");
        }

        if (report.Environment is { } e)
        {
            sb.Append("<details><summary>Environment</summary>\n\n")
              .Append("| | |\n|---|---|\n")
              .Append("| CPU | ").Append(MdCell(e.CpuModel ?? report.Latency?.CpuModel ?? "unknown")).Append(" |\n")
              .Append("| logical cores | ").Append(Int(e.LogicalCores)).Append(" |\n")
              .Append("| OS | ").Append(MdCell(e.Os)).Append(" (").Append(MdCell(e.Architecture)).Append(") |\n")
              .Append("| .NET | ").Append(MdCell(e.DotnetVersion)).Append(" |\n")
              .Append("| edgequant | ").Append(MdCell(report.ToolVersion)).Append(" |\n")
              .Append("| written | ").Append(report.CreatedUtc.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss 'UTC'", System.Globalization.CultureInfo.InvariantCulture)).Append(" |\n")
              .Append("\n</details>\n");
        }
        return sb.ToString();
    }
}
