using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace EdgeQuant.Core.Quantization;

// Q8_0 quantization as ggml-quants.c's quantize_row_q8_0_ref (ggml_quantize_chunk uses it with or without an
// importance matrix): d = amax/127, q = roundf(x/d).
public static unsafe partial class Q8_0
{
    /// <summary>The scalar reference, ggml's operations in ggml's order.</summary>
    public static void QuantizeRowReference(ReadOnlySpan<float> src, Span<BlockQ8_0> dst)
    {
        QuantGuard.Check(dst.Length, src.Length, QuantBlocks.QK);
        fixed (float* xp = src)
        fixed (BlockQ8_0* yp = dst)
        {
            for (int i = 0; i < dst.Length; i++)
            {
                float* x = xp + i * QuantBlocks.QK;
                float amax = 0;
                for (int j = 0; j < QuantBlocks.QK; j++)
                {
                    float a = MathF.Abs(x[j]);
                    amax = amax > a ? amax : a;
                }
                float d = amax / ((1 << 7) - 1);
                float id = d != 0 ? 1.0f / d : 0.0f;
                yp[i].D = QuantMath.ToHalf(d);
                for (int j = 0; j < QuantBlocks.QK; j++)
                    yp[i].Qs[j] = (sbyte)QuantMath.CInt(MathF.Round(x[j] * id, MidpointRounding.AwayFromZero));
            }
        }
    }

    /// <summary>The same bytes as <see cref="QuantizeRowReference"/>, a block per four 8-wide vectors.</summary>
    public static void QuantizeRow(ReadOnlySpan<float> src, Span<BlockQ8_0> dst)
    {
        QuantGuard.Check(dst.Length, src.Length, QuantBlocks.QK);
        fixed (float* x = src)
        fixed (BlockQ8_0* y = dst)
            Row(x, y, dst.Length);
    }

    private static void Row(float* xp, BlockQ8_0* yp, int blocks)
    {
        if (!Vector256.IsHardwareAccelerated)
        {
            QuantizeRowReference(new ReadOnlySpan<float>(xp, blocks * QuantBlocks.QK), new Span<BlockQ8_0>(yp, blocks));
            return;
        }
        for (int i = 0; i < blocks; i++)
        {
            float* x = xp + i * QuantBlocks.QK;
            var a = Vector256.Load(x);
            var b = Vector256.Load(x + 8);
            var c = Vector256.Load(x + 16);
            var e = Vector256.Load(x + 24);
            var abs = Vector256.Max(Vector256.Max(Vector256.Abs(a), Vector256.Abs(b)), Vector256.Max(Vector256.Abs(c), Vector256.Abs(e)));
            float amax = BlockVectors.HorizontalMax(abs);
            float d = amax / ((1 << 7) - 1);
            float id = d != 0 ? 1.0f / d : 0.0f;
            yp[i].D = QuantMath.ToHalf(d);
            var vid = Vector256.Create(id);
            var s0 = Vector256.Narrow(BlockVectors.RoundAwayFromZero(a * vid), BlockVectors.RoundAwayFromZero(b * vid));
            var s1 = Vector256.Narrow(BlockVectors.RoundAwayFromZero(c * vid), BlockVectors.RoundAwayFromZero(e * vid));
            Vector256.Narrow(s0, s1).Store(yp[i].Qs);
        }
    }

    /// <summary>
    /// Quantizes <paramref name="rows"/> rows of <paramref name="rowLength"/> (a multiple of 32) into
    /// <paramref name="dst"/>; returns the bytes written. Q8_0 has no weighted search, so <paramref name="importance"/>
    /// is checked for length and otherwise ignored, as ggml does.
    /// </summary>
    public static long Quantize(ReadOnlySpan<float> src, Span<byte> dst, int rows, int rowLength, ReadOnlySpan<float> importance = default, int threads = 0) =>
        QuantizeDriver.Run<Quantizer>(src, dst, rows, rowLength, importance, threads, QuantBlocks.QK);

    private readonly struct Quantizer : IRowQuantizer
    {
        public static int BlockBytes => sizeof(BlockQ8_0);
        public static void Row(float* x, byte* y, int n) => Q8_0.Row(x, (BlockQ8_0*)y, n / QuantBlocks.QK);
        public static void RowWeighted(float* x, byte* y, int n, float* w) => Q8_0.Row(x, (BlockQ8_0*)y, n / QuantBlocks.QK);
    }
}
