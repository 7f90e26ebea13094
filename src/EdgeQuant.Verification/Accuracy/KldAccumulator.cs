using EdgeQuant.Core.Errors;
using EdgeQuant.Verification.Reference;
using EdgeQuant.Verification.Reports;

namespace EdgeQuant.Verification.Accuracy;

/// <summary>
/// The statistics of llama-perplexity's KLD mode (<c>--kl-divergence</c>), accumulated position by position from
/// the candidate's logits and the reference record: NLL of candidate and base, KL(base ‖ candidate), whether the
/// argmax agrees, and Δp = p_cand(target) − p_base(target). <see cref="Finish"/> turns the sums into the figures
/// with llama-perplexity's uncertainty formulas, and refuses fewer than <see cref="MinimumScored"/> positions as it does.
/// </summary>
/// <remarks>
/// Per position, as llama-perplexity computes it (float where it uses float, the sums in double):
/// <list type="bullet">
/// <item>candidate: max logit (first index on ties = the top token), Σexp(l − max) in double, lse = ln of it in
/// float; NLL = max + lse − l[target];</item>
/// <item>full reference: log p_base[i] = scale·q[i] + min; NLL_base = −log p_base[target]; KLD = Σ over entries with
/// log p_base &gt; −16 of p_base·(log p_base − (l[i] − max − lse)); the base's top token is the first maximal code;</item>
/// <item>top-K reference: KLD over the K stored tokens plus one bucket for all others (see <see cref="AddTopK"/>);
/// NLL_base is the stored exact target log-prob; the base's top token is the first stored id.</item>
/// </list>
/// </remarks>
public sealed class KldAccumulator
{
    /// <summary>llama-perplexity prints no statistics below this many scored positions: too few for a meaningful ±.</summary>
    public const int MinimumScored = 100;

    private double _sumNll, _sumNll2, _sumNllBase, _sumNllBase2, _sumNllNllBase;
    private double _sumKld, _sumKld2, _sumPDiff, _sumPDiff2, _sumPDiff4;
    private long _sameTop;
    private readonly List<float> _kld = [];
    private readonly List<float> _pDiff = [];
    private bool[]? _mask;

    /// <summary>Positions added so far.</summary>
    public int Count => _kld.Count;

    /// <summary>Mean KLD so far (NaN before the first position): the running figure a progress display shows.</summary>
    public double MeanKld => Count > 0 ? _sumKld / Count : double.NaN;

    /// <summary>KLD of each position added, in order.</summary>
    public IReadOnlyList<float> KldValues => _kld;

    /// <summary>Adds one position against a full (16-bit) reference record.</summary>
    public void AddFull(ReadOnlySpan<float> logits, int target, FullRecord reference)
    {
        var (max, imax, lse) = LogSoftmaxParts(logits);
        float nll = max + lse - logits[target];
        float nllBase = -(reference.Scale * reference.Code(target) + reference.MinLogProb);

        float lz = max + lse;
        double kld = 0;
        int imaxBase = 0;
        float best = 0;
        float scale = reference.Scale, min = reference.MinLogProb;
        var codes = reference.Codes;
        for (int i = 0; i < logits.Length; i++)
        {
            float lpBase = scale * (ushort)(codes[2 * i] | codes[2 * i + 1] << 8) + min;
            if (i == 0 || lpBase > best)
            {
                best = lpBase;
                imaxBase = i;
            }
            // Entries more than 16 nats below the top carry no information in the encoding (all code 0).
            if (lpBase > -ReferenceFormat.LogProbRange)
            {
                float pBase = MathF.Exp(lpBase);
                kld += pBase * (lpBase - logits[i] + lz);
            }
        }
        Accumulate(nll, nllBase, kld, imax == imaxBase);
    }

    /// <summary>
    /// Adds one position against a top-K reference record. The KLD is that of the two distributions coarsened to
    /// K + 1 outcomes (each stored token, and "any other token"):
    /// Σ_{j∈K} p_j·(ln p_j − ln q_j) + P_tail·(ln P_tail − ln Q_tail), with Q_tail the candidate's mass outside the K ids.
    /// By the log-sum inequality this is a lower bound of the full KLD, equal to it when the candidate spreads its
    /// tail mass in proportion to the reference's; with K covering nearly all the reference's mass the gap is small.
    /// A candidate that gives the tail no mass at all has Q_tail floored at the smallest positive double.
    /// </summary>
    public void AddTopK(ReadOnlySpan<float> logits, int target, TopKRecord reference)
    {
        var (max, imax, lse) = LogSoftmaxParts(logits);
        float nll = max + lse - logits[target];
        float nllBase = -reference.TargetLogProb;

        double lz = (double)max + lse;
        int k = reference.Count;
        var mask = _mask is { } m && m.Length == logits.Length ? m : _mask = new bool[logits.Length];
        double kld = 0;
        for (int j = 0; j < k; j++)
        {
            int id = reference.Id(j);
            mask[id] = true;
            double lp = reference.LogProb(j);
            kld += Math.Exp(lp) * (lp - (logits[id] - lz));
        }
        if (float.IsFinite(reference.LogTailMass))
        {
            double tail = 0;
            for (int i = 0; i < logits.Length; i++)
            {
                if (!mask[i]) tail += MathF.Exp(logits[i] - max);
            }
            double logQTail = Math.Log(Math.Max(tail, double.Epsilon)) - lse;
            double lpTail = reference.LogTailMass;
            kld += Math.Exp(lpTail) * (lpTail - logQTail);
        }
        for (int j = 0; j < k; j++) mask[reference.Id(j)] = false;
        Accumulate(nll, nllBase, kld, imax == reference.Id(0));
    }

    /// <summary>The figures, or a <see cref="BadInputException"/> below <see cref="MinimumScored"/> positions.</summary>
    /// <param name="scoredPerChunk">Positions per chunk, for the per-chunk mean KLD.</param>
    /// <param name="approximation">Null for a full reference; the top-K note otherwise.</param>
    public AccuracyReport Finish(int nChunks, int nCtx, int scoredPerChunk, string? approximation = null, double evalSeconds = 0)
    {
        int count = Count;
        if (count < MinimumScored)
            throw new BadInputException($"only {count} scored tokens; drift statistics need at least {MinimumScored} (as llama-perplexity) — use a longer text, more chunks or a larger --ctx");
        var logPpl = MeanAndUncertainty(_sumNll, _sumNll2, count);
        var logPplBase = MeanAndUncertainty(_sumNllBase, _sumNllBase2, count);
        double cov = Covariance(_sumNll, _sumNllBase, _sumNllNllBase, count);
        double ppl = Math.Exp(logPpl.Mean), pplBase = Math.Exp(logPplBase.Mean);
        var kld = MeanAndUncertainty(_sumKld, _sumKld2, count);
        var pDiff = MeanAndUncertainty(_sumPDiff, _sumPDiff2, count);
        var pDiffMse = MeanAndUncertainty(_sumPDiff2, _sumPDiff4, count);
        double rms = Math.Sqrt(pDiffMse.Mean);
        double sameTop = (double)_sameTop / count;

        var sorted = _kld.ToArray();
        Array.Sort(sorted);
        var sortedP = _pDiff.ToArray();
        Array.Sort(sortedP);
        var chunkKld = new double[scoredPerChunk > 0 ? (count + scoredPerChunk - 1) / scoredPerChunk : 0];
        for (int c = 0; c < chunkKld.Length; c++)
        {
            int start = c * scoredPerChunk, end = Math.Min(count, start + scoredPerChunk);
            double s = 0;
            for (int i = start; i < end; i++) s += _kld[i];
            chunkKld[c] = s / (end - start);
        }

        return new AccuracyReport
        {
            NScored = count,
            NChunks = nChunks,
            NCtx = nCtx,
            PplBase = pplBase,
            PplBaseUnc = pplBase * logPplBase.Uncertainty,
            PplCand = ppl,
            PplCandUnc = ppl * logPpl.Uncertainty,
            LnPplRatio = logPpl.Mean - logPplBase.Mean,
            LnPplRatioUnc = Math.Sqrt(logPpl.Uncertainty * logPpl.Uncertainty + logPplBase.Uncertainty * logPplBase.Uncertainty - 2 * cov),
            LnPplCor = cov / (logPpl.Uncertainty * logPplBase.Uncertainty),
            KldMean = kld.Mean,
            KldMeanUnc = kld.Uncertainty,
            KldMax = sorted[^1],
            KldP99_9 = Percentile(sorted, 0.999f),
            KldP99 = Percentile(sorted, 0.990f),
            KldP95 = Percentile(sorted, 0.950f),
            KldP90 = Percentile(sorted, 0.900f),
            KldMedian = Median(sorted),
            KldP10 = Percentile(sorted, 0.100f),
            KldP5 = Percentile(sorted, 0.050f),
            KldP1 = Percentile(sorted, 0.010f),
            KldMin = sorted[0],
            SameTopP = sameTop,
            SameTopPUnc = Math.Sqrt(sameTop * (1 - sameTop) / (count - 1)),
            DeltaPMean = pDiff.Mean,
            DeltaPMeanUnc = pDiff.Uncertainty,
            DeltaPRms = rms,
            DeltaPRmsUnc = rms > 0 ? 0.5 / rms * pDiffMse.Uncertainty : 0,
            DeltaPMax = sortedP[^1],
            DeltaPMin = sortedP[0],
            Approximation = approximation,
            ChunkKld = chunkKld,
            EvalSeconds = evalSeconds,
        };
    }

    /// <summary>llama-perplexity's mean and standard error: 0 error for ≤ 10 values or a non-positive variance.</summary>
    public static (double Mean, double Uncertainty) MeanAndUncertainty(double sum, double sum2, long count)
    {
        if (count < 1) return (0, 0);
        double f = sum / count;
        double df = sum2 / count - f * f;
        df = df > 0 && count > 10 ? Math.Sqrt(df / (count - 1)) : 0;
        return (f, df);
    }

    /// <summary>llama-perplexity's covariance of the two means (0 below 10 values).</summary>
    public static double Covariance(double sumA, double sumB, double sumAB, long count)
    {
        if (count < 10) return 0;
        return (sumAB / count - sumA / count * (sumB / count)) / (count - 1);
    }

    /// <summary>Linear interpolation between the two nearest ranks, in float as llama-perplexity does.</summary>
    public static double Percentile(float[] sorted, float fraction)
    {
        if (fraction <= 0) return sorted[0];
        if (fraction >= 1) return sorted[^1];
        float p = fraction * (sorted.Length - 1);
        int ip = (int)p;
        p -= ip;
        return (1 - p) * sorted[ip] + p * sorted[Math.Min(ip + 1, sorted.Length - 1)];
    }

    public static double Median(float[] sorted) =>
        sorted.Length % 2 == 0 ? 0.5f * (sorted[sorted.Length / 2] + sorted[sorted.Length / 2 - 1]) : sorted[sorted.Length / 2];

    private void Accumulate(float nll, float nllBase, double kld, bool sameTop)
    {
        _sumNll += nll;
        _sumNll2 += nll * nll;
        _sumNllBase += nllBase;
        _sumNllBase2 += nllBase * nllBase;
        _sumNllNllBase += nll * nllBase;
        _sumKld += kld;
        _sumKld2 += kld * kld;
        if (sameTop) _sameTop++;
        float pDiff = MathF.Exp(-nll) - MathF.Exp(-nllBase);
        _sumPDiff += pDiff;
        double pDiff2 = pDiff * pDiff;
        _sumPDiff2 += pDiff2;
        _sumPDiff4 += pDiff2 * pDiff2;
        _kld.Add((float)kld);
        _pDiff.Add(pDiff);
    }

    private static (float Max, int ArgMax, float LogSumExp) LogSoftmaxParts(ReadOnlySpan<float> logits)
    {
        float max = logits[0];
        int imax = 0;
        for (int i = 1; i < logits.Length; i++)
        {
            if (logits[i] > max)
            {
                max = logits[i];
                imax = i;
            }
        }
        double sumExp = 0;
        foreach (var l in logits) sumExp += MathF.Exp(l - max);
        return (max, imax, (float)Math.Log(sumExp));
    }
}
