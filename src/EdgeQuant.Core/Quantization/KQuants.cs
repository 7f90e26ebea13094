using System.Runtime.Intrinsics;

namespace EdgeQuant.Core.Quantization;

// Dequantizers of the 256-element K-quant super-blocks, following ggml-quants.c (dequantize_row_q*_K) operation for
// operation: the group scale is formed first (d * sc), then applied to the integer value, then the min subtracted.

/// <summary>Q2_K (see <see cref="BlockQ2_K"/>).</summary>
public static unsafe partial class Q2_K
{
    public static void DequantizeRow(ReadOnlySpan<BlockQ2_K> src, Span<float> dst)
    {
        QuantGuard.Check(src.Length, dst.Length, QuantBlocks.QK_K);
        fixed (BlockQ2_K* bp = src)
        fixed (float* yp = dst)
        {
            float* y = yp;
            for (int i = 0; i < src.Length; i++)
            {
                var b = bp + i;
                float d = (float)b->D;
                float min = (float)b->DMin;
                byte* q = b->Qs;
                int s = 0;
                for (int n = 0; n < QuantBlocks.QK_K; n += 128)
                {
                    for (int shift = 0; shift < 8; shift += 2)
                    {
                        for (int half = 0; half < 2; half++)
                        {
                            byte sc = b->Scales[s++];
                            float dl = d * (sc & 0x0F);
                            float ml = min * (sc >> 4);
                            byte* qq = q + 16 * half;
                            for (int l = 0; l < 16; l++) *y++ = dl * ((qq[l] >> shift) & 3) - ml;
                        }
                    }
                    q += 32;
                }
            }
        }
    }
}

/// <summary>Q3_K (see <see cref="BlockQ3_K"/>).</summary>
public static unsafe partial class Q3_K
{
    public static void DequantizeRow(ReadOnlySpan<BlockQ3_K> src, Span<float> dst)
    {
        QuantGuard.Check(src.Length, dst.Length, QuantBlocks.QK_K);
        const uint KMask1 = 0x03030303;
        const uint KMask2 = 0x0f0f0f0f;
        uint* aux = stackalloc uint[4];
        sbyte* scales = (sbyte*)aux;
        fixed (BlockQ3_K* bp = src)
        fixed (float* yp = dst)
        {
            float* y = yp;
            for (int i = 0; i < src.Length; i++)
            {
                var b = bp + i;
                float dAll = (float)b->D;
                // Unpack sixteen 6-bit scales: low 4 bits from bytes 0..7 (low then high nibbles), high 2 bits from bytes 8..11.
                uint* raw = (uint*)b->Scales;
                uint a0 = raw[0], a1 = raw[1], tmp = raw[2];
                aux[0] = (a0 & KMask2) | (((tmp >> 0) & KMask1) << 4);
                aux[1] = (a1 & KMask2) | (((tmp >> 2) & KMask1) << 4);
                aux[2] = ((a0 >> 4) & KMask2) | (((tmp >> 4) & KMask1) << 4);
                aux[3] = ((a1 >> 4) & KMask2) | (((tmp >> 6) & KMask1) << 4);

                byte* q = b->Qs;
                byte* hm = b->HMask;
                int hbit = 0;
                int s = 0;
                for (int n = 0; n < QuantBlocks.QK_K; n += 128)
                {
                    for (int shift = 0; shift < 8; shift += 2)
                    {
                        for (int half = 0; half < 2; half++)
                        {
                            float dl = dAll * (scales[s++] - 32);
                            int o = 16 * half;
                            // A clear high bit subtracts 4; computed without a branch, which random-looking bits defeat.
                            for (int l = 0; l < 16; l++)
                                *y++ = dl * (((q[o + l] >> shift) & 3) - 4 + (((hm[o + l] >> hbit) & 1) << 2));
                        }
                        hbit++;
                    }
                    q += 32;
                }
            }
        }
    }
}

/// <summary>The 6-bit scale and min of group <paramref name="j"/> (0..7) packed in 12 bytes (ggml's get_scale_min_k4).</summary>
internal static unsafe class KScales
{
    public static void Get(int j, byte* q, out int scale, out int min)
    {
        if (j < 4)
        {
            scale = q[j] & 63;
            min = q[j + 4] & 63;
        }
        else
        {
            scale = (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4);
            min = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
        }
    }
}

/// <summary>Q4_K (see <see cref="BlockQ4_K"/>).</summary>
public static unsafe partial class Q4_K
{
    public static void DequantizeRow(ReadOnlySpan<BlockQ4_K> src, Span<float> dst) => DequantizeRow(src, dst, Vector256.IsHardwareAccelerated);

    /// <param name="vector">False runs the plain loop (the fallback where vectors are missing; tested on its own).</param>
    internal static void DequantizeRow(ReadOnlySpan<BlockQ4_K> src, Span<float> dst, bool vector)
    {
        QuantGuard.Check(src.Length, dst.Length, QuantBlocks.QK_K);
        fixed (BlockQ4_K* bp = src)
        fixed (float* yp = dst)
        {
            float* y = yp;
            for (int i = 0; i < src.Length; i++)
            {
                var b = bp + i;
                float d = (float)b->D;
                float min = (float)b->DMin;
                byte* q = b->Qs;
                for (int g = 0; g < 8; g += 2)
                {
                    KScales.Get(g, b->Scales, out int sc1, out int m1i);
                    KScales.Get(g + 1, b->Scales, out int sc2, out int m2i);
                    float d1 = d * sc1, m1 = min * m1i;
                    float d2 = d * sc2, m2 = min * m2i;
                    if (vector)
                    {
                        var v = Vector256.Load(q);
                        Bytes32.Store(v & Vector256.Create((byte)0x0F), y, d1, m1);
                        Bytes32.Store(Vector256.ShiftRightLogical(v, 4), y + 32, d2, m2);
                        y += 64;
                    }
                    else
                    {
                        for (int l = 0; l < 32; l++) *y++ = d1 * (q[l] & 0x0F) - m1;
                        for (int l = 0; l < 32; l++) *y++ = d2 * (q[l] >> 4) - m2;
                    }
                    q += 32;
                }
            }
        }
    }
}

/// <summary>32 small unsigned values to floats as d * v - m (multiply, then subtract: ggml's order, unfused).</summary>
internal static unsafe class Bytes32
{
    public static void Store(Vector256<byte> v, float* y, float d, float m)
    {
        var (u0, u1) = Vector256.Widen(v);
        var (a, b) = Vector256.Widen(u0);
        var (c, e) = Vector256.Widen(u1);
        var vd = Vector256.Create(d);
        var vm = Vector256.Create(m);
        Vector256.Store(Vector256.ConvertToSingle(a.AsInt32()) * vd - vm, y);
        Vector256.Store(Vector256.ConvertToSingle(b.AsInt32()) * vd - vm, y + 8);
        Vector256.Store(Vector256.ConvertToSingle(c.AsInt32()) * vd - vm, y + 16);
        Vector256.Store(Vector256.ConvertToSingle(e.AsInt32()) * vd - vm, y + 24);
    }
}

/// <summary>Q5_K (see <see cref="BlockQ5_K"/>).</summary>
public static unsafe partial class Q5_K
{
    public static void DequantizeRow(ReadOnlySpan<BlockQ5_K> src, Span<float> dst) => DequantizeRow(src, dst, Vector256.IsHardwareAccelerated);

    /// <param name="vector">False runs the plain loop (the fallback where vectors are missing; tested on its own).</param>
    internal static void DequantizeRow(ReadOnlySpan<BlockQ5_K> src, Span<float> dst, bool vector)
    {
        QuantGuard.Check(src.Length, dst.Length, QuantBlocks.QK_K);
        fixed (BlockQ5_K* bp = src)
        fixed (float* yp = dst)
        {
            float* y = yp;
            for (int i = 0; i < src.Length; i++)
            {
                var b = bp + i;
                float d = (float)b->D;
                float min = (float)b->DMin;
                byte* ql = b->Qs;
                byte* qh = b->Qh;
                for (int g = 0; g < 8; g += 2)
                {
                    KScales.Get(g, b->Scales, out int sc1, out int m1i);
                    KScales.Get(g + 1, b->Scales, out int sc2, out int m2i);
                    float d1 = d * sc1, m1 = min * m1i;
                    float d2 = d * sc2, m2 = min * m2i;
                    // The fifth bit of group g is bit g of qh[l]; shifted in without a branch.
                    if (vector)
                    {
                        var lo = Vector256.Load(ql);
                        var hi = Vector256.Load(qh);
                        var one = Vector256.Create((byte)1);
                        var h1 = Vector256.ShiftLeft(Vector256.ShiftRightLogical(hi, g) & one, 4);
                        var h2 = Vector256.ShiftLeft(Vector256.ShiftRightLogical(hi, g + 1) & one, 4);
                        Bytes32.Store((lo & Vector256.Create((byte)0x0F)) | h1, y, d1, m1);
                        Bytes32.Store(Vector256.ShiftRightLogical(lo, 4) | h2, y + 32, d2, m2);
                        y += 64;
                    }
                    else
                    {
                        for (int l = 0; l < 32; l++) *y++ = d1 * ((ql[l] & 0x0F) | (((qh[l] >> g) & 1) << 4)) - m1;
                        for (int l = 0; l < 32; l++) *y++ = d2 * ((ql[l] >> 4) | (((qh[l] >> (g + 1)) & 1) << 4)) - m2;
                    }
                    ql += 32;
                }
            }
        }
    }
}

/// <summary>Q6_K (see <see cref="BlockQ6_K"/>).</summary>
public static unsafe partial class Q6_K
{
    public static void DequantizeRow(ReadOnlySpan<BlockQ6_K> src, Span<float> dst)
    {
        QuantGuard.Check(src.Length, dst.Length, QuantBlocks.QK_K);
        fixed (BlockQ6_K* bp = src)
        fixed (float* yp = dst)
        {
            float* y = yp;
            for (int i = 0; i < src.Length; i++)
            {
                var b = bp + i;
                float d = (float)b->D;
                byte* ql = b->Ql;
                byte* qh = b->Qh;
                sbyte* sc = b->Scales;
                for (int n = 0; n < QuantBlocks.QK_K; n += 128)
                {
                    for (int l = 0; l < 32; l++)
                    {
                        int s = l / 16;
                        int q1 = ((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32;
                        int q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32;
                        int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                        int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                        y[l] = d * sc[s] * q1;
                        y[l + 32] = d * sc[s + 2] * q2;
                        y[l + 64] = d * sc[s + 4] * q3;
                        y[l + 96] = d * sc[s + 6] * q4;
                    }
                    y += 128;
                    ql += 64;
                    qh += 32;
                    sc += 8;
                }
            }
        }
    }
}

/// <summary>Q8_K (see <see cref="BlockQ8_K"/>).</summary>
public static unsafe partial class Q8_K
{
    public static void DequantizeRow(ReadOnlySpan<BlockQ8_K> src, Span<float> dst)
    {
        QuantGuard.Check(src.Length, dst.Length, QuantBlocks.QK_K);
        fixed (BlockQ8_K* bp = src)
        fixed (float* yp = dst)
        {
            for (int i = 0; i < src.Length; i++)
            {
                var b = bp + i;
                float* y = yp + i * QuantBlocks.QK_K;
                for (int j = 0; j < QuantBlocks.QK_K; j++) y[j] = b->D * b->Qs[j];
            }
        }
    }
}
