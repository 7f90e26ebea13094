using EdgeQuant.Core.Errors;
using EdgeQuant.Verification.Compare;
using EdgeQuant.Verification.Reports;

namespace EdgeQuant.Verification.Tests.Compare;

/// <summary>
/// The verdict rule on figures chosen so each case sits on a known side of its boundary; the expected verdicts are
/// worked by hand from w − zσ against the tolerance (comments give the numbers).
/// </summary>
public sealed class ReportComparerTests
{
    [Fact]
    public void A_report_against_itself_is_the_same_everywhere()
    {
        var r = Report(kld: 0.01, kldUnc: 0.001, top: 0.9, topUnc: 0.01, decodeTps: 100, tokenMs: [10, 10.5, 9.5, 10, 11, 9]);
        var c = ReportComparer.Compare(r, r);
        Assert.False(c.Regressed);
        Assert.All(c.Metrics, m => Assert.Equal(ChangeVerdict.Same, m.Verdict));
        Assert.Contains(c.Metrics, m => m.Metric == "kld_mean");
        Assert.Contains(c.Metrics, m => m.Metric == "token_ms_p95");
        Assert.Empty(c.Warnings);
    }

    [Fact]
    public void A_change_inside_the_combined_uncertainty_is_the_same_and_beyond_it_a_regression()
    {
        var b = Report(kld: 0.010, kldUnc: 0.001);
        // w = 0.002, σ = √2·0.001 = 0.001414, 2σ = 0.002828 > w: same.
        Assert.Equal(ChangeVerdict.Same, Verdict(ReportComparer.Compare(b, Report(kld: 0.012, kldUnc: 0.001)), "kld_mean"));
        // w = 0.0035 > 2σ by 0.00067 and accuracy has no default tolerance: regression.
        var worse = ReportComparer.Compare(b, Report(kld: 0.0135, kldUnc: 0.001));
        Assert.Equal(ChangeVerdict.Regression, Verdict(worse, "kld_mean"));
        Assert.True(worse.Regressed);
        var row = worse.Metrics.Single(m => m.Metric == "kld_mean");
        Assert.Equal(0.0035, row.Change!.Value, 12);
        Assert.Equal(Math.Sqrt(2) * 0.001, row.Sigma!.Value, 12);
        // A tolerance of 0.001 nats covers the 0.00067 beyond 2σ: worse, not a regression.
        var tolerant = ReportComparer.Compare(b, Report(kld: 0.0135, kldUnc: 0.001), CompareTolerances.Parse(["kld_mean=0.001"]));
        Assert.Equal(ChangeVerdict.Worse, Verdict(tolerant, "kld_mean"));
        Assert.False(tolerant.Regressed);
        // More sigmas widen the band: 3σ = 0.00424 > 0.0035.
        Assert.Equal(ChangeVerdict.Same, Verdict(ReportComparer.Compare(b, Report(kld: 0.0135, kldUnc: 0.001), sigmas: 3), "kld_mean"));
    }

    [Fact]
    public void Direction_follows_the_figure_higher_top1_and_speed_are_better()
    {
        // same_top_p 0.90 → 0.95, σ = 0.01414: −w − 2σ = 0.05 − 0.0283 > 0 → better.
        var c = ReportComparer.Compare(Report(top: 0.90, topUnc: 0.01), Report(top: 0.95, topUnc: 0.01));
        Assert.Equal(ChangeVerdict.Better, Verdict(c, "same_top_p"));
        // And the reverse is a regression.
        Assert.Equal(ChangeVerdict.Regression, Verdict(ReportComparer.Compare(Report(top: 0.95, topUnc: 0.01), Report(top: 0.90, topUnc: 0.01)), "same_top_p"));
        // decode 100 → 85 tok/s with no samples (σ = 0): 15 is within the default 20 % speed tolerance → worse.
        Assert.Equal(ChangeVerdict.Worse, Verdict(ReportComparer.Compare(Report(decodeTps: 100), Report(decodeTps: 85)), "decode_tps"));
        // 100 → 70: 30 > 20 → regression; 100 → 130: better.
        Assert.Equal(ChangeVerdict.Regression, Verdict(ReportComparer.Compare(Report(decodeTps: 100), Report(decodeTps: 70)), "decode_tps"));
        Assert.Equal(ChangeVerdict.Better, Verdict(ReportComparer.Compare(Report(decodeTps: 100), Report(decodeTps: 130)), "decode_tps"));
        // --tolerance speed=40% lets 70 pass as worse.
        Assert.Equal(ChangeVerdict.Worse, Verdict(ReportComparer.Compare(Report(decodeTps: 100), Report(decodeTps: 70), CompareTolerances.Parse(["speed=40%"])), "decode_tps"));
    }

    [Fact]
    public void Load_time_and_file_size_never_gate()
    {
        var c = ReportComparer.Compare(Report(loadMs: 10, fileBytes: 1000), Report(loadMs: 100, fileBytes: 5000));
        Assert.Equal(ChangeVerdict.Worse, Verdict(c, "load_ms"));
        Assert.Equal(ChangeVerdict.Worse, Verdict(c, "model_file_bytes"));
        Assert.False(c.Regressed);
    }

    [Fact]
    public void Accuracy_from_different_texts_is_not_compared_and_missing_sections_are_named()
    {
        var b = Report(kld: 0.01, kldUnc: 0.001, textSha: "aa");
        var c = Report(kld: 0.5, kldUnc: 0.001, textSha: "bb");
        var cmp = ReportComparer.Compare(b, c);
        Assert.Equal(ChangeVerdict.NotCompared, Verdict(cmp, "kld_mean"));
        Assert.False(cmp.Regressed);
        Assert.Contains(cmp.Warnings, w => w.Contains("different texts"));

        var noLatency = ReportComparer.Compare(Report(decodeTps: 100), Report(kld: 0.01, kldUnc: 0.001) with { Latency = null });
        var decode = noLatency.Metrics.Single(m => m.Metric == "decode_tps");
        Assert.Equal(ChangeVerdict.NotCompared, decode.Verdict);
        Assert.Equal("not in the current report", decode.Note);
    }

    [Fact]
    public void Tolerances_parse_with_the_most_specific_winning()
    {
        var t = CompareTolerances.Parse(["5%", "speed=15%", "decode_tps=0.5"]);
        Assert.Equal(new Tolerance(0.05, true), t.For(CompareMetrics.Find("kld_mean")!));
        Assert.Equal(new Tolerance(0.15, true), t.For(CompareMetrics.Find("token_ms_p95")!));
        Assert.Equal(new Tolerance(0.5, false), t.For(CompareMetrics.Find("decode_tps")!));
        var defaults = new CompareTolerances();
        Assert.Equal(Tolerance.None, defaults.For(CompareMetrics.Find("kld_mean")!));
        Assert.Equal(new Tolerance(0.2, true), defaults.For(CompareMetrics.Find("ttft_ms")!));
        Assert.Equal(new Tolerance(0.1, true), defaults.For(CompareMetrics.Find("peak_rss_mb")!));
        Assert.Contains("neither a group", Assert.Throws<BadInputException>(() => CompareTolerances.Parse(["klds=1"])).Message);
        Assert.Throws<BadInputException>(() => CompareTolerances.Parse(["-1%"]));
        Assert.Throws<BadInputException>(() => CompareTolerances.Parse(["speed=fast"]));
        Assert.Throws<BadInputException>(() => CompareTolerances.Parse(["NaN"]));
    }

    [Fact]
    public void Sample_uncertainties_follow_their_definitions()
    {
        // 1..100: n·q ± 1.96·√(n·q·(1−q)) = 50 ± 9.8 → ranks 40 and 60 → values 41 and 61 → (61 − 41) / 2 / 1.96.
        var samples = Enumerable.Range(1, 100).Select(i => (double)i).Reverse().ToArray();
        Assert.Equal(20 / 2 / 1.96, SampleUncertainty.Percentile(samples, 50)!.Value, 12);
        // [1,2,3,4] ms: mean 2.5, tps 400, sd √(5/3), se sd/2 → σ_tps = 400 · se / 2.5.
        var l = new LatencyReport { DecodeTps = 400, TokenMs = [1, 2, 3, 4] };
        Assert.Equal(400 * (Math.Sqrt(5.0 / 3) / 2) / 2.5, SampleUncertainty.DecodeTps(l)!.Value, 9);
        Assert.Null(SampleUncertainty.DecodeTps(new LatencyReport { DecodeTps = 400, TokenMs = [1] }));
        Assert.Null(SampleUncertainty.Percentile(null, 95));
    }

    [Fact]
    public void Markdown_has_one_row_per_figure_and_names_the_regressions()
    {
        var c = ReportComparer.Compare(Report(kld: 0.010, kldUnc: 0.001, top: 0.9, topUnc: 0.01, decodeTps: 100),
            Report(kld: 0.02, kldUnc: 0.001, top: 0.9, topUnc: 0.01, decodeTps: 101), baselinePath: "/r/base.json", currentPath: "/r/cur.json");
        var md = CompareMarkdown.Render(c);
        var lines = md.Split('\n');
        Assert.StartsWith("## ❌ EdgeQuant compare: 1 regression", lines[0]);
        Assert.Contains("`base.json`", md);
        var rows = lines.Where(l => l.StartsWith("| ") && !l.StartsWith("| figure")).ToList();
        Assert.Equal(c.Metrics.Count, rows.Count);
        Assert.Contains("| mean KLD | 0.010000 ± 0.001000 nats | 0.020000 ± 0.001000 nats | +100.0 % | ❌ **regression** |", rows);
        Assert.Contains("| same top token | 90.00 % ± 1.0 | 90.00 % ± 1.0 | +0.00 pp | same |", rows);
    }

    private static ChangeVerdict Verdict(ComparisonReport c, string metric) => c.Metrics.Single(m => m.Metric == metric).Verdict;

    private static VerificationReport Report(double? kld = null, double kldUnc = 0, double? top = null, double topUnc = 0, double? decodeTps = null,
        double[]? tokenMs = null, double? loadMs = null, long fileBytes = 1000, string textSha = "t")
    {
        AccuracyReport? accuracy = kld is null && top is null ? null : new AccuracyReport
        {
            NScored = 1000, NChunks = 8, NCtx = 256,
            PplBase = 6, PplBaseUnc = 0.07, PplCand = 6, PplCandUnc = 0.07, LnPplRatio = 0, LnPplRatioUnc = 0,
            KldMean = kld ?? 0, KldMeanUnc = kldUnc, KldMax = 1, KldP99_9 = 0.5, KldP99 = 0.1, KldP95 = 0.05, KldP90 = 0.02, KldMedian = 0.01,
            SameTopP = top ?? 1, SameTopPUnc = topUnc, DeltaPMean = 0, DeltaPMeanUnc = 0, DeltaPRms = 0.01, DeltaPRmsUnc = 0,
        };
        LatencyReport? latency = decodeTps is null && loadMs is null ? null : new LatencyReport
        {
            DecodeTps = decodeTps, TokenMs = tokenMs, LoadMs = loadMs, ModelFileBytes = fileBytes,
            TokenMsP95 = tokenMs is null ? null : EdgeQuant.Verification.Latency.LatencyStatistics.Percentile(tokenMs, 95),
        };
        return new VerificationReport
        {
            Candidate = new CandidateInfo("m.gguf", "gguf", "llamacpp", "llama.cpp", fileBytes, 1),
            Reference = new ReferenceInfo("r.eqref", "base.gguf", "m", textSha, "full", null, 256, 8, 512, 1, 1),
            Accuracy = accuracy,
            Latency = latency,
        };
    }
}
