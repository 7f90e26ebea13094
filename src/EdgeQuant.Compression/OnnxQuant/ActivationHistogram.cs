using System.Numerics.Tensors;
using EdgeQuant.Core.Errors;

namespace EdgeQuant.Compression.OnnxQuant;

/// <summary>
/// A streaming histogram of one activation tensor and the four ways of turning it into a quantization range
/// (<see cref="CalibrationMethod"/>). Values are binned as they arrive; nothing but the counts, the exact minimum and
/// maximum and the count of values is kept.
/// </summary>
/// <remarks>
/// <para>
/// Bins cover [-T, T] where T is the smallest power of two ≥ max|x| seen so far. When a batch exceeds T, T doubles and
/// pairs of bins merge, which is exact because every bin edge of the coarser grid is an edge of the finer one. So the
/// counts do not depend on how the values were split into batches or in which order they came (ONNX Runtime's
/// collector instead re-bins by appending bins of the first batch's width, which makes its result order-dependent).
/// The price is at most a factor 2 of unused range; the histogram keeps <see cref="Oversampling"/>× the entropy
/// method's bins so the occupied part still has more resolution than ORT's 2048 bins.
/// </para>
/// </remarks>
public sealed class ActivationHistogram
{
    /// <summary>Fine bins per entropy bin (the entropy search merges them back to the configured count).</summary>
    public const int Oversampling = 4;

    /// <summary>ONNX Runtime's (and TensorRT's) quantized-bin count for the KL search: 128.</summary>
    public const int EntropyQuantizedBins = 128;

    private long[] _counts;
    private long _pendingZeros;

    /// <param name="entropyBins">Bins of the entropy search (ORT's default 2048); even, 256..65536.</param>
    public ActivationHistogram(int entropyBins = 2048)
    {
        CheckBins(entropyBins);
        EntropyBins = entropyBins;
        _counts = new long[entropyBins * Oversampling];
    }

    internal static void CheckBins(int entropyBins)
    {
        if (entropyBins is < 2 * EntropyQuantizedBins or > 65536 || entropyBins % 2 != 0)
            throw new BadInputException($"--calib-bins: {entropyBins} must be an even number of histogram bins between {2 * EntropyQuantizedBins} and 65536");
    }

    public int EntropyBins { get; }

    /// <summary>Fine bins over [-T, T].</summary>
    public int Bins => _counts.Length;

    /// <summary>Half-width of the binned interval (a power of two); 0 until a non-zero value arrived.</summary>
    public double Limit { get; private set; }

    /// <summary>Values added.</summary>
    public long Count { get; private set; }

    /// <summary>Smallest value seen (exact).</summary>
    public float Min { get; private set; } = float.PositiveInfinity;

    /// <summary>Largest value seen (exact).</summary>
    public float Max { get; private set; } = float.NegativeInfinity;

    /// <summary>Counts per fine bin; bin k covers [-T + k·w, -T + (k+1)·w) with w = 2T / <see cref="Bins"/>.</summary>
    public ReadOnlySpan<long> Counts => _counts;

    public double BinWidth => 2 * Limit / _counts.Length;

    /// <summary>Adds values; false (and nothing added) when one of them is NaN or infinite.</summary>
    public bool Add(ReadOnlySpan<float> values)
    {
        if (values.IsEmpty) return true;
        float lo = TensorPrimitives.Min(values), hi = TensorPrimitives.Max(values);
        if (!float.IsFinite(lo) || !float.IsFinite(hi)) return false;
        Min = Math.Min(Min, lo);
        Max = Math.Max(Max, hi);
        Count += values.Length;
        double absMax = Math.Max(-(double)lo, hi);
        if (absMax == 0 && Limit == 0)
        {
            _pendingZeros += values.Length;
            return true;
        }
        if (Limit == 0)
        {
            Limit = PowerOfTwoAtLeast(absMax);
            _counts[_counts.Length / 2] += _pendingZeros;
            _pendingZeros = 0;
        }
        while (Limit < absMax) Double();

        // x·(N/2T) is exact (a power-of-two factor) and adding N/2 is exact in double for any float x, so every value
        // lands in the bin its real position says, whatever the batch.
        int n = _counts.Length;
        double perUnit = n / (2 * Limit), half = n / 2;
        var counts = _counts;
        foreach (float x in values)
        {
            int k = (int)Math.Floor(x * perUnit + half);
            counts[k >= n ? n - 1 : k]++;
        }
        return true;
    }

    private static double PowerOfTwoAtLeast(double v)
    {
        double p = Math.ScaleB(1.0, Math.ILogB(v));
        return p < v ? 2 * p : p;
    }

    private void Double()
    {
        int n = _counts.Length, quarter = n / 4;
        var merged = new long[n];
        for (int j = 0; j < n / 2; j++) merged[quarter + j] = _counts[2 * j] + _counts[2 * j + 1];
        _counts = merged;
        Limit *= 2;
    }

    /// <summary>The left edge of fine bin <paramref name="k"/> (k = Bins gives T).</summary>
    public double Edge(int k) => -Limit + k * BinWidth;

    /// <summary>
    /// The range (rmin, rmax) the method chooses. <paramref name="symmetric"/>: the activations will be quantized
    /// symmetrically (INT8, zero point 0), which decides Percentile (of |x| instead of the two tails) and MSE (a
    /// symmetric clip). <paramref name="steps"/>: quantization steps across the range (255 for UINT8, 254 for
    /// symmetric INT8), used by MSE. Every result is clamped to [Min, Max], as ORT clamps its thresholds.
    /// </summary>
    public (float Min, float Max) Range(CalibrationMethod method, bool symmetric, double percentile = 99.99, int steps = 255)
    {
        if (Count == 0) throw new InvalidOperationException("no values were added");
        if (Limit == 0 || method == CalibrationMethod.MinMax) return (Min, Max);
        (double lo, double hi) = method switch
        {
            CalibrationMethod.Percentile => PercentileRange(percentile, symmetric),
            CalibrationMethod.Entropy => EntropyRange(),
            CalibrationMethod.Mse => MseRange(symmetric, steps),
            _ => throw new ArgumentOutOfRangeException(nameof(method), method, null),
        };
        return ((float)Math.Max(lo, Min), (float)Math.Min(hi, Max));
    }

    // ---- Percentile ----

    /// <summary>
    /// ORT's convention: symmetric → the <paramref name="percentile"/> of |x|, range (-t, t); otherwise the two tails,
    /// (100 - p) / 2 percent cut from each. ORT returns the left edge of the bin where the CDF crosses the target;
    /// this interpolates linearly inside that bin instead, which removes ORT's bias of up to one bin towards zero.
    /// </summary>
    private (double, double) PercentileRange(double percentile, bool symmetric)
    {
        if (!(percentile > 0 && percentile <= 100)) throw new BadInputException($"--calib-percentile: {percentile} must be in (0, 100]");
        if (symmetric)
        {
            int half = _counts.Length / 2;
            var abs = new long[half];
            for (int k = 0; k < half; k++) abs[k] = _counts[half + k] + _counts[half - 1 - k];
            double t = Quantile(abs, 0, BinWidth, percentile / 100);
            return (-t, t);
        }
        double cut = (100 - percentile) / 200;
        return (Quantile(_counts, -Limit, BinWidth, cut), Quantile(_counts, -Limit, BinWidth, 1 - cut));
    }

    /// <summary>The value below which a share <paramref name="q"/> of the counts lies, linear inside its bin.</summary>
    private double Quantile(long[] counts, double origin, double width, double q)
    {
        double target = q * Count, cumulative = 0;
        if (q <= 0)
        {
            for (int k = 0; k < counts.Length; k++)
                if (counts[k] > 0) return origin + k * width;
        }
        for (int k = 0; k < counts.Length; k++)
        {
            if (counts[k] == 0) continue;
            if (cumulative + counts[k] >= target)
                return origin + (k + (target - cumulative) / counts[k]) * width;
            cumulative += counts[k];
        }
        return origin + counts.Length * width;
    }

    // ---- Entropy ----

    /// <summary>
    /// TensorRT's KL-divergence calibration as ONNX Runtime runs it on a signed histogram: for each candidate
    /// half-width of i bins (i = 64 … bins/2) the clipped distribution P (outliers folded into the end bins) is compared
    /// with Q, P merged into 128 quantized bins and spread back over P's non-empty bins; the candidate with the least
    /// KL(P‖Q) wins. The slice is [-i·w, i·w) (ORT takes one extra bin on the right, an asymmetry it has no reason for).
    /// </summary>
    private (double, double) EntropyRange()
    {
        int bins = EntropyBins, zero = bins / 2, merge = _counts.Length / bins;
        var hist = new long[bins];
        for (int k = 0; k < bins; k++)
            for (int m = 0; m < merge; m++) hist[k] += _counts[k * merge + m];
        double width = 2 * Limit / bins;
        var prefix = new long[bins + 1];
        for (int k = 0; k < bins; k++) prefix[k + 1] = prefix[k] + hist[k];

        int quantized = EntropyQuantizedBins, bestI = zero;
        double best = double.PositiveInfinity;
        var p = new double[bins];
        var q = new double[bins];
        for (int i = quantized / 2; i <= zero; i++)
        {
            int start = zero - i, length = 2 * i;
            for (int k = 0; k < length; k++) p[k] = hist[start + k];
            p[0] += prefix[start];
            p[length - 1] += prefix[bins] - prefix[start + length];
            int per = length / quantized;
            for (int b = 0; b < quantized; b++)
            {
                int s = b * per, e = b == quantized - 1 ? length : s + per;
                // The merged bin's mass comes from the unclipped slice (as in TensorRT/ORT), spread over P's non-empty bins.
                double sum = 0;
                int nonzero = 0;
                for (int k = s; k < e; k++)
                {
                    sum += hist[start + k];
                    if (p[k] != 0) nonzero++;
                }
                for (int k = s; k < e; k++) q[k] = p[k] != 0 && nonzero > 0 ? sum / nonzero : 0;
            }
            double kl = SmoothedKl(p.AsSpan(0, length), q.AsSpan(0, length));
            if (kl < best)
            {
                best = kl;
                bestI = i;
            }
        }
        return (-bestI * width, bestI * width);
    }

    /// <summary>
    /// KL(P‖Q) after ORT's smooth_distribution (ε = 1e-4 moved onto empty bins from the others, on raw counts), both
    /// normalized; +∞ when smoothing is impossible (an empty distribution, or a bin that would go non-positive).
    /// </summary>
    public static double SmoothedKl(ReadOnlySpan<double> p, ReadOnlySpan<double> q)
    {
        const double eps = 1e-4;
        if (!Smooth(p, eps, out var ps) || !Smooth(q, eps, out var qs)) return double.PositiveInfinity;
        double sp = 0, sq = 0;
        for (int k = 0; k < ps.Length; k++)
        {
            sp += ps[k];
            sq += qs[k];
        }
        double kl = 0;
        for (int k = 0; k < ps.Length; k++)
        {
            double a = ps[k] / sp, b = qs[k] / sq;
            kl += a * Math.Log(a / b);
        }
        return kl;
    }

    private static bool Smooth(ReadOnlySpan<double> h, double eps, out double[] smoothed)
    {
        int zeros = 0;
        foreach (double v in h) if (v == 0) zeros++;
        int nonzeros = h.Length - zeros;
        smoothed = new double[h.Length];
        if (nonzeros == 0) return false;
        double take = eps * zeros / nonzeros;
        for (int k = 0; k < h.Length; k++)
        {
            smoothed[k] = h[k] == 0 ? eps : h[k] - take;
            if (smoothed[k] <= 0) return false;
        }
        return true;
    }

    // ---- MSE ----

    /// <summary>
    /// The clip minimizing the expected squared quantization error over the histogram (<see cref="ExpectedMse"/>).
    /// Symmetric: ranges (-t, t) with t on every fine bin edge of |x|; asymmetric: the min/max range (widened to hold
    /// 0) scaled by c = j / (bins/2), j = 1 … bins/2. Ties go to the wider range.
    /// </summary>
    private (double, double) MseRange(bool symmetric, int steps)
    {
        var sums = new PrefixSums(this);
        int candidates = _counts.Length / 2;
        double lo0 = Math.Min(Min, 0.0), hi0 = Math.Max(Max, 0.0);
        double absMax = Math.Max(-lo0, hi0);
        (double, double) best = (lo0, hi0);
        double bestMse = double.PositiveInfinity;
        for (int j = candidates; j >= 1; j--)
        {
            double c = (double)j / candidates;
            (double lo, double hi) = symmetric ? (-c * absMax, c * absMax) : (c * lo0, c * hi0);
            double mse = sums.Mse(lo, hi, steps);
            if (mse < bestMse)
            {
                bestMse = mse;
                best = (lo, hi);
            }
        }
        return best;
    }

    /// <summary>
    /// Expected mean squared error of quantizing the histogram's values to <paramref name="steps"/> uniform steps on
    /// [lo, hi]: values (at their bin centres) inside the range cost step²/12 (uniform rounding error), values outside
    /// cost their squared distance to the nearer end.
    /// </summary>
    public double ExpectedMse(double lo, double hi, int steps) => new PrefixSums(this).Mse(lo, hi, steps);

    /// <summary>Running sums of count, Σc and Σc² over the fine bins (c = bin centre), for O(1) tail sums.</summary>
    private sealed class PrefixSums
    {
        private readonly double[] _n, _s1, _s2;
        private readonly double _origin, _width;
        private readonly long _count;

        public PrefixSums(ActivationHistogram h)
        {
            int bins = h._counts.Length;
            _n = new double[bins + 1];
            _s1 = new double[bins + 1];
            _s2 = new double[bins + 1];
            _origin = -h.Limit;
            _width = h.BinWidth;
            _count = h.Count;
            for (int k = 0; k < bins; k++)
            {
                double n = h._counts[k], c = _origin + (k + 0.5) * _width;
                _n[k + 1] = _n[k] + n;
                _s1[k + 1] = _s1[k] + n * c;
                _s2[k + 1] = _s2[k] + n * c * c;
            }
        }

        /// <summary>Bins whose centre is below <paramref name="v"/>: [0, result).</summary>
        private int Below(double v)
        {
            double k = Math.Ceiling((v - _origin) / _width - 0.5);
            return (int)Math.Clamp(k, 0, _n.Length - 1);
        }

        public double Mse(double lo, double hi, int steps)
        {
            int last = _n.Length - 1;
            int a = Below(lo), b = Below(hi);
            // Upper tail: centres ≥ hi (a centre exactly at hi costs 0 either way).
            double nu = _n[last] - _n[b], s1u = _s1[last] - _s1[b], s2u = _s2[last] - _s2[b];
            double upper = s2u - 2 * hi * s1u + hi * hi * nu;
            double lower = _s2[a] - 2 * lo * _s1[a] + lo * lo * _n[a];
            double step = (hi - lo) / steps;
            double inside = (_n[b] - _n[a]) * step * step / 12;
            return (Math.Max(upper, 0) + Math.Max(lower, 0) + inside) / _count;
        }
    }
}
