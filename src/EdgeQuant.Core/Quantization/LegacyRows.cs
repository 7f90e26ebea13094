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
}
