using EdgeQuant.Core.Tensors;

namespace EdgeQuant.Core.Quantization;

/// <summary>Turns stored elements of any <see cref="TensorType"/> into F32.</summary>
public static class Dequantize
{
    /// <summary>
    /// Converts <paramref name="src"/> (whole blocks of <paramref name="type"/>) to F32 in <paramref name="dst"/>,
    /// whose length is the element count.
    /// </summary>
    public static void Row(TensorType type, ReadOnlySpan<byte> src, Span<float> dst)
    {
        switch (type)
        {
            case TensorType.F32:
                System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(src)[..dst.Length].CopyTo(dst);
                return;
            case TensorType.F16:
                HalfConversions.F16ToF32(src[..(dst.Length * 2)], dst);
                return;
            case TensorType.BF16:
                HalfConversions.BF16ToF32(src[..(dst.Length * 2)], dst);
                return;
            default:
                // TODO(gguf helper): Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K..Q6_K.
                throw new NotSupportedException($"dequantizing {type} is not implemented");
        }
    }
}
