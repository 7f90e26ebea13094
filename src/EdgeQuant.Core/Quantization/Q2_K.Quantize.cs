using System.Runtime.Intrinsics;

namespace EdgeQuant.Core.Quantization;

// Q2_K quantization as ggml-quants.c. Without an importance vector, quantize_row_q2_K_ref: per group of 16, weights
// |x| and make_qkx2_quants with nmax 3 and the absolute error (use_mad), rmin -0.5, rdelta 0.1, 15 steps; group scales
// and mins to 4 bits against the largest of each. With one, quantize_row_q2_K_impl: weights importance *
// sqrt(sigma2 + x^2) with sigma2 the super-block's mean square, make_qkx3_quants (rmin -0.9, rdelta 0.05, 36 steps),
// group scales and mins through make_qp_quants (nmax 15) under the groups' weight sums. Both then requantize every
// element against the stored fp16 * 4-bit scale and min.
public static unsafe partial class Q2_K
{
    private const int QK_K = QuantBlocks.QK_K;
    private const int Groups = QK_K / 16;

    /// <summary>Whether this type's quantizer is implemented.</summary>
    public static bool Implemented => true;

    /// <summary>The scalar reference (quantize_row_q2_K_ref), ggml's operations in ggml's order.</summary>
    public static void QuantizeRowReference(ReadOnlySpan<float> src, Span<BlockQ2_K> dst) => Row(src, dst, default, reference: true);

    /// <summary>The same bytes as <see cref="QuantizeRowReference"/>, with the vector search.</summary>
    public static void QuantizeRow(ReadOnlySpan<float> src, Span<BlockQ2_K> dst) => Row(src, dst, default, reference: false);

    /// <summary>quantize_row_q2_K_impl with importance (one entry per column of the row), ggml's scalar loops.</summary>
    public static void QuantizeRowWeightedReference(ReadOnlySpan<float> src, Span<BlockQ2_K> dst, ReadOnlySpan<float> importance) =>
        Row(src, dst, importance, reference: true, weighted: true);

    /// <summary>The same bytes as <see cref="QuantizeRowWeightedReference"/>, with the vector search.</summary>
    public static void QuantizeRowWeighted(ReadOnlySpan<float> src, Span<BlockQ2_K> dst, ReadOnlySpan<float> importance) =>
        Row(src, dst, importance, reference: false, weighted: true);

    private static void Row(ReadOnlySpan<float> src, Span<BlockQ2_K> dst, ReadOnlySpan<float> importance, bool reference, bool weighted = false)
    {
        QuantGuard.Check(dst.Length, src.Length, QK_K);
        if (weighted && importance.Length != src.Length) throw new ArgumentException($"the importance vector has {importance.Length} entries for a row of {src.Length}", nameof(importance));
        fixed (float* x = src)
        fixed (BlockQ2_K* y = dst)
        fixed (float* w = importance)
            Row(x, y, src.Length, weighted ? w : null, reference);
    }

    private static void Row(float* x, BlockQ2_K* y, int n, float* importance, bool reference)
    {
        byte* L = stackalloc byte[QK_K];
        byte* laux = stackalloc byte[16];
        float* weights = stackalloc float[16];
        float* scales = stackalloc float[Groups];
        float* mins = stackalloc float[Groups];
        float* sw = stackalloc float[Groups];
        byte* Ls = stackalloc byte[Groups];
        byte* Lm = stackalloc byte[Groups];
        bool vector = !reference && Vector256.IsHardwareAccelerated;
        for (int i = 0; i < n / QK_K; i++, x += QK_K)
        {
            var b = y + i;
            float dAll, mAll;
            if (importance == null)
            {
                float maxScale = 0, maxMin = 0;
                for (int j = 0; j < Groups; ++j)
                {
                    float* xs = x + 16 * j;
                    if (vector)
                    {
                        Vector256.Store(Vector256.Abs(Vector256.Load(xs)), weights);
                        Vector256.Store(Vector256.Abs(Vector256.Load(xs + 8)), weights + 8);
                        scales[j] = StepLanes.Search(16, 3, xs, weights, L + 16 * j, out mins[j], -0.5f, 0.1f, 15, useMad: true);
                    }
                    else
                    {
                        for (int l = 0; l < 16; ++l) weights[l] = MathF.Abs(xs[l]);
                        scales[j] = QuantMath.MakeQkx2Quants(16, 3, xs, weights, L + 16 * j, out mins[j], laux, -0.5f, 0.1f, 15, useMad: true);
                    }
                    if (scales[j] > maxScale) maxScale = scales[j];
                    if (mins[j] > maxMin) maxMin = mins[j];
                }
                if (maxScale > 0)
                {
                    float iscale = 15f / maxScale;
                    for (int j = 0; j < Groups; ++j) b->Scales[j] = (byte)QuantMath.NearestInt(iscale * scales[j]);
                    b->D = QuantMath.ToHalf(maxScale / 15f);
                }
                else
                {
                    for (int j = 0; j < Groups; ++j) b->Scales[j] = 0;
                    b->D = QuantMath.ToHalf(0f);
                }
                if (maxMin > 0)
                {
                    float iscale = 15f / maxMin;
                    for (int j = 0; j < Groups; ++j) b->Scales[j] |= (byte)(QuantMath.NearestInt(iscale * mins[j]) << 4);
                    b->DMin = QuantMath.ToHalf(maxMin / 15f);
                }
                else
                {
                    b->DMin = QuantMath.ToHalf(0f);
                }
            }
            else
            {
                float* qwBlock = importance + QK_K * i;
                float sumX2 = 0;
                for (int j = 0; j < QK_K; ++j) sumX2 += x[j] * x[j];
                float sigma2 = sumX2 / QK_K;
                for (int j = 0; j < Groups; ++j)
                {
                    float* xs = x + 16 * j;
                    float* qw = qwBlock + 16 * j;
                    if (vector)
                    {
                        var vs = Vector256.Create(sigma2);
                        var x0 = Vector256.Load(xs);
                        var x1 = Vector256.Load(xs + 8);
                        Vector256.Store(Vector256.Load(qw) * Vector256.Sqrt(vs + x0 * x0), weights);
                        Vector256.Store(Vector256.Load(qw + 8) * Vector256.Sqrt(vs + x1 * x1), weights + 8);
                    }
                    else
                    {
                        QuantMath.BlockWeights(xs, qw, sigma2, weights, 16);
                    }
                    float sum = 0;
                    for (int l = 0; l < 16; ++l) sum += weights[l];
                    sw[j] = sum;
                    scales[j] = vector
                        ? StepLanes.Search(16, 3, xs, weights, L + 16 * j, out mins[j], -0.9f, 0.05f, 36, useMad: false)
                        : QuantMath.MakeQkx3Quants(16, 3, xs, weights, L + 16 * j, out mins[j], laux, -0.9f, 0.05f, 36);
                }
                float dm = QuantMath.MakeQpQuants(Groups, 15, scales, Ls, sw);
                float mm = QuantMath.MakeQpQuants(Groups, 15, mins, Lm, sw);
                b->D = QuantMath.ToHalf(dm);
                b->DMin = QuantMath.ToHalf(mm);
                for (int j = 0; j < Groups; ++j) b->Scales[j] = (byte)(Ls[j] | (Lm[j] << 4));
            }

            // Requantize against the stored scales; a zero group scale keeps the search's levels.
            dAll = (float)b->D;
            mAll = (float)b->DMin;
            for (int j = 0; j < Groups; ++j)
            {
                float d = dAll * (b->Scales[j] & 0xF);
                if (d == 0) continue;
                float dm = mAll * (b->Scales[j] >> 4);
                float* xs = x + 16 * j;
                if (vector) StepLanes.Requantize16(xs, dm, d, 3, L + 16 * j);
                else
                {
                    for (int ii = 0; ii < 16; ++ii)
                    {
                        int l = QuantMath.NearestInt((xs[ii] + dm) / d);
                        L[16 * j + ii] = (byte)Math.Max(0, Math.Min(3, l));
                    }
                }
            }

            byte* q = b->Qs;
            for (int j = 0; j < QK_K; j += 128)
                for (int l = 0; l < 32; ++l)
                    q[j / 4 + l] = (byte)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
        }
    }

    /// <summary>
    /// Quantizes <paramref name="rows"/> rows of <paramref name="rowLength"/> (a multiple of 256) into
    /// <paramref name="dst"/>, with importance when given; returns the bytes written. Multi-threaded over rows; the
    /// bytes equal ggml_quantize_chunk's.
    /// </summary>
    public static long Quantize(ReadOnlySpan<float> src, Span<byte> dst, int rows, int rowLength, ReadOnlySpan<float> importance = default, int threads = 0) =>
        QuantizeDriver.Run<Quantizer>(src, dst, rows, rowLength, importance, threads, QK_K);

    private readonly struct Quantizer : IRowQuantizer
    {
        public static int BlockBytes => sizeof(BlockQ2_K);
        public static void Row(float* x, byte* y, int n) => Q2_K.Row(x, (BlockQ2_K*)y, n, null, reference: false);
        public static void RowWeighted(float* x, byte* y, int n, float* w) => Q2_K.Row(x, (BlockQ2_K*)y, n, w, reference: false);
    }
}
