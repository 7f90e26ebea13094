namespace EdgeQuant.Verification.Reports;

/// <summary>The file names <c>verify --report DIR</c> writes and one call that writes the rendered ones.</summary>
public static class ReportFiles
{
    public const string Json = "report.json";
    public const string Markdown = "report.md";
    public const string Html = "report.html";
    public const string Junit = "junit.xml";

    /// <summary>
    /// Writes <c>report.md</c>, <c>report.html</c> and <c>junit.xml</c> into <paramref name="directory"/> (created if
    /// needed), each through a temp file and a rename, so a reader never sees half a file. <c>report.json</c> is
    /// <see cref="VerificationReportJson.WriteFile"/>'s.
    /// </summary>
    /// <returns>The paths written, in that order.</returns>
    public static IReadOnlyList<string> WriteRendered(VerificationReport report, string directory)
    {
        ArgumentNullException.ThrowIfNull(report);
        Directory.CreateDirectory(directory);
        return
        [
            Write(directory, Markdown, MarkdownReport.Render(report)),
            Write(directory, Html, HtmlReport.Render(report)),
            Write(directory, Junit, JunitReport.Render(report)),
        ];
    }

    private static string Write(string directory, string name, string content)
    {
        var path = Path.Combine(directory, name);
        var temp = path + ".tmp-" + Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture);
        try
        {
            File.WriteAllText(temp, content, new System.Text.UTF8Encoding(false));
            File.Move(temp, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
        return path;
    }
}
