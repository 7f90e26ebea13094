namespace EdgeQuant.Verification.Latency;

/// <summary>Order statistics of timing samples.</summary>
public static class LatencyStatistics
{
    /// <summary>
    /// The p-th percentile (0..100) by linear interpolation between the closest ranks (numpy's default, Hyndman-Fan
    /// type 7): rank h = (n − 1)·p/100, value = x[⌊h⌋] + (h − ⌊h⌋)(x[⌊h⌋+1] − x[⌊h⌋]). With 128 samples p99 lies
    /// between the two largest, so one outlier moves it only partly; a nearest-rank rule would jump to the maximum.
    /// </summary>
    public static double Percentile(IReadOnlyList<double> samples, double p)
    {
        ArgumentNullException.ThrowIfNull(samples);
        if (samples.Count == 0) throw new ArgumentException("no samples", nameof(samples));
        if (!(p >= 0 && p <= 100)) throw new ArgumentOutOfRangeException(nameof(p), p, "a percentile lies in 0..100");
        var sorted = samples.ToArray();
        Array.Sort(sorted);
        double h = (sorted.Length - 1) * p / 100.0;
        int lo = (int)Math.Floor(h);
        int hi = Math.Min(lo + 1, sorted.Length - 1);
        return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
    }

    public static double Median(IReadOnlyList<double> samples) => Percentile(samples, 50);
}
