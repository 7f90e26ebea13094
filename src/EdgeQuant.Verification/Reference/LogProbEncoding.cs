using System.Buffers.Binary;

namespace EdgeQuant.Verification.Reference;

/// <summary>
/// Turns one position's logits into its reference record: llama-perplexity's 16-bit log-prob encoding (full mode)
/// or the top K with the tail mass. The float operations follow llama-perplexity's order (max and min in float,
/// the exp sum in double, the log back in float) so a full record equals the one its <c>--kl-divergence-base</c> writes.
/// </summary>
public static class LogProbEncoding
{
    /// <summary>
    /// Writes a full record into <paramref name="record"/> (<see cref="ReferenceFormat.RecordBytes"/> bytes):
    /// log p[i] ≈ scale·q[i] + min_log_prob, with min_log_prob the log-prob of max(min logit, max logit − 16) and
    /// scale spreading the 16-nat (or narrower) range over 0..65535; logits at or below that floor encode as 0.
    /// </summary>
    public static void EncodeFull(ReadOnlySpan<float> logits, Span<byte> record)
    {
        float max = logits[0], min = logits[0];
        for (int i = 1; i < logits.Length; i++)
        {
            max = Math.Max(max, logits[i]);
            min = Math.Min(min, logits[i]);
        }
        min = Math.Max(min, max - ReferenceFormat.LogProbRange);
        double sumExp = 0;
        foreach (var l in logits) sumExp += MathF.Exp(l - max);
        float logSumExp = (float)Math.Log(sumExp);
        float minLogProb = min - max - logSumExp;
        float scale = (max - min) / 65535f;
        BinaryPrimitives.WriteSingleLittleEndian(record, scale);
        BinaryPrimitives.WriteSingleLittleEndian(record[4..], minLogProb);
        var q = record[8..];
        if (scale != 0)
        {
            float inverse = 1 / scale;
            for (int i = 0; i < logits.Length; i++)
            {
                ushort v = 0;
                if (logits[i] > min)
                {
                    // ggml's nearest_int rounds half to even; the clamp only guards a product that lands a hair above 65535.
                    float x = MathF.Round(inverse * (logits[i] - min), MidpointRounding.ToEven);
                    v = (ushort)Math.Min(x, 65535f);
                }
                BinaryPrimitives.WriteUInt16LittleEndian(q[(2 * i)..], v);
            }
        }
        else
        {
            q[..(2 * logits.Length)].Clear();
        }
        // The odd-vocabulary pad stays zero.
        q[(2 * logits.Length)..].Clear();
    }

    /// <summary>Decodes entry <paramref name="index"/> of a full record: scale·q + min_log_prob, in float as llama-perplexity does.</summary>
    public static float DecodeFull(float scale, float minLogProb, ushort q) => scale * q + minLogProb;

    /// <summary>
    /// Writes a top-K record: the target's log-prob, ln of the mass outside the top K (−∞ when there is none), then
    /// the K ids by descending probability (ties: lower id first, so entry 0 is the argmax as a forward scan finds
    /// it) and their log-probs. Log-probs are exact log-softmax values in float (sum of exponentials in double).
    /// </summary>
    /// <param name="order">Scratch of at least <paramref name="k"/> ints (reused between calls to avoid allocations).</param>
    public static void EncodeTopK(ReadOnlySpan<float> logits, int target, int k, Span<byte> record, Span<int> order)
    {
        int n = logits.Length;
        if (k < 1 || k > n) throw new ArgumentOutOfRangeException(nameof(k), $"top-K {k} is outside 1..{n}");
        float max = logits[0];
        for (int i = 1; i < n; i++) max = Math.Max(max, logits[i]);
        double sumExp = 0;
        foreach (var l in logits) sumExp += MathF.Exp(l - max);
        double logSumExp = Math.Log(sumExp);

        var top = SelectTop(logits, k, order[..k]);
        // The tail is summed directly rather than as 1 − top mass, which cancels when the top K hold nearly everything.
        double tail = TailSum(logits, max, top);

        BinaryPrimitives.WriteSingleLittleEndian(record, (float)(logits[target] - max - logSumExp));
        BinaryPrimitives.WriteSingleLittleEndian(record[4..], tail > 0 ? (float)(Math.Log(tail) - logSumExp) : float.NegativeInfinity);
        var ids = record.Slice(8, 4 * k);
        var values = record.Slice(8 + 4 * k, 4 * k);
        for (int j = 0; j < k; j++)
        {
            BinaryPrimitives.WriteInt32LittleEndian(ids[(4 * j)..], top[j]);
            BinaryPrimitives.WriteSingleLittleEndian(values[(4 * j)..], (float)(logits[top[j]] - max - logSumExp));
        }
    }

    /// <summary>The K largest entries' indices, by descending value then ascending index.</summary>
    private static ReadOnlySpan<int> SelectTop(ReadOnlySpan<float> logits, int k, Span<int> order)
    {
        // A bounded insertion pass: K is small next to the vocabulary, so keep the best K seen in a sorted prefix.
        int kept = 0;
        for (int i = 0; i < logits.Length; i++)
        {
            float v = logits[i];
            if (kept == k && !Before(v, i, logits[order[k - 1]], order[k - 1])) continue;
            int j = kept < k ? kept++ : k - 1;
            while (j > 0 && Before(v, i, logits[order[j - 1]], order[j - 1]))
            {
                order[j] = order[j - 1];
                j--;
            }
            order[j] = i;
        }
        return order[..k];
    }

    // NaN logits sort last: a NaN never compares greater, so it is only kept when nothing else is left.
    private static bool Before(float v, int i, float w, int j) => v > w || (v == w && i < j);

    private static double TailSum(ReadOnlySpan<float> logits, float max, ReadOnlySpan<int> top)
    {
        // Sum the excluded entries exactly: mark the top ids by a sorted copy and walk the vocabulary once.
        Span<int> sorted = top.Length <= 256 ? stackalloc int[top.Length] : new int[top.Length];
        top.CopyTo(sorted);
        sorted.Sort();
        double tail = 0;
        int next = 0;
        for (int i = 0; i < logits.Length; i++)
        {
            if (next < sorted.Length && sorted[next] == i) { next++; continue; }
            tail += MathF.Exp(logits[i] - max);
        }
        return tail;
    }
}
