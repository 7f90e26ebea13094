using System.Numerics.Tensors;
using System.Runtime.InteropServices;

namespace EdgeQuant.Core.Tensors;

/// <summary>F16 and BF16 to and from F32. F16 goes through TensorPrimitives; BF16 is a bit shift (TensorPrimitives has no BF16).</summary>
public static class HalfConversions
{
    public static void F16ToF32(ReadOnlySpan<byte> src, Span<float> dst) =>
        TensorPrimitives.ConvertToSingle(MemoryMarshal.Cast<byte, Half>(src), dst);

    public static void F32ToF16(ReadOnlySpan<float> src, Span<byte> dst) =>
        TensorPrimitives.ConvertToHalf(src, MemoryMarshal.Cast<byte, Half>(dst));

    public static void BF16ToF32(ReadOnlySpan<byte> src, Span<float> dst)
    {
        var s = MemoryMarshal.Cast<byte, ushort>(src);
        var d = MemoryMarshal.Cast<float, uint>(dst);
        for (int i = 0; i < s.Length; i++) d[i] = (uint)s[i] << 16;
    }

    /// <summary>F32 to BF16 with round-to-nearest-even, NaN kept quiet: the same rule as ggml's <c>ggml_compute_fp32_to_bf16</c>.</summary>
    public static ushort F32ToBF16(float value)
    {
        uint u = BitConverter.SingleToUInt32Bits(value);
        if ((u & 0x7fffffff) > 0x7f800000) return (ushort)((u >> 16) | 64);
        return (ushort)((u + (0x7fff + ((u >> 16) & 1))) >> 16);
    }

    public static void F32ToBF16(ReadOnlySpan<float> src, Span<byte> dst)
    {
        var d = MemoryMarshal.Cast<byte, ushort>(dst);
        for (int i = 0; i < src.Length; i++) d[i] = F32ToBF16(src[i]);
    }
}
