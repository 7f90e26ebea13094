using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

// The scalar fallbacks of the vectorized dequantizers are tested directly (the machines that run the suite all have vectors).
[assembly: InternalsVisibleTo("EdgeQuant.Core.Tests")]

namespace EdgeQuant.Core.Quantization;

// Dequantizers of the 32-element ggml block types. The arithmetic follows ggml-quants.c (dequantize_row_*) operation
// for operation (int to float, times the scale, plus the min), so results equal ggml's scalar path bit for bit
// unless a C compiler contracted a*b+c into a fused multiply-add.

/// <summary>Q4_0 (see <see cref="BlockQ4_0"/>).</summary>
public static unsafe partial class Q4_0
{
    public static void DequantizeRow(ReadOnlySpan<BlockQ4_0> src, Span<float> dst)
    {
        if (!Vector128.IsHardwareAccelerated)
        {
            DequantizeRowScalar(src, dst);
            return;
        }
        QuantGuard.Check(src.Length, dst.Length, QuantBlocks.QK);
        fixed (BlockQ4_0* bp = src)
        fixed (float* yp = dst)
        {
            for (int i = 0; i < src.Length; i++)
            {
                var b = bp + i;
                float* y = yp + i * QuantBlocks.QK;
                var q = Vector128.Load(b->Qs);
                Nibbles.Store16(q & Vector128.Create((byte)0x0F), y, (float)b->D, 8f);
                Nibbles.Store16(Vector128.ShiftRightLogical(q, 4), y + 16, (float)b->D, 8f);
            }
        }
    }

    /// <summary>The plain loop, used where no vector unit is available; tested on its own.</summary>
    internal static void DequantizeRowScalar(ReadOnlySpan<BlockQ4_0> src, Span<float> dst)
    {
        QuantGuard.Check(src.Length, dst.Length, QuantBlocks.QK);
        fixed (BlockQ4_0* bp = src)
        fixed (float* yp = dst)
        {
            for (int i = 0; i < src.Length; i++)
            {
                var b = bp + i;
                float d = (float)b->D;
                float* y = yp + i * QuantBlocks.QK;
                for (int j = 0; j < 16; j++)
                {
                    int x0 = (b->Qs[j] & 0x0F) - 8;
                    int x1 = (b->Qs[j] >> 4) - 8;
                    y[j] = x0 * d;
                    y[j + 16] = x1 * d;
                }
            }
        }
    }
}

/// <summary>Q4_1 (see <see cref="BlockQ4_1"/>).</summary>
public static unsafe partial class Q4_1
{
    public static void DequantizeRow(ReadOnlySpan<BlockQ4_1> src, Span<float> dst)
    {
        QuantGuard.Check(src.Length, dst.Length, QuantBlocks.QK);
        fixed (BlockQ4_1* bp = src)
        fixed (float* yp = dst)
        {
            for (int i = 0; i < src.Length; i++)
            {
                var b = bp + i;
                float d = (float)b->D;
                float m = (float)b->M;
                float* y = yp + i * QuantBlocks.QK;
                for (int j = 0; j < 16; j++)
                {
                    int x0 = b->Qs[j] & 0x0F;
                    int x1 = b->Qs[j] >> 4;
                    y[j] = x0 * d + m;
                    y[j + 16] = x1 * d + m;
                }
            }
        }
    }
}

/// <summary>Q5_0 (see <see cref="BlockQ5_0"/>).</summary>
public static unsafe partial class Q5_0
{
    public static void DequantizeRow(ReadOnlySpan<BlockQ5_0> src, Span<float> dst)
    {
        QuantGuard.Check(src.Length, dst.Length, QuantBlocks.QK);
        fixed (BlockQ5_0* bp = src)
        fixed (float* yp = dst)
        {
            for (int i = 0; i < src.Length; i++)
            {
                var b = bp + i;
                float d = (float)b->D;
                uint qh = *(uint*)b->Qh;
                float* y = yp + i * QuantBlocks.QK;
                for (int j = 0; j < 16; j++)
                {
                    int xh0 = (int)(((qh >> j) << 4) & 0x10);
                    int xh1 = (int)((qh >> (j + 12)) & 0x10);
                    int x0 = ((b->Qs[j] & 0x0F) | xh0) - 16;
                    int x1 = ((b->Qs[j] >> 4) | xh1) - 16;
                    y[j] = x0 * d;
                    y[j + 16] = x1 * d;
                }
            }
        }
    }
}

/// <summary>Q5_1 (see <see cref="BlockQ5_1"/>).</summary>
public static unsafe partial class Q5_1
{
    public static void DequantizeRow(ReadOnlySpan<BlockQ5_1> src, Span<float> dst)
    {
        QuantGuard.Check(src.Length, dst.Length, QuantBlocks.QK);
        fixed (BlockQ5_1* bp = src)
        fixed (float* yp = dst)
        {
            for (int i = 0; i < src.Length; i++)
            {
                var b = bp + i;
                float d = (float)b->D;
                float m = (float)b->M;
                uint qh = *(uint*)b->Qh;
                float* y = yp + i * QuantBlocks.QK;
                for (int j = 0; j < 16; j++)
                {
                    int xh0 = (int)(((qh >> j) << 4) & 0x10);
                    int xh1 = (int)((qh >> (j + 12)) & 0x10);
                    int x0 = (b->Qs[j] & 0x0F) | xh0;
                    int x1 = (b->Qs[j] >> 4) | xh1;
                    y[j] = x0 * d + m;
                    y[j + 16] = x1 * d + m;
                }
            }
        }
    }
}

/// <summary>Q8_0 (see <see cref="BlockQ8_0"/>).</summary>
public static unsafe partial class Q8_0
{
    public static void DequantizeRow(ReadOnlySpan<BlockQ8_0> src, Span<float> dst)
    {
        if (!Vector256.IsHardwareAccelerated)
        {
            DequantizeRowScalar(src, dst);
            return;
        }
        QuantGuard.Check(src.Length, dst.Length, QuantBlocks.QK);
        fixed (BlockQ8_0* bp = src)
        fixed (float* yp = dst)
        {
            for (int i = 0; i < src.Length; i++)
            {
                var b = bp + i;
                float* y = yp + i * QuantBlocks.QK;
                var (s0, s1) = Vector256.Widen(Vector256.Load(b->Qs));
                var (i0, i1) = Vector256.Widen(s0);
                var (i2, i3) = Vector256.Widen(s1);
                var vd = Vector256.Create((float)b->D);
                Vector256.Store(Vector256.ConvertToSingle(i0) * vd, y);
                Vector256.Store(Vector256.ConvertToSingle(i1) * vd, y + 8);
                Vector256.Store(Vector256.ConvertToSingle(i2) * vd, y + 16);
                Vector256.Store(Vector256.ConvertToSingle(i3) * vd, y + 24);
            }
        }
    }

    /// <summary>The plain loop, used where no 256-bit vector unit is available; tested on its own.</summary>
    internal static void DequantizeRowScalar(ReadOnlySpan<BlockQ8_0> src, Span<float> dst)
    {
        QuantGuard.Check(src.Length, dst.Length, QuantBlocks.QK);
        fixed (BlockQ8_0* bp = src)
        fixed (float* yp = dst)
        {
            for (int i = 0; i < src.Length; i++)
            {
                var b = bp + i;
                float d = (float)b->D;
                float* y = yp + i * QuantBlocks.QK;
                for (int j = 0; j < 32; j++) y[j] = b->Qs[j] * d;
            }
        }
    }
}

/// <summary>Q8_1 (see <see cref="BlockQ8_1"/>); the stored sum is not needed to dequantize.</summary>
public static unsafe partial class Q8_1
{
    public static void DequantizeRow(ReadOnlySpan<BlockQ8_1> src, Span<float> dst)
    {
        QuantGuard.Check(src.Length, dst.Length, QuantBlocks.QK);
        fixed (BlockQ8_1* bp = src)
        fixed (float* yp = dst)
        {
            for (int i = 0; i < src.Length; i++)
            {
                var b = bp + i;
                float d = (float)b->D;
                float* y = yp + i * QuantBlocks.QK;
                for (int j = 0; j < 32; j++) y[j] = b->Qs[j] * d;
            }
        }
    }
}

/// <summary>Widening helpers shared by the vector paths.</summary>
internal static unsafe class Nibbles
{
    /// <summary>y[k] = (v[k] - offset) * d for 16 small unsigned values; the subtraction is exact in float, so this equals (int)(v-offset) * d.</summary>
    public static void Store16(Vector128<byte> v, float* y, float d, float offset)
    {
        var (u0, u1) = Vector128.Widen(v);
        var (a, b) = Vector128.Widen(u0);
        var (c, e) = Vector128.Widen(u1);
        var vd = Vector128.Create(d);
        var off = Vector128.Create(offset);
        Vector128.Store((Vector128.ConvertToSingle(a.AsInt32()) - off) * vd, y);
        Vector128.Store((Vector128.ConvertToSingle(b.AsInt32()) - off) * vd, y + 4);
        Vector128.Store((Vector128.ConvertToSingle(c.AsInt32()) - off) * vd, y + 8);
        Vector128.Store((Vector128.ConvertToSingle(e.AsInt32()) - off) * vd, y + 12);
    }
}

internal static class QuantGuard
{
    public static void Check(int blocks, int elements, int blockSize)
    {
        if ((long)blocks * blockSize != elements)
            throw new ArgumentException($"{blocks} blocks of {blockSize} do not fill a row of {elements} elements");
    }

    public static ReadOnlySpan<T> Blocks<T>(ReadOnlySpan<byte> src, int elements, int blockSize, int blockBytes) where T : unmanaged
    {
        if (elements % blockSize != 0)
            throw new ArgumentException($"{elements} elements is not a whole number of {blockSize}-element blocks");
        long bytes = (long)(elements / blockSize) * blockBytes;
        if (src.Length < bytes)
            throw new ArgumentException($"{elements} elements need {bytes} bytes of blocks, got {src.Length}");
        return MemoryMarshal.Cast<byte, T>(src[..(int)bytes]);
    }
}
