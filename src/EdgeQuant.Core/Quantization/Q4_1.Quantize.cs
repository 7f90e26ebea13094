using System.Runtime.Intrinsics;

namespace EdgeQuant.Core.Quantization;

// Q4_1 quantization as ggml-quants.c: quantize_row_q4_1_ref without an importance matrix (d = (max - min)/15,
// m = min, q = min(15, trunc((x - min)/d + 0.5))), quantize_row_q4_1_impl with one (make_qkx3_quants, 37 steps).
public static unsafe partial class Q4_1
{
    /// <summary>The scalar reference, ggml's operations in ggml's order.</summary>
    public static void QuantizeRowReference(ReadOnlySpan<float> src, Span<BlockQ4_1> dst)
    {
        QuantGuard.Check(dst.Length, src.Length, QuantBlocks.QK);
        fixed (float* xp = src)
        fixed (BlockQ4_1* yp = dst)
        {
            for (int i = 0; i < dst.Length; i++)
            {
                float* x = xp + i * QuantBlocks.QK;
                float min = float.MaxValue, max = -float.MaxValue;
                for (int j = 0; j < QuantBlocks.QK; j++)
                {
                    if (x[j] < min) min = x[j];
                    if (x[j] > max) max = x[j];
                }
                float d = (max - min) / ((1 << 4) - 1);
                float id = d != 0 ? 1.0f / d : 0.0f;
                yp[i].D = QuantMath.ToHalf(d);
                yp[i].M = QuantMath.ToHalf(min);
                for (int j = 0; j < 16; j++)
                {
                    int xi0 = Math.Min(15, (int)(sbyte)QuantMath.CInt((x[j] - min) * id + 0.5f));
                    int xi1 = Math.Min(15, (int)(sbyte)QuantMath.CInt((x[j + 16] - min) * id + 0.5f));
                    yp[i].Qs[j] = (byte)(xi0 | xi1 << 4);
                }
            }
        }
    }

    /// <summary>The same bytes as <see cref="QuantizeRowReference"/>, a block per four 8-wide vectors.</summary>
    public static void QuantizeRow(ReadOnlySpan<float> src, Span<BlockQ4_1> dst)
    {
        QuantGuard.Check(dst.Length, src.Length, QuantBlocks.QK);
        fixed (float* x = src)
        fixed (BlockQ4_1* y = dst)
            Row(x, y, dst.Length);
    }

    private static void Row(float* xp, BlockQ4_1* yp, int blocks)
    {
        if (!Vector256.IsHardwareAccelerated)
        {
            QuantizeRowReference(new ReadOnlySpan<float>(xp, blocks * QuantBlocks.QK), new Span<BlockQ4_1>(yp, blocks));
            return;
        }
        LegacyRows.Asymmetric<BlockQ4_1, VectorBlock>(xp, yp, blocks);
    }

    private readonly struct VectorBlock : IAsymmetricLegacyBlock<BlockQ4_1>
    {
        public static int Bits => 4;
        public static bool Clamp => true;

        [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
        public static void Store(BlockQ4_1* y, float d, float min, Vector256<byte> q)
        {
            y->D = QuantMath.ToHalf(d);
            y->M = QuantMath.ToHalf(min);
            BlockVectors.PackNibbles(q).Store(y->Qs);
        }
    }

    /// <summary>
    /// ggml's quantize_row_q4_1_impl with importance: per block, scale and min from make_qkx3_quants (nmax 15,
    /// rmin -0.9, rdelta 0.05, 36 steps) under weights importance * sqrt(sigma2 + x^2).
    /// </summary>
    public static void QuantizeRowWeighted(ReadOnlySpan<float> src, Span<BlockQ4_1> dst, ReadOnlySpan<float> importance)
        => LegacyWeighted.Row<BlockQ4_1, WeightedBlock>(src, dst, importance, reference: false);

    private readonly struct WeightedBlock : ILegacyWeightedBlock<BlockQ4_1>
    {
        public static void Block(float* xb, float* weight, BlockQ4_1* y, byte* L, byte* laux, bool reference)
        {
            float min;
            float d = reference
                ? QuantMath.MakeQkx3Quants(QuantBlocks.QK, 15, xb, weight, L, out min, laux, -0.9f, 0.05f, 36)
                : WeightedSearch.MakeQkx3Quants(15, xb, weight, L, out min, -0.9f, 0.05f, 36);
            y->D = QuantMath.ToHalf(d);
            y->M = QuantMath.ToHalf(-min);
            for (int j = 0; j < 16; j++) y->Qs[j] = (byte)(L[j] | L[j + 16] << 4);
        }
    }

    /// <summary>The weighted quantizer with ggml's scalar search loops, for tests of the vector search.</summary>
    internal static void QuantizeRowWeightedReference(ReadOnlySpan<float> src, Span<BlockQ4_1> dst, ReadOnlySpan<float> importance)
        => LegacyWeighted.Row<BlockQ4_1, WeightedBlock>(src, dst, importance, reference: true);

    /// <summary>
    /// Quantizes <paramref name="rows"/> rows of <paramref name="rowLength"/> (a multiple of 32) into
    /// <paramref name="dst"/>, with the weighted search when <paramref name="importance"/> (one entry per column) is
    /// given; returns the bytes written. Multi-threaded over rows; the bytes equal ggml_quantize_chunk's.
    /// </summary>
    public static long Quantize(ReadOnlySpan<float> src, Span<byte> dst, int rows, int rowLength, ReadOnlySpan<float> importance = default, int threads = 0) =>
        QuantizeDriver.Run<Quantizer>(src, dst, rows, rowLength, importance, threads, QuantBlocks.QK);

    private readonly struct Quantizer : IRowQuantizer
    {
        public static int BlockBytes => sizeof(BlockQ4_1);
        public static void Row(float* x, byte* y, int n) => Q4_1.Row(x, (BlockQ4_1*)y, n / QuantBlocks.QK);
        public static void RowWeighted(float* x, byte* y, int n, float* w) => LegacyWeighted.Row<BlockQ4_1, WeightedBlock>(x, (BlockQ4_1*)y, n, w);
    }
}
