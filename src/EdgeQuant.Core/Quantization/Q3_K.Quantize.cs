using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace EdgeQuant.Core.Quantization;

// Q3_K quantization as ggml-quants.c's quantize_row_q3_K_ref (no importance: make_q3_quants per group of 16, weights
// x^2, iterative refinement) and quantize_row_q3_K_impl (with one: weights qw*sqrt(sigma2 + x^2), sigma2 twice the
// block's mean square, make_qx_quants per group, then make_qx_quants once more on the 16 group scales weighted by the
// groups' weight sums). Then, in both, the weights are re-rounded against the quantized group scales and packed:
// 2 low bits in qs, the high bit in hmask.
//
// The fast path puts one group in each vector lane (Q3KLanes) wherever ggml's per-group loops carry sums from element
// to element: the data of two blocks at a time is transposed so that lane g runs group g's loop, every float operation
// the same as ggml's in the same order (max search, first sums, the imatrix path's 19 candidate scales). make_q3_quants'
// refinement is different: an accepted move changes the sums the next element sees, but moves are rare, so it runs
// per group with the 16 elements in lanes, evaluating all remaining elements at once and restarting after each move
// (Q3KLanes.RefineQ3). Re-rounding and packing work on one group per row.
public static unsafe partial class Q3_K
{
    private const int QK = QuantBlocks.QK_K;
    private const int Groups = QK / 16;

    /// <summary>Whether this type's quantizer is implemented.</summary>
    public static bool Implemented => true;

    /// <summary>The scalar reference (quantize_row_q3_K_ref), ggml's operations in ggml's order.</summary>
    public static void QuantizeRowReference(ReadOnlySpan<float> src, Span<BlockQ3_K> dst)
    {
        QuantGuard.Check(dst.Length, src.Length, QK);
        fixed (float* x = src)
        fixed (BlockQ3_K* y = dst)
            RowReference(x, y, src.Length);
    }

    /// <summary>The same bytes as <see cref="QuantizeRowReference"/> through the vector path.</summary>
    public static void QuantizeRow(ReadOnlySpan<float> src, Span<BlockQ3_K> dst)
    {
        QuantGuard.Check(dst.Length, src.Length, QK);
        fixed (float* x = src)
        fixed (BlockQ3_K* y = dst)
            RowFast(x, y, src.Length, null);
    }

    /// <summary>quantize_row_q3_K_impl with importance (one entry per column of the row), scalar, in ggml's order.</summary>
    public static void QuantizeRowWeightedReference(ReadOnlySpan<float> src, Span<BlockQ3_K> dst, ReadOnlySpan<float> importance)
    {
        CheckWeighted(src, dst, importance);
        fixed (float* x = src)
        fixed (BlockQ3_K* y = dst)
        fixed (float* w = importance)
            RowWeightedReference(x, y, src.Length, w);
    }

    /// <summary>The same bytes as <see cref="QuantizeRowWeightedReference"/> through the vector path.</summary>
    public static void QuantizeRowWeighted(ReadOnlySpan<float> src, Span<BlockQ3_K> dst, ReadOnlySpan<float> importance)
    {
        CheckWeighted(src, dst, importance);
        fixed (float* x = src)
        fixed (BlockQ3_K* y = dst)
        fixed (float* w = importance)
            RowFast(x, y, src.Length, w);
    }

    /// <summary>
    /// Quantizes <paramref name="rows"/> rows of <paramref name="rowLength"/> (a multiple of 256) into
    /// <paramref name="dst"/>, with importance when given; returns the bytes written. Multi-threaded over rows.
    /// </summary>
    public static long Quantize(ReadOnlySpan<float> src, Span<byte> dst, int rows, int rowLength, ReadOnlySpan<float> importance = default, int threads = 0) =>
        QuantizeDriver.Run<Quantizer>(src, dst, rows, rowLength, importance, threads, QK);

    private readonly struct Quantizer : IRowQuantizer
    {
        public static int BlockBytes => sizeof(BlockQ3_K);
        public static void Row(float* x, byte* y, int n) => RowFast(x, (BlockQ3_K*)y, n, null);
        public static void RowWeighted(float* x, byte* y, int n, float* w) => RowFast(x, (BlockQ3_K*)y, n, w);
    }

    private static void CheckWeighted(ReadOnlySpan<float> src, Span<BlockQ3_K> dst, ReadOnlySpan<float> importance)
    {
        QuantGuard.Check(dst.Length, src.Length, QK);
        if (importance.Length != src.Length)
            throw new ArgumentException($"the importance vector has {importance.Length} entries for a row of {src.Length}", nameof(importance));
    }

    // ---------------------------------------------------------------------------------------------------------------
    // Scalar reference

    private static void RowReference(float* x, BlockQ3_K* y, int n)
    {
        sbyte* L = stackalloc sbyte[QK];
        float* scales = stackalloc float[Groups];
        for (int i = 0; i < n / QK; i++, x += QK)
        {
            for (int j = 0; j < Groups; ++j)
                scales[j] = QuantMath.MakeQ3Quants(16, 4, x + 16 * j, L + 16 * j, doRmse: true);
            QuantizeGroupScales(scales, y + i);
            Finish(x, y + i, L);
        }
    }

    private static void RowWeightedReference(float* x, BlockQ3_K* y, int n, float* importance)
    {
        sbyte* L = stackalloc sbyte[QK];
        sbyte* Ls = stackalloc sbyte[Groups];
        float* scales = stackalloc float[Groups];
        float* weight = stackalloc float[16];
        float* sw = stackalloc float[Groups];
        for (int i = 0; i < n / QK; i++, x += QK)
        {
            float sumx2 = 0;
            for (int j = 0; j < QK; ++j) sumx2 += x[j] * x[j];
            float sigma2 = 2 * sumx2 / QK;
            for (int j = 0; j < Groups; ++j)
            {
                float* qw = importance + QK * i + 16 * j;
                for (int l = 0; l < 16; ++l) weight[l] = qw[l] * MathF.Sqrt(sigma2 + x[16 * j + l] * x[16 * j + l]);
                float sumw = 0;
                for (int l = 0; l < 16; ++l) sumw += weight[l];
                sw[j] = sumw;
                scales[j] = QuantMath.MakeQxQuants(16, 4, x + 16 * j, L + 16 * j, weight);
            }
            var b = y + i;
            float dBlock = QuantMath.MakeQxQuants(Groups, 32, scales, Ls, sw);
            StoreScales(b, Ls, dBlock);
            Finish(x, b, L);
        }
    }

    /// <summary>quantize_row_q3_K_ref's scale step: the 16 group scales to 6 bits against the largest magnitude.</summary>
    private static void QuantizeGroupScales(float* scales, BlockQ3_K* b)
    {
        float maxScale = 0, amax = 0;
        for (int j = 0; j < Groups; ++j)
        {
            float scale = MathF.Abs(scales[j]);
            if (scale > amax) { amax = scale; maxScale = scales[j]; }
        }
        for (int k = 0; k < QuantBlocks.KScaleSize; k++) b->Scales[k] = 0;
        if (maxScale != 0)
        {
            float iscale = -32f / maxScale;
            for (int j = 0; j < Groups; ++j)
            {
                // ggml stores nearest_int's result in an int8_t before clamping.
                int l = (sbyte)QuantMath.NearestInt(iscale * scales[j]);
                PackScale(b->Scales, j, Math.Max(-32, Math.Min(31, l)) + 32);
            }
            b->D = QuantMath.ToHalf(1 / iscale);
        }
        else
        {
            b->D = QuantMath.ToHalf(0f);
        }
    }

    /// <summary>quantize_row_q3_K_impl's scale step: the levels make_qx_quants chose for the scales, and their scale.</summary>
    private static void StoreScales(BlockQ3_K* b, sbyte* Ls, float dBlock)
    {
        for (int k = 0; k < QuantBlocks.KScaleSize; k++) b->Scales[k] = 0;
        for (int j = 0; j < Groups; ++j) PackScale(b->Scales, j, Ls[j]);
        b->D = QuantMath.ToHalf(dBlock);
    }

    /// <summary>Group j's 6-bit scale: low nibble in byte j (j &lt; 8) or the high nibble of byte j-8, top 2 bits in byte 8 + j%4.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PackScale(byte* s, int j, int l)
    {
        if (j < 8) s[j] = (byte)(l & 0xF);
        else s[j - 8] |= (byte)((l & 0xF) << 4);
        l >>= 4;
        s[j % 4 + 8] |= (byte)(l << (2 * (j / 4)));
    }

    /// <summary>Group j's signed scale as ggml reads it back from the packed bytes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int UnpackScale(byte* s, int j)
    {
        int sc = j < 8 ? s[j] & 0xF : s[j - 8] >> 4;
        return (sc | (((s[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
    }

    /// <summary>
    /// Both ggml functions' tail: re-round against the quantized group scales (groups whose scale is 0 keep the
    /// search's levels), then the high bits into hmask and the low two into qs. Scalar, ggml's loops.
    /// </summary>
    private static void Finish(float* x, BlockQ3_K* b, sbyte* L)
    {
        for (int j = 0; j < Groups; ++j)
        {
            int sc = UnpackScale(b->Scales, j);
            float d = (float)b->D * sc;
            if (d == 0) continue;
            for (int ii = 0; ii < 16; ++ii)
            {
                int l = QuantMath.NearestInt(x[16 * j + ii] / d);
                l = Math.Max(-4, Math.Min(3, l));
                L[16 * j + ii] = (sbyte)(l + 4);
            }
        }
        for (int k = 0; k < QK / 8; k++) b->HMask[k] = 0;
        int m = 0;
        byte hm = 1;
        for (int j = 0; j < QK; ++j)
        {
            if (L[j] > 3)
            {
                b->HMask[m] |= hm;
                L[j] -= 4;
            }
            if (++m == QK / 8)
            {
                m = 0;
                hm <<= 1;
            }
        }
        for (int j = 0; j < QK; j += 128)
            for (int l = 0; l < 32; ++l)
                b->Qs[j / 4 + l] = (byte)((byte)L[j + l] | ((byte)L[j + l + 32] << 2) | ((byte)L[j + l + 64] << 4) | ((byte)L[j + l + 96] << 6));
    }

    // ---------------------------------------------------------------------------------------------------------------
    // Fast path

    private const int MaxLanes = 32;
    private const int SigmaWindow = 8;

    private struct Scratch
    {
        public float* Xt, Lt, Wt, Wxt, Qwt, Scales, Sw, Sigma2, D, Iscale, Sumlx, Suml2, Zero;
        public byte* L;
    }

    private static void RowFast(float* x, BlockQ3_K* y, int n, float* w)
    {
        if (Vector512.IsHardwareAccelerated)
            RowLanes<GroupLanePair<GroupLanes512>, GroupLanes512>(x, y, n, w);
        else if (Vector256.IsHardwareAccelerated)
            RowLanes<GroupLanes256x4, GroupLanePair<GroupLanes256>>(x, y, n, w);
        else if (w == null)
            RowReference(x, y, n);
        else
            RowWeightedReference(x, y, n, w);
    }

    /// <summary>
    /// <typeparamref name="TW"/>: 32 lanes, two blocks per batch (AVX2: <see cref="GroupLanes256x4"/>);
    /// <typeparamref name="TN"/>: 16 lanes, for a row's last block when the count is odd.
    /// </summary>
    [SkipLocalsInit]
    private static void RowLanes<TW, TN>(float* x, BlockQ3_K* y, int n, float* importance)
        where TW : unmanaged, IGroupLanes<TW> where TN : unmanaged, IGroupLanes<TN>
    {
        const int Rows = 16 * MaxLanes;
        float* p = stackalloc float[5 * Rows + 7 * MaxLanes + SigmaWindow];
        byte* levels = stackalloc byte[Rows];
        var s = new Scratch
        {
            Xt = p, Lt = p + Rows, Wt = p + 2 * Rows, Wxt = p + 3 * Rows, Qwt = p + 4 * Rows,
            Scales = p + 5 * Rows, Sw = p + 5 * Rows + MaxLanes, D = p + 5 * Rows + 2 * MaxLanes,
            Iscale = p + 5 * Rows + 3 * MaxLanes, Sumlx = p + 5 * Rows + 4 * MaxLanes, Suml2 = p + 5 * Rows + 5 * MaxLanes,
            Zero = p + 5 * Rows + 6 * MaxLanes, Sigma2 = p + 5 * Rows + 7 * MaxLanes, L = levels,
        };
        int nb = n / QK;
        int perWide = TW.Count / Groups;
        for (int w0 = 0; w0 < nb; w0 += SigmaWindow)
        {
            int w1 = Math.Min(nb, w0 + SigmaWindow);
            if (importance != null) Sigma2(x + (long)w0 * QK, w1 - w0, s.Sigma2);
            int i = w0;
            for (; i + perWide <= w1; i += perWide)
                Batch<TW, TN>(x + (long)i * QK, y + i, importance == null ? null : importance + (long)i * QK, s.Sigma2 + (i - w0), ref s);
            for (; i < w1; i++)
                Batch<TN, TN>(x + (long)i * QK, y + i, importance == null ? null : importance + (long)i * QK, s.Sigma2 + (i - w0), ref s);
        }
    }

    /// <summary>
    /// ggml's sigma2 = 2*sum(x^2)/256 for up to <see cref="SigmaWindow"/> blocks. Each sum is in element order as
    /// ggml's; four blocks' sums are interleaved because each alone is a 256-add dependency chain.
    /// </summary>
    private static void Sigma2(float* x, int blocks, float* sigma2)
    {
        int b = 0;
        for (; b + 4 <= blocks; b += 4)
        {
            float* p0 = x + b * QK, p1 = p0 + QK, p2 = p1 + QK, p3 = p2 + QK;
            float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            for (int j = 0; j < QK; ++j)
            {
                s0 += p0[j] * p0[j];
                s1 += p1[j] * p1[j];
                s2 += p2[j] * p2[j];
                s3 += p3[j] * p3[j];
            }
            sigma2[b] = 2 * s0 / QK;
            sigma2[b + 1] = 2 * s1 / QK;
            sigma2[b + 2] = 2 * s2 / QK;
            sigma2[b + 3] = 2 * s3 / QK;
        }
        for (; b < blocks; b++)
        {
            float* p = x + b * QK;
            float s0 = 0;
            for (int j = 0; j < QK; ++j) s0 += p[j] * p[j];
            sigma2[b] = 2 * s0 / QK;
        }
    }

    /// <summary>
    /// <typeparamref name="T"/>.Count / 16 consecutive blocks at <paramref name="x"/>, one group per lane.
    /// </summary>
    [SkipLocalsInit]
    private static void Batch<T, TN>(float* x, BlockQ3_K* y, float* qw, float* blockSigma2, ref Scratch s)
        where T : unmanaged, IGroupLanes<T> where TN : unmanaged, IGroupLanes<TN>
    {
        int c = T.Count;
        int blocks = c / Groups;
        Transpose(x, s.Xt, c);
        if (qw == null)
        {
            float* iscale = s.Iscale, sumlx = s.Sumlx, suml2 = s.Suml2, zero = s.Zero;
            Q3KLanes.StartQ3<T>(s.Xt, iscale, sumlx, suml2, zero);
            for (int lane = 0; lane < c; lane++)
            {
                if (BitConverter.SingleToInt32Bits(zero[lane]) != 0)
                {
                    TN.Store(TN.Zero, s.Wt + 16 * lane);
                    s.Scales[lane] = 0f;
                }
                else
                {
                    s.Scales[lane] = Q3KLanes.RefineQ3<TN>(x + 16 * lane, s.Wt + 16 * lane, iscale[lane], sumlx[lane], suml2[lane]);
                }
            }
            for (int b = 0; b < blocks; b++) QuantizeGroupScales(s.Scales + Groups * b, y + b);
        }
        else
        {
            Transpose(qw, s.Qwt, c);
            float* laneSigma2 = s.D; // borrowed: the per-lane scales are only needed after the search
            for (int lane = 0; lane < c; lane++) laneSigma2[lane] = blockSigma2[lane / Groups];
            Q3KLanes.MakeQxQuantsWeighted<T>(s.Xt, s.Qwt, laneSigma2, s.Lt, s.Scales, s.Sw, s.Wt, s.Wxt);
            sbyte* Ls = stackalloc sbyte[Groups];
            for (int b = 0; b < blocks; b++)
            {
                float dBlock = Q3KLanes.MakeQxQuants32<T>(s.Scales + Groups * b, Ls, s.Sw + Groups * b);
                StoreScales(y + b, Ls, dBlock);
            }
        }

        // From here on one group per row: s.Wt holds each group's 16 levels. The weighted search left them in lanes.
        if (qw != null) TransposeBack(s.Lt, s.Wt, c);
        var four = TN.Splat(4f);
        for (int b = 0; b < blocks; b++)
        {
            float dAll = (float)y[b].D;
            for (int j = 0; j < Groups; j++)
            {
                int lane = Groups * b + j;
                float d = dAll * UnpackScale(y[b].Scales, j);
                if (d == 0) continue;
                TN.Store(TN.Level(TN.Load(x + 16 * lane) / TN.Splat(d), -4, 3) + four, s.Wt + 16 * lane);
            }
        }
        if (Avx512F.IsSupported)
        {
            for (int g = 0; g < c; g++)
                Avx512F.ConvertToVector128Byte(Vector512.ConvertToInt32(Vector512.Load(s.Wt + 16 * g))).Store(s.L + 16 * g);
        }
        else
        {
            for (int k = 0; k < 16 * c; k++) s.L[k] = (byte)s.Wt[k];
        }
        for (int b = 0; b < blocks; b++) Pack(s.L + QK * b, y + b);
    }

    /// <summary>dst[i * lanes + g] = src[g * 16 + i]: element i of every group in one row of lanes.</summary>
    private static void Transpose(float* src, float* dst, int lanes)
    {
        if (Avx512F.IsSupported)
        {
            for (int b = 0; b < lanes / Groups; b++)
                Transpose16x16(src + QK * b, 16, dst + Groups * b, lanes);
            return;
        }
        for (int g = 0; g < lanes; g++)
            for (int i = 0; i < 16; i++)
                dst[i * lanes + g] = src[g * 16 + i];
    }

    /// <summary>The inverse of <see cref="Transpose"/>: dst[g * 16 + i] = src[i * lanes + g].</summary>
    private static void TransposeBack(float* src, float* dst, int lanes)
    {
        if (Avx512F.IsSupported)
        {
            for (int b = 0; b < lanes / Groups; b++)
                Transpose16x16(src + Groups * b, lanes, dst + QK * b, 16);
            return;
        }
        for (int g = 0; g < lanes; g++)
            for (int i = 0; i < 16; i++)
                dst[g * 16 + i] = src[i * lanes + g];
    }

    /// <summary>
    /// Row k of the 16 x 16 floats at <paramref name="src"/> (rows <paramref name="srcStride"/> apart) becomes column
    /// k at <paramref name="dst"/>: the usual four rounds of unpack and 128-bit shuffles, 64 shuffles in all instead
    /// of 256 scalar loads and stores.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Transpose16x16(float* src, int srcStride, float* dst, int dstStride)
    {
        // Locals, not arrays, so that all 32 intermediate vectors stay in registers.
        var r0 = Vector512.Load(src + 0 * srcStride);
        var r1 = Vector512.Load(src + 1 * srcStride);
        var r2 = Vector512.Load(src + 2 * srcStride);
        var r3 = Vector512.Load(src + 3 * srcStride);
        var r4 = Vector512.Load(src + 4 * srcStride);
        var r5 = Vector512.Load(src + 5 * srcStride);
        var r6 = Vector512.Load(src + 6 * srcStride);
        var r7 = Vector512.Load(src + 7 * srcStride);
        var r8 = Vector512.Load(src + 8 * srcStride);
        var r9 = Vector512.Load(src + 9 * srcStride);
        var r10 = Vector512.Load(src + 10 * srcStride);
        var r11 = Vector512.Load(src + 11 * srcStride);
        var r12 = Vector512.Load(src + 12 * srcStride);
        var r13 = Vector512.Load(src + 13 * srcStride);
        var r14 = Vector512.Load(src + 14 * srcStride);
        var r15 = Vector512.Load(src + 15 * srcStride);
        var t0 = Avx512F.UnpackLow(r0, r1);
        var t1 = Avx512F.UnpackHigh(r0, r1);
        var t2 = Avx512F.UnpackLow(r2, r3);
        var t3 = Avx512F.UnpackHigh(r2, r3);
        var t4 = Avx512F.UnpackLow(r4, r5);
        var t5 = Avx512F.UnpackHigh(r4, r5);
        var t6 = Avx512F.UnpackLow(r6, r7);
        var t7 = Avx512F.UnpackHigh(r6, r7);
        var t8 = Avx512F.UnpackLow(r8, r9);
        var t9 = Avx512F.UnpackHigh(r8, r9);
        var t10 = Avx512F.UnpackLow(r10, r11);
        var t11 = Avx512F.UnpackHigh(r10, r11);
        var t12 = Avx512F.UnpackLow(r12, r13);
        var t13 = Avx512F.UnpackHigh(r12, r13);
        var t14 = Avx512F.UnpackLow(r14, r15);
        var t15 = Avx512F.UnpackHigh(r14, r15);
        r0 = Avx512F.UnpackLow(t0.AsDouble(), t2.AsDouble()).AsSingle();
        r1 = Avx512F.UnpackHigh(t0.AsDouble(), t2.AsDouble()).AsSingle();
        r2 = Avx512F.UnpackLow(t1.AsDouble(), t3.AsDouble()).AsSingle();
        r3 = Avx512F.UnpackHigh(t1.AsDouble(), t3.AsDouble()).AsSingle();
        r4 = Avx512F.UnpackLow(t4.AsDouble(), t6.AsDouble()).AsSingle();
        r5 = Avx512F.UnpackHigh(t4.AsDouble(), t6.AsDouble()).AsSingle();
        r6 = Avx512F.UnpackLow(t5.AsDouble(), t7.AsDouble()).AsSingle();
        r7 = Avx512F.UnpackHigh(t5.AsDouble(), t7.AsDouble()).AsSingle();
        r8 = Avx512F.UnpackLow(t8.AsDouble(), t10.AsDouble()).AsSingle();
        r9 = Avx512F.UnpackHigh(t8.AsDouble(), t10.AsDouble()).AsSingle();
        r10 = Avx512F.UnpackLow(t9.AsDouble(), t11.AsDouble()).AsSingle();
        r11 = Avx512F.UnpackHigh(t9.AsDouble(), t11.AsDouble()).AsSingle();
        r12 = Avx512F.UnpackLow(t12.AsDouble(), t14.AsDouble()).AsSingle();
        r13 = Avx512F.UnpackHigh(t12.AsDouble(), t14.AsDouble()).AsSingle();
        r14 = Avx512F.UnpackLow(t13.AsDouble(), t15.AsDouble()).AsSingle();
        r15 = Avx512F.UnpackHigh(t13.AsDouble(), t15.AsDouble()).AsSingle();
        t0 = Avx512F.Shuffle4x128(r0, r4, 0x88);
        t4 = Avx512F.Shuffle4x128(r0, r4, 0xDD);
        t1 = Avx512F.Shuffle4x128(r1, r5, 0x88);
        t5 = Avx512F.Shuffle4x128(r1, r5, 0xDD);
        t2 = Avx512F.Shuffle4x128(r2, r6, 0x88);
        t6 = Avx512F.Shuffle4x128(r2, r6, 0xDD);
        t3 = Avx512F.Shuffle4x128(r3, r7, 0x88);
        t7 = Avx512F.Shuffle4x128(r3, r7, 0xDD);
        t8 = Avx512F.Shuffle4x128(r8, r12, 0x88);
        t12 = Avx512F.Shuffle4x128(r8, r12, 0xDD);
        t9 = Avx512F.Shuffle4x128(r9, r13, 0x88);
        t13 = Avx512F.Shuffle4x128(r9, r13, 0xDD);
        t10 = Avx512F.Shuffle4x128(r10, r14, 0x88);
        t14 = Avx512F.Shuffle4x128(r10, r14, 0xDD);
        t11 = Avx512F.Shuffle4x128(r11, r15, 0x88);
        t15 = Avx512F.Shuffle4x128(r11, r15, 0xDD);
        Avx512F.Shuffle4x128(t0, t8, 0x88).Store(dst + 0 * dstStride);
        Avx512F.Shuffle4x128(t0, t8, 0xDD).Store(dst + 8 * dstStride);
        Avx512F.Shuffle4x128(t1, t9, 0x88).Store(dst + 1 * dstStride);
        Avx512F.Shuffle4x128(t1, t9, 0xDD).Store(dst + 9 * dstStride);
        Avx512F.Shuffle4x128(t2, t10, 0x88).Store(dst + 2 * dstStride);
        Avx512F.Shuffle4x128(t2, t10, 0xDD).Store(dst + 10 * dstStride);
        Avx512F.Shuffle4x128(t3, t11, 0x88).Store(dst + 3 * dstStride);
        Avx512F.Shuffle4x128(t3, t11, 0xDD).Store(dst + 11 * dstStride);
        Avx512F.Shuffle4x128(t4, t12, 0x88).Store(dst + 4 * dstStride);
        Avx512F.Shuffle4x128(t4, t12, 0xDD).Store(dst + 12 * dstStride);
        Avx512F.Shuffle4x128(t5, t13, 0x88).Store(dst + 5 * dstStride);
        Avx512F.Shuffle4x128(t5, t13, 0xDD).Store(dst + 13 * dstStride);
        Avx512F.Shuffle4x128(t6, t14, 0x88).Store(dst + 6 * dstStride);
        Avx512F.Shuffle4x128(t6, t14, 0xDD).Store(dst + 14 * dstStride);
        Avx512F.Shuffle4x128(t7, t15, 0x88).Store(dst + 7 * dstStride);
        Avx512F.Shuffle4x128(t7, t15, 0xDD).Store(dst + 15 * dstStride);
    }

    /// <summary>hmask and qs from 256 levels in 0..7, as the reference's loops set them.</summary>
    private static void Pack(byte* L, BlockQ3_K* b)
    {
        var three = Vector256.Create((byte)3);
        var hm = Vector256<byte>.Zero;
        for (int k = 0; k < 8; k++)
            hm |= Vector256.GreaterThan(Vector256.Load(L + 32 * k), three) & Vector256.Create((byte)(1 << k));
        hm.Store(b->HMask);
        for (int h = 0; h < 2; h++)
        {
            byte* p = L + 128 * h;
            var q = (Vector256.Load(p) & three)
                | Vector256.ShiftLeft(Vector256.Load(p + 32) & three, 2)
                | Vector256.ShiftLeft(Vector256.Load(p + 64) & three, 4)
                | Vector256.ShiftLeft(Vector256.Load(p + 96) & three, 6);
            q.Store(b->Qs + 32 * h);
        }
    }
}
