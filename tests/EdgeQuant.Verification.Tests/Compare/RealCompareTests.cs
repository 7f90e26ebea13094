using EdgeQuant.Runtimes.LlamaCpp.Native;
using EdgeQuant.Verification.Compare;
using EdgeQuant.Verification.Tests.Latency;
using EdgeQuant.Verification.Tests.Reports;
using Xunit.Abstractions;

namespace EdgeQuant.Verification.Tests.Compare;

/// <summary>compare on reports from real llama.cpp runs (see <see cref="RealReportFixture"/>).</summary>
public sealed class RealCompareTests(RealReportFixture fixture, ITestOutputHelper output) : IClassFixture<RealReportFixture>
{
    [LatencyLlamaCppFact(RealReportFixture.Stories, RealReportFixture.Text)]
    public void Q2_K_against_Q8_0_is_a_regression_in_drift()
    {
        var q8 = fixture.ReportFor(LlamaFileType.MostlyQ8_0);
        var q2 = fixture.ReportFor(LlamaFileType.MostlyQ2_K);
        var c = ReportComparer.Compare(q8, q2, baselinePath: "q8_0.json", currentPath: "q2_k.json");
        output.WriteLine(CompareMarkdown.Render(c));
        Assert.True(c.Regressed);
        Assert.Equal(ChangeVerdict.Regression, c.Metrics.Single(m => m.Metric == "kld_mean").Verdict);
        Assert.Equal(ChangeVerdict.Regression, c.Metrics.Single(m => m.Metric == "same_top_p").Verdict);
        // The reverse direction is an improvement, not a regression, in the same figures.
        var back = ReportComparer.Compare(q2, q8);
        Assert.Equal(ChangeVerdict.Better, back.Metrics.Single(m => m.Metric == "kld_mean").Verdict);
    }

    [LatencyLlamaCppFact(RealReportFixture.Stories, RealReportFixture.Text)]
    public void A_rerun_of_the_same_model_changes_no_accuracy_figure()
    {
        var first = fixture.ReportFor(LlamaFileType.MostlyQ8_0);
        var rerun = fixture.Rerun(LlamaFileType.MostlyQ8_0);
        // Timings of two runs on a shared machine may differ by any amount, so the speed figures get a tolerance no
        // run can exceed here: this test is about the verdict logic on real data, not about this machine's noise.
        var c = ReportComparer.Compare(first, rerun, CompareTolerances.Parse(["speed=1000%", "memory=1000%"]));
        output.WriteLine(CompareMarkdown.Render(c));
        Assert.False(c.Regressed);
        Assert.All(c.Metrics.Where(m => CompareMetrics.Find(m.Metric)!.Group == MetricGroup.Accuracy),
            m => Assert.Equal(ChangeVerdict.Same, m.Verdict));
        Assert.Contains(c.Metrics, m => m.Metric == "decode_tps" && m.Verdict != ChangeVerdict.NotCompared);
    }
}
