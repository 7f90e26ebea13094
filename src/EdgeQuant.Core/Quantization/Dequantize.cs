using System.Runtime.InteropServices;
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
                MemoryMarshal.Cast<byte, float>(src)[..dst.Length].CopyTo(dst);
                return;
            case TensorType.F16:
                HalfConversions.F16ToF32(src[..(dst.Length * 2)], dst);
                return;
            case TensorType.BF16:
                HalfConversions.BF16ToF32(src[..(dst.Length * 2)], dst);
                return;
            case TensorType.F64: Convert(MemoryMarshal.Cast<byte, double>(src), dst); return;
            case TensorType.I8: Convert(MemoryMarshal.Cast<byte, sbyte>(src), dst); return;
            case TensorType.U8 or TensorType.Bool: Convert(src, dst); return;
            case TensorType.I16: Convert(MemoryMarshal.Cast<byte, short>(src), dst); return;
            case TensorType.I32: Convert(MemoryMarshal.Cast<byte, int>(src), dst); return;
            case TensorType.I64: Convert(MemoryMarshal.Cast<byte, long>(src), dst); return;
            case TensorType.Q8_1: Q8_1.DequantizeRow(Blocks<BlockQ8_1>(type, src, dst.Length), dst); return;
            case TensorType.Q4_0: Q4_0.DequantizeRow(Blocks<BlockQ4_0>(type, src, dst.Length), dst); return;
            case TensorType.Q4_1: Q4_1.DequantizeRow(Blocks<BlockQ4_1>(type, src, dst.Length), dst); return;
            case TensorType.Q5_0: Q5_0.DequantizeRow(Blocks<BlockQ5_0>(type, src, dst.Length), dst); return;
            case TensorType.Q5_1: Q5_1.DequantizeRow(Blocks<BlockQ5_1>(type, src, dst.Length), dst); return;
            case TensorType.Q8_0: Q8_0.DequantizeRow(Blocks<BlockQ8_0>(type, src, dst.Length), dst); return;
            case TensorType.Q2_K: Q2_K.DequantizeRow(Blocks<BlockQ2_K>(type, src, dst.Length), dst); return;
            case TensorType.Q3_K: Q3_K.DequantizeRow(Blocks<BlockQ3_K>(type, src, dst.Length), dst); return;
            case TensorType.Q4_K: Q4_K.DequantizeRow(Blocks<BlockQ4_K>(type, src, dst.Length), dst); return;
            case TensorType.Q5_K: Q5_K.DequantizeRow(Blocks<BlockQ5_K>(type, src, dst.Length), dst); return;
            case TensorType.Q6_K: Q6_K.DequantizeRow(Blocks<BlockQ6_K>(type, src, dst.Length), dst); return;
            case TensorType.Q8_K: Q8_K.DequantizeRow(Blocks<BlockQ8_K>(type, src, dst.Length), dst); return;
            default:
                throw new NotSupportedException($"dequantizing {TensorTypes.Get(type).Name} is not implemented");
        }
    }

    /// <summary>Integer and F64 tensors (rare in models: position ids, masks) widened or narrowed to F32 one by one.</summary>
    private static void Convert<T>(ReadOnlySpan<T> src, Span<float> dst) where T : unmanaged, System.Numerics.INumberBase<T>
    {
        if (src.Length < dst.Length) throw new ArgumentException($"{dst.Length} elements need {dst.Length} values, got {src.Length}");
        for (int i = 0; i < dst.Length; i++) dst[i] = float.CreateTruncating(src[i]);
    }

    private static unsafe ReadOnlySpan<T> Blocks<T>(TensorType type, ReadOnlySpan<byte> src, int elements) where T : unmanaged
    {
        var info = TensorTypes.Get(type);
        // The struct and the type table must agree; a mismatch is a bug here, not bad input.
        if (sizeof(T) != info.BlockBytes) throw new InvalidOperationException($"{typeof(T).Name} is {sizeof(T)} bytes, the {info.Name} table entry says {info.BlockBytes}");
        return QuantGuard.Blocks<T>(src, elements, info.BlockSize, info.BlockBytes);
    }
}
