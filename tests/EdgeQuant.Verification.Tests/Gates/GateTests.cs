using EdgeQuant.Core.Errors;
using EdgeQuant.Verification.Gates;
using EdgeQuant.Verification.Reports;

namespace EdgeQuant.Verification.Tests.Gates;

public class GateTests
{
    private static VerificationReport Report(double kld, double top1, double pplBase, double pplCand, LatencyReport? latency = null) => new()
    {
        Candidate = new CandidateInfo("c.gguf", "gguf", "llamacpp", "llama.cpp", 1, 1),
        Accuracy = new AccuracyReport
        {
            NScored = 500, NChunks = 4, NCtx = 256, PplBase = pplBase, PplBaseUnc = 0, PplCand = pplCand, PplCandUnc = 0,
            LnPplRatio = Math.Log(pplCand / pplBase), LnPplRatioUnc = 0, KldMean = kld, KldMeanUnc = 0, KldMax = kld, KldP99_9 = kld,
            KldP99 = kld, KldP95 = kld, KldP90 = kld, KldMedian = kld, SameTopP = top1, SameTopPUnc = 0, DeltaPMean = 0, DeltaPMeanUnc = 0,
            DeltaPRms = 0, DeltaPRmsUnc = 0,
        },
        Latency = latency,
    };

    [Fact]
    public void Gates_pass_and_fail_as_set_and_failures_name_the_gate_and_figures()
    {
        var r = Report(kld: 0.0978, top1: 0.8359, pplBase: 6.0482, pplCand: 6.4750);
        var specs = new[]
        {
            GateEvaluator.Spec(GateCatalog.MaxKld, 0.05),
            GateEvaluator.Spec(GateCatalog.MinTop1, 0.8),
            GateEvaluator.Spec(GateCatalog.MaxPplIncrease, 0.05),
        };
        var results = GateEvaluator.Evaluate(r, specs);
        Assert.Equal([false, true, false], results.Select(g => g.Passed));
        Assert.Equal(6.4750 / 6.0482 - 1, results[2].Actual!.Value, 12);
        var text = GateEvaluator.DescribeFailures(results)!;
        Assert.Contains("max-kld (kld_mean 0.0978 > 0.05 nats)", text);
        Assert.Contains("max-ppl-increase", text);
        Assert.DoesNotContain("min-top1", text);

        var loose = GateEvaluator.Evaluate(r, [GateEvaluator.Spec(GateCatalog.MaxKld, 0.1), GateEvaluator.Spec(GateCatalog.MaxPplIncrease, 0.08)]);
        Assert.All(loose, g => Assert.True(g.Passed));
        Assert.Null(GateEvaluator.DescribeFailures(loose));
        Assert.True((r with { Gates = loose }).Passed);
        Assert.False((r with { Gates = results }).Passed);
    }

    [Fact]
    public void Boundaries_are_inclusive()
    {
        var r = Report(kld: 0.05, top1: 0.9, pplBase: 5, pplCand: 5);
        var g = GateEvaluator.Evaluate(r, [GateEvaluator.Spec(GateCatalog.MaxKld, 0.05), GateEvaluator.Spec(GateCatalog.MinTop1, 0.9),
            GateEvaluator.Spec(GateCatalog.MaxPplIncrease, 0)]);
        Assert.All(g, x => Assert.True(x.Passed));
    }

    [Fact]
    public void Latency_gates_fail_when_latency_was_not_measured_and_read_it_when_it_was()
    {
        var specs = new[] { GateEvaluator.Spec(GateCatalog.MaxP95Ms, 50), GateEvaluator.Spec(GateCatalog.MinDecodeTps, 10),
            GateEvaluator.Spec(GateCatalog.MaxRssMb, 500) };
        var missing = GateEvaluator.Evaluate(Report(0, 1, 1, 1), specs);
        Assert.All(missing, x => { Assert.False(x.Passed); Assert.Null(x.Actual); Assert.Contains("not measured", x.Note); });

        var measured = GateEvaluator.Evaluate(Report(0, 1, 1, 1, new LatencyReport { TokenMsP95 = 12, DecodeTps = 8, PeakRssMb = 300 }), specs);
        Assert.Equal([true, false, true], measured.Select(x => x.Passed));
        Assert.Contains("min-decode-tps (decode_tps 8 < 10 tokens/s)", GateEvaluator.DescribeFailures(measured));
    }

    [Theory]
    [InlineData(double.NaN)]
    [InlineData(-0.1)]
    [InlineData(double.PositiveInfinity)]
    public void Meaningless_thresholds_are_bad_input(double t)
    {
        Assert.Throws<BadInputException>(() => GateEvaluator.Spec(GateCatalog.MaxKld, t));
    }

    [Fact]
    public void Top1_threshold_is_a_fraction()
    {
        var e = Assert.Throws<BadInputException>(() => GateEvaluator.Spec(GateCatalog.MinTop1, 90));
        Assert.Contains("fraction", e.Message);
    }
}
