using System.Text.Json;
using EdgeQuant.Cli.Tests.Infrastructure;
using EdgeQuant.Testing;
using EdgeQuant.Verification.Reports;

namespace EdgeQuant.Cli.Tests;

/// <summary><c>edgequant compare</c>: exit codes, Markdown and JSON output, option errors, help snapshot.</summary>
public sealed class CompareCommandTests : IDisposable
{
    private readonly TempDir _dir = new("eq-compare");

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void A_report_against_itself_exits_0_with_no_regression()
    {
        var a = Write("a", Report(0.01, 0.001, 0.9));
        var r = CliRunner.Run("compare", a, a);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Equal("", r.StdErr);
        Assert.StartsWith("## ✅ EdgeQuant compare: no regression", r.StdOut);
        Assert.Contains("| mean KLD | 0.010000 ± 0.001000 nats | 0.010000 ± 0.001000 nats | +0.0 % | same |", r.StdOut);
    }

    [Fact]
    public void A_worse_candidate_exits_3_naming_the_regressed_figures_and_writes_the_markdown_file()
    {
        var baseline = Write("base", Report(0.01, 0.001, 0.90));
        var current = Write("cur", Report(0.05, 0.002, 0.80));
        var md = _dir.File("notes.md");
        var r = CliRunner.Run("compare", baseline, current, "--output", md);
        Assert.True(r.ExitCode == 3, r.ToString());
        Assert.Equal("edgequant: regression: kld_mean, same_top_p", r.StdErr.Trim());
        Assert.StartsWith("## ❌ EdgeQuant compare: 2 regressions", r.StdOut);
        Assert.Equal(r.StdOut, File.ReadAllText(md));
        Assert.Empty(Directory.GetFiles(_dir.Path, "*.tmp-*"));

        // Tolerances wide enough turn both into "worse (within tolerance)".
        var tolerant = CliRunner.Run("compare", baseline, current, "--tolerance", "kld_mean=0.1", "--tolerance", "same_top_p=0.2");
        Assert.True(tolerant.ExitCode == 0, tolerant.ToString());
        Assert.Equal(2, tolerant.StdOut.Split('\n').Count(l => l.EndsWith("| worse (within tolerance) |")));
    }

    [Fact]
    public void Json_is_the_comparison_record_and_nothing_else()
    {
        var baseline = Write("base", Report(0.01, 0.001, 0.90));
        var current = Write("cur", Report(0.05, 0.002, 0.80));
        var r = CliRunner.Run("compare", baseline, current, "--json");
        Assert.Equal(3, r.ExitCode);
        using var doc = JsonDocument.Parse(r.StdOut);
        Assert.Equal(2, doc.RootElement.GetProperty("regressions").GetInt32());
        var kld = doc.RootElement.GetProperty("metrics").EnumerateArray().Single(m => m.GetProperty("metric").GetString() == "kld_mean");
        Assert.Equal("regression", kld.GetProperty("verdict").GetString());
        Assert.Equal(0.04, kld.GetProperty("change").GetDouble(), 12);
        Assert.Equal(Math.Sqrt(0.001 * 0.001 + 0.002 * 0.002), kld.GetProperty("sigma").GetDouble(), 12);
    }

    [Fact]
    public void Bad_input_is_exit_2_with_one_line()
    {
        var a = Write("a", Report(0.01, 0.001, 0.9));
        var missing = CliRunner.Run("compare", a, _dir.File("nope.json"));
        Assert.Equal(2, missing.ExitCode);
        Assert.Contains("nope.json: no such report file", missing.StdErr);

        var notReport = _dir.File("other.json");
        File.WriteAllText(notReport, "{\"schema\": \"something.else\", \"schema_version\": 1, \"candidate\": {\"path\": \"x\", \"format\": \"gguf\", \"runtime\": \"r\", \"runtime_name\": \"r\", \"file_bytes\": 1, \"threads\": 1}}");
        var wrong = CliRunner.Run("compare", a, notReport);
        Assert.Equal(2, wrong.ExitCode);
        Assert.Contains("schema", wrong.StdErr);
        Assert.Single(wrong.ErrorLines);

        Assert.Equal(2, CliRunner.Run("compare", a, a, "--tolerance", "fast=1").ExitCode);
        Assert.Equal(2, CliRunner.Run("compare", a, a, "--sigmas", "-1").ExitCode);
        Assert.Equal(2, CliRunner.Run("compare", a, a, "--output", _dir.Path).ExitCode);
        Assert.Equal(2, CliRunner.Run("compare", a).ExitCode);
    }

    [Fact]
    public void The_real_process_exits_3_on_a_regression()
    {
        var baseline = Write("base", Report(0.01, 0.001, 0.90));
        var current = Write("cur", Report(0.05, 0.002, 0.90));
        var r = CliProcess.Run("compare", baseline, current);
        Assert.True(r.ExitCode == 3, r.ToString());
        Assert.Contains("regression: kld_mean", r.StdErr);
    }

    [Fact]
    public void Compare_help_matches_the_approved_file()
    {
        var r = CliRunner.Run("compare", "--help");
        Assert.Equal(0, r.ExitCode);
        Approvals.Verify("help.compare", r.StdOut);
    }

    private string Write(string name, VerificationReport report)
    {
        var dir = Path.Combine(_dir.Path, name);
        return VerificationReportJson.WriteFile(report, dir);
    }

    private static VerificationReport Report(double kld, double kldUnc, double top) => new()
    {
        Candidate = new CandidateInfo("m.gguf", "gguf", "llamacpp", "llama.cpp (icelake)", 1000, 1),
        Reference = new ReferenceInfo("r.eqref", "base.gguf", "m", "t", "full", null, 256, 8, 512, 1, 1),
        Accuracy = new AccuracyReport
        {
            NScored = 1016, NChunks = 8, NCtx = 256,
            PplBase = 6, PplBaseUnc = 0.07, PplCand = 6.1, PplCandUnc = 0.07, LnPplRatio = 0.01, LnPplRatioUnc = 0.001,
            KldMean = kld, KldMeanUnc = kldUnc, KldMax = 1, KldP99_9 = 0.5, KldP99 = 0.1, KldP95 = 0.05, KldP90 = 0.02, KldMedian = 0.01,
            SameTopP = top, SameTopPUnc = 0.01, DeltaPMean = 0, DeltaPMeanUnc = 0.001, DeltaPRms = 0.01, DeltaPRmsUnc = 0.001,
        },
    };
}
