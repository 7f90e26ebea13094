namespace EdgeQuant.Core.Quantization;

// Q5_K quantization as ggml-quants.c: quantize_row_q5_K_ref without an importance vector (as Q4_K's with nmax 31 and
// make_qkx2_quants' rmin -0.5, 15 steps) and quantize_row_q5_K_impl with one (as Q4_K's, except that make_qp_quants'
// levels are clamped to 63 before packing). The shared super-block work is KScaleMinBlock; this file packs the
// 5-bit levels: low nibbles in qs, the fifth bit of group g in bit g of qh.
public static unsafe partial class Q5_K
{
    /// <summary>Whether this type's quantizer is implemented.</summary>
    public static bool Implemented => true;

    /// <summary>The scalar reference (quantize_row_q5_K_ref), ggml's operations in ggml's order.</summary>
    public static void QuantizeRowReference(ReadOnlySpan<float> src, Span<BlockQ5_K> dst) => Row(src, dst, default, reference: true);

    /// <summary>The same bytes as <see cref="QuantizeRowReference"/>, with the vector search.</summary>
    public static void QuantizeRow(ReadOnlySpan<float> src, Span<BlockQ5_K> dst) => Row(src, dst, default, reference: false);

    /// <summary>quantize_row_q5_K_impl with importance (one entry per column of the row), ggml's scalar loops.</summary>
    public static void QuantizeRowWeightedReference(ReadOnlySpan<float> src, Span<BlockQ5_K> dst, ReadOnlySpan<float> importance) =>
        Row(src, dst, importance, reference: true, weighted: true);

    /// <summary>The same bytes as <see cref="QuantizeRowWeightedReference"/>, with the vector search.</summary>
    public static void QuantizeRowWeighted(ReadOnlySpan<float> src, Span<BlockQ5_K> dst, ReadOnlySpan<float> importance) =>
        Row(src, dst, importance, reference: false, weighted: true);

    private static void Row(ReadOnlySpan<float> src, Span<BlockQ5_K> dst, ReadOnlySpan<float> importance, bool reference, bool weighted = false)
    {
        QuantGuard.Check(dst.Length, src.Length, QuantBlocks.QK_K);
        if (weighted && importance.Length != src.Length) throw new ArgumentException($"the importance vector has {importance.Length} entries for a row of {src.Length}", nameof(importance));
        fixed (float* x = src)
        fixed (BlockQ5_K* y = dst)
        fixed (float* w = importance)
            Row(x, y, src.Length, weighted ? w : null, reference);
    }

    private static void Row(float* x, BlockQ5_K* y, int n, float* importance, bool reference)
    {
        byte* L = stackalloc byte[QuantBlocks.QK_K];
        for (int i = 0; i < n / QuantBlocks.QK_K; i++, x += QuantBlocks.QK_K)
        {
            var b = y + i;
            KScaleMinBlock.Quantize(x, importance == null ? null : importance + QuantBlocks.QK_K * i, 31, -0.5f, 15,
                clampWeighted: true, reference, L, &b->D, &b->DMin, b->Scales);
            byte* qh = b->Qh;
            byte* ql = b->Qs;
            new Span<byte>(qh, QuantBlocks.QK_K / 8).Clear();
            int m1 = 1, m2 = 2;
            for (int g = 0; g < QuantBlocks.QK_K; g += 64, ql += 32, m1 <<= 2, m2 <<= 2)
            {
                for (int j = 0; j < 32; ++j)
                {
                    int l1 = L[g + j], l2 = L[g + j + 32];
                    if (l1 > 15) { l1 -= 16; qh[j] |= (byte)m1; }
                    if (l2 > 15) { l2 -= 16; qh[j] |= (byte)m2; }
                    ql[j] = (byte)(l1 | l2 << 4);
                }
            }
        }
    }

    /// <summary>
    /// Quantizes <paramref name="rows"/> rows of <paramref name="rowLength"/> (a multiple of 256) into
    /// <paramref name="dst"/>, with importance when given; returns the bytes written. Multi-threaded over rows; the
    /// bytes equal ggml_quantize_chunk's.
    /// </summary>
    public static long Quantize(ReadOnlySpan<float> src, Span<byte> dst, int rows, int rowLength, ReadOnlySpan<float> importance = default, int threads = 0) =>
        QuantizeDriver.Run<Quantizer>(src, dst, rows, rowLength, importance, threads, QuantBlocks.QK_K);

    private readonly struct Quantizer : IRowQuantizer
    {
        public static int BlockBytes => sizeof(BlockQ5_K);
        public static void Row(float* x, byte* y, int n) => Q5_K.Row(x, (BlockQ5_K*)y, n, null, reference: false);
        public static void RowWeighted(float* x, byte* y, int n, float* w) => Q5_K.Row(x, (BlockQ5_K*)y, n, w, reference: false);
    }
}
