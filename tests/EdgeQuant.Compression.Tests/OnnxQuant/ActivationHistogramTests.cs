using EdgeQuant.Compression.OnnxQuant;
using EdgeQuant.Core.Errors;
using Xunit.Abstractions;

namespace EdgeQuant.Compression.Tests.OnnxQuant;

/// <summary>
/// The four calibration methods on synthetic activations whose answers are known or recomputed here independently
/// (sorting for percentiles, real quantize-dequantize for MSE).
/// </summary>
public sealed class ActivationHistogramTests(ITestOutputHelper output)
{
    /// <summary>Gaussian bulk (σ = 1, mean 0.3) plus a few planted outliers, as LLM activations look.</summary>
    private static float[] Activations(int n, int seed, float outlier = 20f, int outliers = 20)
    {
        var rng = new Random(seed);
        var x = new float[n];
        for (int i = 0; i < n; i++)
        {
            double u1 = 1 - rng.NextDouble(), u2 = rng.NextDouble();
            x[i] = (float)(0.3 + Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
        }
        for (int k = 0; k < outliers; k++) x[rng.Next(n)] = (k % 3 == 0 ? -0.5f : 1f) * outlier * (float)(0.5 + rng.NextDouble() / 2);
        return x;
    }

    private static ActivationHistogram Histogram(float[] x, int batch = 4096, int bins = 2048)
    {
        var h = new ActivationHistogram(bins);
        for (int i = 0; i < x.Length; i += batch) Assert.True(h.Add(x.AsSpan(i, Math.Min(batch, x.Length - i))));
        return h;
    }

    [Fact]
    public void MinMax_is_the_exact_extremes()
    {
        var x = Activations(100_000, 1);
        var (lo, hi) = Histogram(x, batch: 999).Range(CalibrationMethod.MinMax, symmetric: false);
        Assert.Equal(x.Min(), lo);
        Assert.Equal(x.Max(), hi);
    }

    [Fact]
    public void Counts_do_not_depend_on_batching_or_order()
    {
        var x = Activations(60_000, 2);
        // Growing magnitudes force several doublings in one order and none in the other.
        var sorted = x.OrderBy(Math.Abs).ToArray();
        var reversed = sorted.Reverse().ToArray();
        var a = Histogram(sorted, batch: 100);
        var b = Histogram(reversed, batch: 7_777);
        Assert.Equal(a.Limit, b.Limit);
        Assert.Equal(a.Counts.ToArray(), b.Counts.ToArray());
        Assert.Equal(x.Length, a.Counts.ToArray().Sum());
        foreach (var m in Enum.GetValues<CalibrationMethod>())
            foreach (bool sym in new[] { false, true })
                Assert.Equal(a.Range(m, sym), b.Range(m, sym));
    }

    [Theory]
    [InlineData(99.99)]
    [InlineData(99.9)]
    [InlineData(99.0)]
    [InlineData(90.0)]
    public void Percentile_of_abs_matches_a_sort(double p)
    {
        var x = Activations(200_000, 3);
        var h = Histogram(x);
        var (lo, hi) = h.Range(CalibrationMethod.Percentile, symmetric: true, percentile: p);
        var abs = x.Select(Math.Abs).Order().ToArray();
        double reference = abs[(int)Math.Ceiling(p / 100 * abs.Length) - 1];
        output.WriteLine($"p {p}: histogram {hi} sort {reference} (bin {h.BinWidth})");
        Assert.InRange(hi, reference - h.BinWidth, reference + h.BinWidth);
        Assert.Equal(-hi, lo, 6); // x.Min() is well below -t here, so no clamp
    }

    [Theory]
    [InlineData(99.99)]
    [InlineData(99.0)]
    public void Percentile_two_tails_match_a_sort(double p)
    {
        var x = Activations(200_000, 4);
        var h = Histogram(x);
        var (lo, hi) = h.Range(CalibrationMethod.Percentile, symmetric: false, percentile: p);
        var s = x.Order().ToArray();
        double cut = (100 - p) / 200;
        double refLo = s[(int)Math.Ceiling(cut * s.Length) - 1], refHi = s[(int)Math.Ceiling((1 - cut) * s.Length) - 1];
        output.WriteLine($"p {p}: histogram [{lo}, {hi}] sort [{refLo}, {refHi}]");
        Assert.InRange(lo, refLo - h.BinWidth, refLo + h.BinWidth);
        Assert.InRange(hi, refHi - h.BinWidth, refHi + h.BinWidth);
    }

    [Fact]
    public void Percentile_100_is_minmax()
    {
        var x = Activations(10_000, 5);
        var h = Histogram(x);
        Assert.Equal((x.Min(), x.Max()), h.Range(CalibrationMethod.Percentile, symmetric: false, percentile: 100));
        Assert.Throws<BadInputException>(() => h.Range(CalibrationMethod.Percentile, false, percentile: 0));
    }

    [Fact]
    public void Entropy_clips_outliers_and_keeps_the_bulk()
    {
        var x = Activations(200_000, 6);
        var h = Histogram(x);
        var (lo, hi) = h.Range(CalibrationMethod.Entropy, symmetric: false);
        output.WriteLine($"entropy [{lo}, {hi}], data [{x.Min()}, {x.Max()}]");
        // The bulk is N(0.3, 1): a KL threshold keeps a few σ and drops the planted outliers (≥ 5).
        Assert.InRange(hi, 2.5, 0.5 * x.Max());
        Assert.InRange(lo, 0.5 * x.Min(), -2.5);
        Assert.Equal((lo, hi), Histogram(x, batch: 333).Range(CalibrationMethod.Entropy, symmetric: false));

        // Without outliers the threshold grows towards the data's extent instead.
        var clean = Activations(200_000, 6, outliers: 0);
        var (_, hiClean) = Histogram(clean).Range(CalibrationMethod.Entropy, symmetric: false);
        Assert.InRange(hiClean, 2.5, clean.Max());
    }

    [Fact]
    public void Kl_of_equal_distributions_is_zero_and_grows_with_difference()
    {
        double[] p = [5, 0, 3, 2];
        Assert.Equal(0, ActivationHistogram.SmoothedKl(p, p), 12);
        Assert.True(ActivationHistogram.SmoothedKl(p, [3, 0, 3, 4]) > 0);
        Assert.True(double.IsPositiveInfinity(ActivationHistogram.SmoothedKl([0, 0], [1, 1])));
    }

    /// <summary>Real quantize-dequantize of every value, ORT's UINT8 asymmetric or INT8 symmetric formulas.</summary>
    private static double RealMse(float[] x, double lo, double hi, bool symmetric)
    {
        double sum = 0;
        if (symmetric)
        {
            double s = Math.Max(-lo, hi) / 127;
            foreach (float v in x)
            {
                double q = Math.Clamp(Math.Round(v / s, MidpointRounding.ToEven), -127, 127);
                sum += (v - q * s) * (v - q * s);
            }
        }
        else
        {
            lo = Math.Min(lo, 0);
            hi = Math.Max(hi, 0);
            double s = (hi - lo) / 255, zp = Math.Clamp(Math.Round(-lo / s), 0, 255);
            foreach (float v in x)
            {
                double q = Math.Clamp(Math.Round(v / s, MidpointRounding.ToEven) + zp, 0, 255);
                sum += (v - (q - zp) * s) * (v - (q - zp) * s);
            }
        }
        return sum / x.Length;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Mse_range_minimizes_the_quantization_error(bool symmetric)
    {
        var x = Activations(100_000, 7, outlier: 40, outliers: 30);
        var h = Histogram(x);
        var (lo, hi) = h.Range(CalibrationMethod.Mse, symmetric, steps: symmetric ? 254 : 255);
        double chosen = RealMse(x, lo, hi, symmetric);
        // A symmetric range may come back clamped on one side to the data's extent; its quantization uses max |end|.
        double t = Math.Max(-lo, hi);
        var (elo, ehi) = symmetric ? (-t, t) : ((double)lo, (double)hi);
        double lo0 = Math.Min(x.Min(), 0), hi0 = Math.Max(x.Max(), 0), abs = Math.Max(-lo0, hi0);
        double best = double.PositiveInfinity, bestC = 0;
        for (int j = 1; j <= 400; j++)
        {
            double c = j / 400.0;
            double mse = symmetric ? RealMse(x, -c * abs, c * abs, true) : RealMse(x, c * lo0, c * hi0, false);
            if (mse < best) (best, bestC) = (mse, c);
            // Among the histogram's own candidates nothing beats the choice.
            var (cl, ch) = symmetric ? (-c * abs, c * abs) : (c * lo0, c * hi0);
            Assert.True(h.ExpectedMse(elo, ehi, symmetric ? 254 : 255) <= h.ExpectedMse(cl, ch, symmetric ? 254 : 255) * (1 + 1e-9));
        }
        output.WriteLine($"symmetric {symmetric}: MSE range [{lo}, {hi}] real MSE {chosen:E4}; best grid c {bestC} MSE {best:E4}; minmax MSE {RealMse(x, lo0, hi0, symmetric):E4}");
        Assert.InRange(chosen, 0, best * 1.03);
        // Rare outliers cost their full squared distance when clipped, so the optimum clips little: 9-13% better than min/max here.
        Assert.True(chosen < RealMse(x, lo0, hi0, symmetric) * 0.95, "clipping must pay off here");
    }

    [Fact]
    public void All_zero_and_non_finite_inputs()
    {
        var h = new ActivationHistogram();
        Assert.True(h.Add(new float[100]));
        Assert.Equal((0f, 0f), h.Range(CalibrationMethod.Entropy, false));
        Assert.True(h.Add([1f, -2f]));
        Assert.Equal(102, h.Counts.ToArray().Sum());
        Assert.False(h.Add([1f, float.NaN]));
        Assert.False(h.Add([float.PositiveInfinity]));
        Assert.Equal(102, h.Count);
        Assert.Throws<BadInputException>(() => new ActivationHistogram(100));
    }
}
