using System.Runtime.Intrinsics;

namespace EdgeQuant.Core.Quantization;

/// <summary>
/// Q4_0 and Q5_0's per-type part of the vector row: the number of levels and how a block's scale and 32 levels are
/// stored. Static abstract so the shared loop is specialized (constants folded) per type by the JIT.
/// </summary>
internal unsafe interface ISymmetricLegacyBlock<TBlock> where TBlock : unmanaged
{
    /// <summary>8 for Q4_0, 16 for Q5_0: d = signed absmax / -Levels, q = min(2 Levels - 1, (int8)(x/d + Levels + 0.5)).</summary>
    static abstract int Levels { get; }

    static abstract void Store(TBlock* y, float d, Vector256<byte> q);
}

internal static unsafe class LegacyRows
{
    /// <summary>ggml's quantize_row_q4_0_ref / q5_0_ref, a block per four 8-wide vectors; needs Vector256 acceleration.</summary>
    public static void Symmetric<TBlock, T>(float* xp, TBlock* yp, int blocks)
        where TBlock : unmanaged where T : ISymmetricLegacyBlock<TBlock>
    {
        var half = Vector256.Create(T.Levels + 0.5f);
        var top = Vector256.Create((sbyte)(2 * T.Levels - 1));
        for (int i = 0; i < blocks; i++)
        {
            float* x = xp + i * QuantBlocks.QK;
            var a = Vector256.Load(x);
            var b = Vector256.Load(x + 8);
            var c = Vector256.Load(x + 16);
            var e = Vector256.Load(x + 24);
            float max = BlockVectors.SignedAbsMax(x, a, b, c, e);
            float d = max / -T.Levels;
            float id = d != 0 ? 1.0f / d : 0.0f;
            var vid = Vector256.Create(id);
            // ggml's MIN(top, (int8_t)v), on the low bytes of C's conversions.
            var q = Vector256.Min(BlockVectors.TruncateToBytes(a * vid + half, b * vid + half, c * vid + half, e * vid + half).AsSByte(), top).AsByte();
            T.Store(yp + i, d, q);
        }
    }

    /// <summary>ggml's quantize_row_q4_1_ref / q5_1_ref, a block per four 8-wide vectors; needs Vector256 acceleration.</summary>
    public static void Asymmetric<TBlock, T>(float* xp, TBlock* yp, int blocks)
        where TBlock : unmanaged where T : IAsymmetricLegacyBlock<TBlock>
    {
        var half = Vector256.Create(0.5f);
        var top = Vector256.Create((sbyte)((1 << T.Bits) - 1));
        for (int i = 0; i < blocks; i++)
        {
            float* x = xp + i * QuantBlocks.QK;
            var a = Vector256.Load(x);
            var b = Vector256.Load(x + 8);
            var c = Vector256.Load(x + 16);
            var e = Vector256.Load(x + 24);
            var (min, max) = BlockVectors.MinMax(x, a, b, c, e);
            float d = (max - min) / ((1 << T.Bits) - 1);
            float id = d != 0 ? 1.0f / d : 0.0f;
            var vid = Vector256.Create(id);
            var vmin = Vector256.Create(min);
            var q = BlockVectors.TruncateToBytes((a - vmin) * vid + half, (b - vmin) * vid + half, (c - vmin) * vid + half, (e - vmin) * vid + half);
            // q4_1's MIN(15, (int8_t)v), on the low bytes of C's conversions.
            if (T.Clamp) q = Vector256.Min(q.AsSByte(), top).AsByte();
            T.Store(yp + i, d, min, q);
        }
    }
}


/// <summary>Q4_1 and Q5_1's per-type part of the vector row (see <see cref="LegacyRows.Asymmetric"/>).</summary>
internal unsafe interface IAsymmetricLegacyBlock<TBlock> where TBlock : unmanaged
{
    /// <summary>4 or 5: d = (max - min) / ((1 &lt;&lt; Bits) - 1).</summary>
    static abstract int Bits { get; }

    /// <summary>Whether levels are capped with ggml's MIN((1 &lt;&lt; Bits) - 1, (int8)v): q4_1 does, q5_1 does not.</summary>
    static abstract bool Clamp { get; }

    static abstract void Store(TBlock* y, float d, float min, Vector256<byte> q);
}
