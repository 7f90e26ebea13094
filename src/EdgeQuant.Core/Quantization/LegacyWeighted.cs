namespace EdgeQuant.Core.Quantization;

/// <summary>
/// One legacy type's per-block step of ggml's quantize_row_qX_Y_impl: the scale search on importance weights and
/// the packing of the block. A static abstract member so the shared row loop is specialized per type by the JIT.
/// </summary>
internal unsafe interface ILegacyWeightedBlock<TBlock> where TBlock : unmanaged
{
    /// <param name="L">32 bytes of scratch for the levels.</param>
    /// <param name="laux">32 more bytes of scratch, used by the min/scale searches.</param>
    /// <param name="reference">ggml's scalar search loops instead of the vector search.</param>
    static abstract void Block(float* xb, float* weight, TBlock* y, byte* L, byte* laux, bool reference);
}

/// <summary>The row loop and argument checks that Q4_0, Q4_1, Q5_0 and Q5_1's weighted quantizers share.</summary>
internal static unsafe class LegacyWeighted
{
    public static void Row<TBlock, T>(ReadOnlySpan<float> src, Span<TBlock> dst, ReadOnlySpan<float> importance, bool reference)
        where TBlock : unmanaged where T : ILegacyWeightedBlock<TBlock>
    {
        QuantGuard.Check(dst.Length, src.Length, QuantBlocks.QK);
        if (importance.Length != src.Length) throw new ArgumentException($"the importance vector has {importance.Length} entries for a row of {src.Length}", nameof(importance));
        fixed (float* x = src)
        fixed (TBlock* y = dst)
        fixed (float* w = importance)
            Row<TBlock, T>(x, y, src.Length, w, reference);
    }

    // ggml's order: sigma2 is the whole row's mean square, then each block's weights importance * sqrt(sigma2 + x^2).
    public static void Row<TBlock, T>(float* x, TBlock* y, int n, float* importance, bool reference = false)
        where TBlock : unmanaged where T : ILegacyWeightedBlock<TBlock>
    {
        float* weight = stackalloc float[QuantBlocks.QK];
        byte* L = stackalloc byte[QuantBlocks.QK];
        byte* laux = stackalloc byte[QuantBlocks.QK];
        float sigma2 = QuantMath.RowSigma2(x, n);
        for (int ib = 0; ib < n / QuantBlocks.QK; ib++)
        {
            float* xb = x + ib * QuantBlocks.QK;
            QuantMath.BlockWeights(xb, importance + ib * QuantBlocks.QK, sigma2, weight, QuantBlocks.QK);
            T.Block(xb, weight, y + ib, L, laux, reference);
        }
    }

    /// <summary>ggml's Q5 packing: low nibbles of element j and j + 16 in qs[j], fifth bits in qh (bit j of element j).</summary>
    public static void PackFiveBit(byte* L, byte* qs, byte* qhp)
    {
        uint qh = 0;
        for (int j = 0; j < 16; j++)
        {
            int xi0 = L[j], xi1 = L[j + 16];
            qs[j] = (byte)((xi0 & 0x0F) | (xi1 & 0x0F) << 4);
            qh |= (uint)((xi0 & 0x10) >> 4) << j;
            qh |= (uint)((xi1 & 0x10) >> 4) << (j + 16);
        }
        *(uint*)qhp = qh;
    }
}
