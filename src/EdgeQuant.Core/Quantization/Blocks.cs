using System.Runtime.InteropServices;

namespace EdgeQuant.Core.Quantization;

// ggml's quantization blocks (ggml-common.h), field for field. Each struct is exactly the on-disk/in-memory block,
// so a span of bytes is reinterpreted as a span of blocks with MemoryMarshal.Cast and nothing is copied.

/// <summary>Sizes shared by the block types.</summary>
public static class QuantBlocks
{
    /// <summary>Elements per block of the legacy quants (QK4_0, QK4_1, QK5_0, QK5_1, QK8_0).</summary>
    public const int QK = 32;

    /// <summary>Elements per K-quant super-block (QK_K).</summary>
    public const int QK_K = 256;

    /// <summary>Bytes of the packed 6-bit scales and mins of Q4_K/Q5_K and of the 6-bit scales of Q3_K (K_SCALE_SIZE).</summary>
    public const int KScaleSize = 12;
}

/// <summary>Q4_0: 32 weights as 4-bit unsigned values offset by 8, times one f16 scale. 18 bytes, 4.5 bits per weight.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public unsafe struct BlockQ4_0
{
    public Half D;
    /// <summary>Element j in the low nibble of byte j, element j+16 in its high nibble.</summary>
    public fixed byte Qs[16];
}

/// <summary>Q4_1: 32 weights as 4-bit values times an f16 scale plus an f16 minimum. 20 bytes, 5 bits per weight.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public unsafe struct BlockQ4_1
{
    public Half D;
    public Half M;
    public fixed byte Qs[16];
}

/// <summary>Q5_0: 32 weights as 5-bit values offset by 16 (4 low bits in nibbles, the fifth in a 32-bit mask), times an f16 scale. 22 bytes, 5.5 bits per weight.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public unsafe struct BlockQ5_0
{
    public Half D;
    /// <summary>Bit j (little-endian uint32) is the fifth bit of element j.</summary>
    public fixed byte Qh[4];
    public fixed byte Qs[16];
}

/// <summary>Q5_1: 32 weights as 5-bit values times an f16 scale plus an f16 minimum. 24 bytes, 6 bits per weight.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public unsafe struct BlockQ5_1
{
    public Half D;
    public Half M;
    public fixed byte Qh[4];
    public fixed byte Qs[16];
}

/// <summary>Q8_0: 32 weights as signed bytes times an f16 scale. 34 bytes, 8.5 bits per weight.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public unsafe struct BlockQ8_0
{
    public Half D;
    public fixed sbyte Qs[32];
}

/// <summary>
/// Q8_1: 32 signed bytes times an f16 scale, plus the f16 of scale times their sum (used by ggml's dot products as the
/// activation side of Q4_1/Q5_1, not stored in model files). 36 bytes, 9 bits per weight.
/// </summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public unsafe struct BlockQ8_1
{
    public Half D;
    public Half S;
    public fixed sbyte Qs[32];
}

/// <summary>
/// Q2_K: 256 weights in 16 groups of 16; 2-bit values; each group has a 4-bit scale and 4-bit min, both scaled by
/// the f16 super-block scale and min. 84 bytes, 2.625 bits per weight.
/// </summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public unsafe struct BlockQ2_K
{
    /// <summary>Group g: scale in the low nibble, min in the high nibble.</summary>
    public fixed byte Scales[16];
    public fixed byte Qs[64];
    public Half D;
    public Half DMin;
}

/// <summary>
/// Q3_K: 256 weights in 16 groups of 16; 3-bit values (2 low bits in qs, the high bit in hmask, stored inverted:
/// a clear bit subtracts 4); 6-bit signed group scales (offset 32) times an f16 scale. 110 bytes, 3.4375 bits per weight.
/// </summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public unsafe struct BlockQ3_K
{
    public fixed byte HMask[32];
    public fixed byte Qs[64];
    public fixed byte Scales[12];
    public Half D;
}

/// <summary>
/// Q4_K: 256 weights in 8 groups of 32; 4-bit values; 6-bit group scales and mins packed in 12 bytes, times the
/// f16 super-block scale and min. 144 bytes, 4.5 bits per weight.
/// </summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public unsafe struct BlockQ4_K
{
    public Half D;
    public Half DMin;
    public fixed byte Scales[12];
    public fixed byte Qs[128];
}

/// <summary>Q5_K: as Q4_K with a fifth bit per weight in qh. 176 bytes, 5.5 bits per weight.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public unsafe struct BlockQ5_K
{
    public Half D;
    public Half DMin;
    public fixed byte Scales[12];
    public fixed byte Qh[32];
    public fixed byte Qs[128];
}

/// <summary>
/// Q6_K: 256 weights in 16 groups of 16; 6-bit values offset by 32 (4 low bits in ql, 2 high bits in qh); signed
/// 8-bit group scales times an f16 scale. 210 bytes, 6.5625 bits per weight.
/// </summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public unsafe struct BlockQ6_K
{
    public fixed byte Ql[128];
    public fixed byte Qh[64];
    public fixed sbyte Scales[16];
    public Half D;
}

/// <summary>
/// Q8_K: 256 signed bytes times an f32 scale, plus sums of each group of 16 (used by ggml's dot products, not by
/// dequantization). 292 bytes, 9.125 bits per weight.
/// </summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public unsafe struct BlockQ8_K
{
    public float D;
    public fixed sbyte Qs[256];
    public fixed short BSums[16];
}
