using System.Runtime.Intrinsics;

namespace EdgeQuant.Core.Quantization;

// Q5_0 quantization as ggml-quants.c: quantize_row_q4_0_ref without an importance matrix (d = signed absmax / -16,
// q = min(31, trunc(x/d + 16.5)), low nibbles packed, fifth bits in qh), quantize_row_q4_0_impl with one (make_qx_quants over importance-weighted errors).
public static unsafe partial class Q5_0
{
    /// <summary>The scalar reference, ggml's operations in ggml's order.</summary>
    public static void QuantizeRowReference(ReadOnlySpan<float> src, Span<BlockQ5_0> dst)
    {
        QuantGuard.Check(dst.Length, src.Length, QuantBlocks.QK);
        fixed (float* xp = src)
        fixed (BlockQ5_0* yp = dst)
        {
            for (int i = 0; i < dst.Length; i++)
            {
                float* x = xp + i * QuantBlocks.QK;
                float amax = 0, max = 0;
                for (int j = 0; j < QuantBlocks.QK; j++)
                {
                    if (amax < MathF.Abs(x[j])) { amax = MathF.Abs(x[j]); max = x[j]; }
                }
                float d = max / -16;
                float id = d != 0 ? 1.0f / d : 0.0f;
                yp[i].D = QuantMath.ToHalf(d);
                uint qh = 0;
                for (int j = 0; j < 16; j++)
                {
                    int xi0 = Math.Min(31, (int)(sbyte)QuantMath.CInt(x[j] * id + 16.5f));
                    int xi1 = Math.Min(31, (int)(sbyte)QuantMath.CInt(x[j + 16] * id + 16.5f));
                    yp[i].Qs[j] = (byte)((xi0 & 0x0F) | (xi1 & 0x0F) << 4);
                    qh |= (uint)((xi0 & 0x10) >> 4) << j;
                    qh |= (uint)((xi1 & 0x10) >> 4) << (j + 16);
                }
                *(uint*)yp[i].Qh = qh;
            }
        }
    }

    /// <summary>The same bytes as <see cref="QuantizeRowReference"/>, a block per four 8-wide vectors.</summary>
    public static void QuantizeRow(ReadOnlySpan<float> src, Span<BlockQ5_0> dst)
    {
        QuantGuard.Check(dst.Length, src.Length, QuantBlocks.QK);
        fixed (float* x = src)
        fixed (BlockQ5_0* y = dst)
            Row(x, y, dst.Length);
    }

    private static void Row(float* xp, BlockQ5_0* yp, int blocks)
    {
        if (!Vector256.IsHardwareAccelerated)
        {
            QuantizeRowReference(new ReadOnlySpan<float>(xp, blocks * QuantBlocks.QK), new Span<BlockQ5_0>(yp, blocks));
            return;
        }
        LegacyRows.Symmetric<BlockQ5_0, VectorBlock>(xp, yp, blocks);
    }

    private readonly struct VectorBlock : ISymmetricLegacyBlock<BlockQ5_0>
    {
        public static int Levels => 16;

        [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
        public static void Store(BlockQ5_0* y, float d, Vector256<byte> q)
        {
            y->D = QuantMath.ToHalf(d);
            BlockVectors.PackNibbles(q).Store(y->Qs);
            *(uint*)y->Qh = BlockVectors.FifthBits(q);
        }
    }

    /// <summary>
    /// ggml's quantize_row_q4_0_impl with importance: per block, the scale from make_qx_quants (nmax 16) under weights
    /// importance * sqrt(sigma2 + x^2), sigma2 being the row's mean square.
    /// </summary>
    public static void QuantizeRowWeighted(ReadOnlySpan<float> src, Span<BlockQ5_0> dst, ReadOnlySpan<float> importance)
        => LegacyWeighted.Row<BlockQ5_0, WeightedBlock>(src, dst, importance, reference: false);

    private readonly struct WeightedBlock : ILegacyWeightedBlock<BlockQ5_0>
    {
        public static void Block(float* xb, float* weight, BlockQ5_0* y, byte* L, byte* laux, bool reference)
        {
            sbyte* l = (sbyte*)L;
            float d = reference ? QuantMath.MakeQxQuants(QuantBlocks.QK, 16, xb, l, weight) : WeightedSearch.MakeQxQuants(16, xb, l, weight);
            y->D = QuantMath.ToHalf(d);
            LegacyWeighted.PackFiveBit(L, y->Qs, y->Qh);
        }
    }

    /// <summary>The weighted quantizer with ggml's scalar search loops, for tests of the vector search.</summary>
    internal static void QuantizeRowWeightedReference(ReadOnlySpan<float> src, Span<BlockQ5_0> dst, ReadOnlySpan<float> importance)
        => LegacyWeighted.Row<BlockQ5_0, WeightedBlock>(src, dst, importance, reference: true);

    /// <summary>
    /// Quantizes <paramref name="rows"/> rows of <paramref name="rowLength"/> (a multiple of 32) into
    /// <paramref name="dst"/>, with the weighted search when <paramref name="importance"/> (one entry per column) is
    /// given; returns the bytes written. Multi-threaded over rows; the bytes equal ggml_quantize_chunk's.
    /// </summary>
    public static long Quantize(ReadOnlySpan<float> src, Span<byte> dst, int rows, int rowLength, ReadOnlySpan<float> importance = default, int threads = 0) =>
        QuantizeDriver.Run<Quantizer>(src, dst, rows, rowLength, importance, threads, QuantBlocks.QK);

    private readonly struct Quantizer : IRowQuantizer
    {
        public static int BlockBytes => sizeof(BlockQ5_0);
        public static void Row(float* x, byte* y, int n) => Q5_0.Row(x, (BlockQ5_0*)y, n / QuantBlocks.QK);
        public static void RowWeighted(float* x, byte* y, int n, float* w) => LegacyWeighted.Row<BlockQ5_0, WeightedBlock>(x, (BlockQ5_0*)y, n, w);
    }
}
