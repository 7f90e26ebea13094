namespace EdgeQuant.Core.Quantization;

// Q4_K quantization as ggml-quants.c: quantize_row_q4_K_ref without an importance vector (per group of 32, weights
// av_x + |x| and make_qkx2_quants with nmax 15, rmin -1, rdelta 0.1, 20 steps; group scales and mins quantized to 6
// bits against the largest) and quantize_row_q4_K_impl with one (weights importance * sqrt(sigma2 + x^2), sigma2 =
// 2 * mean square of the super-block, make_qkx3_quants, group scales and mins through make_qp_quants, whose levels
// are stored unclamped). The shared super-block work is KScaleMinBlock; this file packs the 4-bit levels.
public static unsafe partial class Q4_K
{
    /// <summary>Whether this type's quantizer is implemented.</summary>
    public static bool Implemented => true;

    /// <summary>The scalar reference (quantize_row_q4_K_ref), ggml's operations in ggml's order.</summary>
    public static void QuantizeRowReference(ReadOnlySpan<float> src, Span<BlockQ4_K> dst) => Row(src, dst, default, reference: true);

    /// <summary>The same bytes as <see cref="QuantizeRowReference"/>, with the vector search.</summary>
    public static void QuantizeRow(ReadOnlySpan<float> src, Span<BlockQ4_K> dst) => Row(src, dst, default, reference: false);

    /// <summary>quantize_row_q4_K_impl with importance (one entry per column of the row), ggml's scalar loops.</summary>
    public static void QuantizeRowWeightedReference(ReadOnlySpan<float> src, Span<BlockQ4_K> dst, ReadOnlySpan<float> importance) =>
        Row(src, dst, importance, reference: true, weighted: true);

    /// <summary>The same bytes as <see cref="QuantizeRowWeightedReference"/>, with the vector search.</summary>
    public static void QuantizeRowWeighted(ReadOnlySpan<float> src, Span<BlockQ4_K> dst, ReadOnlySpan<float> importance) =>
        Row(src, dst, importance, reference: false, weighted: true);

    private static void Row(ReadOnlySpan<float> src, Span<BlockQ4_K> dst, ReadOnlySpan<float> importance, bool reference, bool weighted = false)
    {
        QuantGuard.Check(dst.Length, src.Length, QuantBlocks.QK_K);
        if (weighted && importance.Length != src.Length) throw new ArgumentException($"the importance vector has {importance.Length} entries for a row of {src.Length}", nameof(importance));
        fixed (float* x = src)
        fixed (BlockQ4_K* y = dst)
        fixed (float* w = importance)
            Row(x, y, src.Length, weighted ? w : null, reference);
    }

    private static void Row(float* x, BlockQ4_K* y, int n, float* importance, bool reference)
    {
        byte* L = stackalloc byte[QuantBlocks.QK_K];
        for (int i = 0; i < n / QuantBlocks.QK_K; i++, x += QuantBlocks.QK_K)
        {
            var b = y + i;
            KScaleMinBlock.Quantize(x, importance == null ? null : importance + QuantBlocks.QK_K * i, 15, -1f, 20,
                clampWeighted: false, reference, L, &b->D, &b->DMin, b->Scales);
            byte* q = b->Qs;
            for (int j = 0; j < QuantBlocks.QK_K; j += 64, q += 32)
                for (int l = 0; l < 32; ++l) q[l] = (byte)(L[j + l] | L[j + l + 32] << 4);
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
        public static int BlockBytes => sizeof(BlockQ4_K);
        public static void Row(float* x, byte* y, int n) => Q4_K.Row(x, (BlockQ4_K*)y, n, null, reference: false);
        public static void RowWeighted(float* x, byte* y, int n, float* w) => Q4_K.Row(x, (BlockQ4_K*)y, n, w, reference: false);
    }
}
