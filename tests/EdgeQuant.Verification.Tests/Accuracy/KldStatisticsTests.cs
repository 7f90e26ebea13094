using EdgeQuant.Core.Errors;
using EdgeQuant.Verification.Accuracy;
using EdgeQuant.Verification.Reference;
using EdgeQuant.Verification.Reports;
using EdgeQuant.Verification.Tests.Reference;

namespace EdgeQuant.Verification.Tests.Accuracy;

/// <summary>
/// The accumulator against the definitions computed directly in double precision here (two-pass variances, sorted
/// percentiles), from the same decoded reference log-probs; and against the exact, unencoded distributions.
/// </summary>
public class KldStatisticsTests
{
    /// <summary>
    /// Float vs double: the accumulator keeps llama-perplexity's float per-position arithmetic (lse, NLL, each KLD
    /// term), so per-position values carry ~1e-6 relative error; means over hundreds of positions agree to ~1e-5.
    /// </summary>
    private const double FloatArithmetic = 2e-5;

    private sealed record Direct(double[] Nll, double[] NllBase, double[] Kld, bool[] Same, double[] PDiff);

    /// <summary>Per-position figures in double from the decoded reference (full mode: only entries above −16 nats, as defined).</summary>
    private static Direct Compute(RefTestData.Synthetic s, ReferenceFile f)
    {
        int n = s.BaseLogits.Length, rows = f.Header.ScoredPerChunk;
        var d = new Direct(new double[n], new double[n], new double[n], new bool[n], new double[n]);
        for (int r = 0; r < n; r++)
        {
            var q = RefTestData.LogSoftmax(s.CandLogits[r]);
            var rec = f.Full(r / rows, r % rows);
            var lp = new double[q.Length];
            for (int i = 0; i < q.Length; i++) lp[i] = (double)rec.Scale * rec.Code(i) + rec.MinLogProb;
            int t = s.Targets[r];
            d.Nll[r] = -q[t];
            d.NllBase[r] = -lp[t];
            d.Kld[r] = Enumerable.Range(0, q.Length).Where(i => lp[i] > -16).Sum(i => Math.Exp(lp[i]) * (lp[i] - q[i]));
            int argQ = Array.IndexOf(q, q.Max()), argP = Array.IndexOf(lp, lp.Max());
            d.Same[r] = argQ == argP;
            d.PDiff[r] = Math.Exp(q[t]) - Math.Exp(lp[t]);
        }
        return d;
    }

    private static double Mean(double[] x) => x.Average();
    private static double StdErr(double[] x)
    {
        double m = x.Average();
        return Math.Sqrt(x.Sum(v => (v - m) * (v - m)) / (x.Length - 1) / x.Length);
    }

    private static double Percentile(double[] x, double f)
    {
        var s = x.OrderBy(v => v).ToArray();
        double p = f * (s.Length - 1);
        int i = (int)Math.Floor(p);
        return i + 1 < s.Length ? s[i] + (p - i) * (s[i + 1] - s[i]) : s[i];
    }

    private static AccuracyReport Accumulate(RefTestData.Synthetic s, ReferenceFile f)
    {
        var acc = new KldAccumulator();
        int rows = f.Header.ScoredPerChunk;
        for (int r = 0; r < s.BaseLogits.Length; r++)
        {
            if (f.Header.Mode == ReferenceMode.Full) acc.AddFull(s.CandLogits[r], s.Targets[r], f.Full(r / rows, r % rows));
            else acc.AddTopK(s.CandLogits[r], s.Targets[r], f.TopK(r / rows, r % rows));
        }
        return acc.Finish(f.Header.NChunks, f.Header.NCtx, rows);
    }

    /// <param name="absolute">Floor for figures near zero, where float per-position arithmetic (~1e-6 nats) dominates.</param>
    private static void Near(double expected, double actual, double relative, string what, double absolute = 1e-9) =>
        Assert.True(Math.Abs(actual - expected) <= relative * Math.Abs(expected) + absolute, $"{what}: {actual} vs direct {expected}");

    [Fact]
    public void Full_reference_statistics_equal_the_direct_double_precision_definitions()
    {
        var s = RefTestData.Make(vocab: 257, nCtx: 64, nChunks: 8, topK: null, seed: 11, noise: 0.6f); // 8 × 31 = 248 positions
        using var f = ReferenceFile.FromBytes(s.Bytes, "r.eqref");
        var a = Accumulate(s, f);
        var d = Compute(s, f);
        int n = d.Kld.Length;
        Assert.Equal(n, a.NScored);

        Near(Math.Exp(Mean(d.Nll)), a.PplCand, FloatArithmetic, "ppl_cand");
        Near(Math.Exp(Mean(d.NllBase)), a.PplBase, FloatArithmetic, "ppl_base");
        Near(Math.Exp(Mean(d.Nll)) * StdErr(d.Nll), a.PplCandUnc, 1e-4, "ppl_cand_unc");
        Near(Math.Exp(Mean(d.NllBase)) * StdErr(d.NllBase), a.PplBaseUnc, 1e-4, "ppl_base_unc");
        var diff = d.Nll.Zip(d.NllBase, (x, y) => x - y).ToArray();
        Near(Mean(diff), a.LnPplRatio, 1e-4, "ln_ppl_ratio");
        Near(StdErr(diff), a.LnPplRatioUnc, 1e-3, "ln_ppl_ratio_unc");

        Near(Mean(d.Kld), a.KldMean, FloatArithmetic * 10, "kld_mean");
        Near(StdErr(d.Kld), a.KldMeanUnc, 1e-3, "kld_mean_unc");
        Near(Percentile(d.Kld, 0.999), a.KldP99_9, 1e-4, "kld_p99_9");
        Near(Percentile(d.Kld, 0.99), a.KldP99, 1e-4, "kld_p99");
        Near(Percentile(d.Kld, 0.95), a.KldP95, 1e-4, "kld_p95");
        Near(Percentile(d.Kld, 0.90), a.KldP90, 1e-4, "kld_p90");
        Near(Percentile(d.Kld, 0.5), a.KldMedian, 1e-4, "kld_median");
        Near(d.Kld.Max(), a.KldMax, 1e-4, "kld_max");
        Near(d.Kld.Min(), a.KldMin, 1e-3, "kld_min", absolute: 2e-6);

        double same = d.Same.Count(x => x) / (double)n;
        Assert.Equal(same, a.SameTopP);
        Assert.InRange(same, 0.2, 0.99); // the fixture must exercise both outcomes
        Near(Math.Sqrt(same * (1 - same) / (n - 1)), a.SameTopPUnc, 1e-12, "same_top_p_unc");

        Near(Mean(d.PDiff), a.DeltaPMean, 1e-3, "delta_p_mean");
        Near(StdErr(d.PDiff), a.DeltaPMeanUnc, 1e-3, "delta_p_mean_unc");
        var sq = d.PDiff.Select(x => x * x).ToArray();
        double rms = Math.Sqrt(Mean(sq));
        Near(rms, a.DeltaPRms, 1e-4, "delta_p_rms");
        Near(0.5 / rms * StdErr(sq), a.DeltaPRmsUnc, 1e-3, "delta_p_rms_unc");

        Assert.Equal(8, a.ChunkKld.Count);
        for (int c = 0; c < 8; c++) Near(d.Kld.Skip(c * 31).Take(31).Average(), a.ChunkKld[c], 1e-4, $"chunk_kld[{c}]");
        Assert.Null(a.Approximation);
    }

    [Fact]
    public void Full_reference_kld_is_close_to_the_kld_of_the_unencoded_distributions()
    {
        // The 16-bit encoding moves each log-prob by at most scale/2 ≈ 1.2e-4 nats and drops p < e^-16: the mean KLD
        // over a few hundred positions stays within 1 % of the exact one for a drift of this size.
        var s = RefTestData.Make(vocab: 1000, nCtx: 64, nChunks: 4, topK: null, seed: 12, noise: 0.3f);
        using var f = ReferenceFile.FromBytes(s.Bytes, "r.eqref");
        var a = Accumulate(s, f);
        double exact = 0;
        for (int r = 0; r < s.BaseLogits.Length; r++)
        {
            var p = RefTestData.LogSoftmax(s.BaseLogits[r]);
            var q = RefTestData.LogSoftmax(s.CandLogits[r]);
            exact += Enumerable.Range(0, p.Length).Sum(i => Math.Exp(p[i]) * (p[i] - q[i]));
        }
        exact /= s.BaseLogits.Length;
        Near(exact, a.KldMean, 0.01, "kld_mean vs unencoded");
    }

    [Fact]
    public void TopK_over_the_whole_vocabulary_is_the_exact_kld_and_smaller_K_the_coarsened_lower_bound()
    {
        var full = RefTestData.Make(vocab: 120, nCtx: 32, nChunks: 8, topK: 120, seed: 13, noise: 0.5f);
        using var ff = ReferenceFile.FromBytes(full.Bytes, "full.eqref");
        var a = Accumulate(full, ff);
        var exactKld = new double[full.BaseLogits.Length];
        var coarse = new double[full.BaseLogits.Length];
        var nllBase = new double[full.BaseLogits.Length];
        const int K = 8;
        for (int r = 0; r < exactKld.Length; r++)
        {
            var p = RefTestData.LogSoftmax(full.BaseLogits[r]);
            var q = RefTestData.LogSoftmax(full.CandLogits[r]);
            exactKld[r] = Enumerable.Range(0, p.Length).Sum(i => Math.Exp(p[i]) * (p[i] - q[i]));
            var top = Enumerable.Range(0, p.Length).OrderByDescending(i => p[i]).Take(K).ToHashSet();
            double pt = 0, qt = 0, kl = 0;
            for (int i = 0; i < p.Length; i++)
            {
                if (top.Contains(i)) kl += Math.Exp(p[i]) * (p[i] - q[i]);
                else { pt += Math.Exp(p[i]); qt += Math.Exp(q[i]); }
            }
            coarse[r] = kl + pt * Math.Log(pt / qt);
            nllBase[r] = -p[full.Targets[r]];
        }
        Near(exactKld.Average(), a.KldMean, 1e-4, "top-K = vocab: kld_mean");
        Near(Math.Exp(nllBase.Average()), a.PplBase, 1e-5, "top-K: ppl_base is exact");
        Assert.Contains("lower bound", new KldAccumulator().GetType().Assembly.GetType("EdgeQuant.Verification.Accuracy.DriftEvaluator")!
            .GetMethod("TopKNote")!.Invoke(null, [K])!.ToString());

        // Same logits with only the top 8 kept: the coarsened KLD, never above the exact one.
        var topk = RefTestData.Make(vocab: 120, nCtx: 32, nChunks: 8, topK: K, seed: 13, noise: 0.5f);
        Assert.Equal(full.CandLogits[5], topk.CandLogits[5]);
        using var tf = ReferenceFile.FromBytes(topk.Bytes, "topk.eqref");
        var b = Accumulate(topk, tf);
        Near(coarse.Average(), b.KldMean, 1e-4, "top-8: coarsened kld_mean");
        Assert.True(b.KldMean <= a.KldMean + 1e-9);
        Assert.Equal(a.SameTopP, b.SameTopP);
        Near(a.PplBase, b.PplBase, 1e-6, "ppl_base independent of K");
        Near(a.DeltaPRms, b.DeltaPRms, 1e-6, "delta_p_rms independent of K");
    }

    [Fact]
    public void Identical_candidate_gives_zero_kld_and_full_agreement()
    {
        var s = RefTestData.Make(vocab: 200, nCtx: 32, nChunks: 8, topK: null, seed: 14, noise: 0f);
        using var f = ReferenceFile.FromBytes(s.Bytes, "r.eqref");
        var a = Accumulate(s, f);
        Assert.Equal(1.0, a.SameTopP);
        Assert.InRange(a.KldMean, -1e-6, 1e-6); // only the 16-bit rounding remains
        Assert.InRange(Math.Abs(a.LnPplRatio), 0, 1e-4); // targets sampled from the base: inside its 16-nat window
        Assert.InRange(Math.Abs(a.DeltaPRms), 0, 1e-4);
    }

    [Fact]
    public void Fewer_than_100_scored_positions_are_refused()
    {
        var s = RefTestData.Make(vocab: 30, nCtx: 16, nChunks: 14, topK: null, seed: 15); // 14 × 7 = 98
        using var f = ReferenceFile.FromBytes(s.Bytes, "r.eqref");
        var e = Assert.Throws<BadInputException>(() => Accumulate(s, f));
        Assert.Contains("98 scored tokens", e.Message);
        Assert.Contains("100", e.Message);
    }
}
