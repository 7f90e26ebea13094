namespace EdgeQuant.Core.Quantization;

// Q6_K quantization as ggml-quants.c's quantize_row_q6_K_ref (no importance) and quantize_row_q6_K_impl (with one):
// each group of 16 gets its scale from make_qx_quants (nmax 32, weights x^2 or the imatrix entries as they are,
// without ggml's sigma2 term, which is commented out there), the 16 group scales are quantized to int8 against the
// largest, and the weights are re-rounded against the quantized group scales. The fast path differs from the
// reference only in the group-scale search (WeightedSearch); the rest is still scalar.
public static unsafe partial class Q6_K
{
    /// <summary>The scalar reference (quantize_row_q6_K_ref), ggml's operations in ggml's order.</summary>
    public static void QuantizeRowReference(ReadOnlySpan<float> src, Span<BlockQ6_K> dst)
    {
        QuantGuard.Check(dst.Length, src.Length, QuantBlocks.QK_K);
        fixed (float* x = src)
        fixed (BlockQ6_K* y = dst)
            Row(x, y, src.Length, null, reference: true);
    }

    /// <summary>The same bytes as <see cref="QuantizeRowReference"/>, with the vector search for the group scales.</summary>
    public static void QuantizeRow(ReadOnlySpan<float> src, Span<BlockQ6_K> dst)
    {
        QuantGuard.Check(dst.Length, src.Length, QuantBlocks.QK_K);
        fixed (float* x = src)
        fixed (BlockQ6_K* y = dst)
            Row(x, y, src.Length, null, reference: false);
    }

    /// <summary>quantize_row_q6_K_impl with importance (one entry per column of the row).</summary>
    public static void QuantizeRowWeightedReference(ReadOnlySpan<float> src, Span<BlockQ6_K> dst, ReadOnlySpan<float> importance)
    {
        QuantGuard.Check(dst.Length, src.Length, QuantBlocks.QK_K);
        if (importance.Length != src.Length) throw new ArgumentException($"the importance vector has {importance.Length} entries for a row of {src.Length}", nameof(importance));
        fixed (float* x = src)
        fixed (BlockQ6_K* y = dst)
        fixed (float* w = importance)
            Row(x, y, src.Length, w, reference: true);
    }

    private static void Row(float* x, BlockQ6_K* y, int n, float* importance, bool reference)
    {
        const int Groups = QuantBlocks.QK_K / 16;
        sbyte* L = stackalloc sbyte[QuantBlocks.QK_K];
        float* scales = stackalloc float[Groups];
        for (int i = 0; i < n / QuantBlocks.QK_K; i++, x += QuantBlocks.QK_K)
        {
            float maxScale = 0, maxAbsScale = 0;
            for (int ib = 0; ib < Groups; ++ib)
            {
                float* qw = importance == null ? null : importance + QuantBlocks.QK_K * i + 16 * ib;
                float scale = reference
                    ? QuantMath.MakeQxQuants(16, 32, x + 16 * ib, L + 16 * ib, qw)
                    : WeightedSearch.MakeQxQuants(16, 32, x + 16 * ib, L + 16 * ib, qw);
                scales[ib] = scale;
                float absScale = MathF.Abs(scale);
                if (absScale > maxAbsScale)
                {
                    maxAbsScale = absScale;
                    maxScale = scale;
                }
            }
            var b = y + i;
            if (maxAbsScale < QuantMath.GroupMaxEps)
            {
                *b = default;
                b->D = QuantMath.ToHalf(0f);
                continue;
            }
            float iscale = -128f / maxScale;
            b->D = QuantMath.ToHalf(1 / iscale);
            for (int ib = 0; ib < Groups; ++ib)
                b->Scales[ib] = (sbyte)Math.Min(127, QuantMath.NearestInt(iscale * scales[ib]));
            for (int j = 0; j < Groups; ++j)
            {
                float d = (float)b->D * b->Scales[j];
                if (d == 0) continue;
                for (int ii = 0; ii < 16; ++ii)
                {
                    int l = QuantMath.NearestInt(x[16 * j + ii] / d);
                    l = Math.Max(-32, Math.Min(31, l));
                    L[16 * j + ii] = (sbyte)(l + 32);
                }
            }
            byte* ql = b->Ql;
            byte* qh = b->Qh;
            for (int j = 0; j < QuantBlocks.QK_K; j += 128, ql += 64, qh += 32)
            {
                for (int l = 0; l < 32; ++l)
                {
                    int q1 = L[j + l] & 0xF, q2 = L[j + l + 32] & 0xF, q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
                    ql[l] = (byte)(q1 | q3 << 4);
                    ql[l + 32] = (byte)(q2 | q4 << 4);
                    qh[l] = (byte)((L[j + l] >> 4) | (L[j + l + 32] >> 4) << 2 | (L[j + l + 64] >> 4) << 4 | (L[j + l + 96] >> 4) << 6);
                }
            }
        }
    }

    /// <summary>
    /// Quantizes <paramref name="rows"/> rows of <paramref name="rowLength"/> (a multiple of 256) into
    /// <paramref name="dst"/>, with importance when given; returns the bytes written. Multi-threaded over rows.
    /// </summary>
    public static long Quantize(ReadOnlySpan<float> src, Span<byte> dst, int rows, int rowLength, ReadOnlySpan<float> importance = default, int threads = 0) =>
        QuantizeDriver.Run<Quantizer>(src, dst, rows, rowLength, importance, threads, QuantBlocks.QK_K);

    private readonly struct Quantizer : IRowQuantizer
    {
        public static int BlockBytes => sizeof(BlockQ6_K);
        public static void Row(float* x, byte* y, int n) => Q6_K.Row(x, (BlockQ6_K*)y, n, null, reference: false);
        public static void RowWeighted(float* x, byte* y, int n, float* w) => Q6_K.Row(x, (BlockQ6_K*)y, n, w, reference: false);
    }
}
