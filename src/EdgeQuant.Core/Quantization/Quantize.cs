using EdgeQuant.Core.Tensors;

namespace EdgeQuant.Core.Quantization;

/// <summary>Turns F32 rows into blocks of a ggml <see cref="TensorType"/>, byte for byte as ggml_quantize_chunk does.</summary>
public static class Quantize
{
    /// <summary>The types <see cref="Rows"/> can produce.</summary>
    public static bool IsSupported(TensorType type) =>
        type switch
        {
            TensorType.Q8_0 or TensorType.Q4_0 or TensorType.Q4_1 or TensorType.Q5_0 or TensorType.Q5_1 or TensorType.Q6_K => true,
            TensorType.Q2_K => Q2_K.Implemented,
            TensorType.Q3_K => Q3_K.Implemented,
            TensorType.Q4_K => Q4_K.Implemented,
            TensorType.Q5_K => Q5_K.Implemented,
            _ => false,
        };

    /// <summary>
    /// Quantizes <paramref name="rows"/> rows of <paramref name="rowLength"/> elements (a multiple of the type's block
    /// size) into <paramref name="dst"/>; <paramref name="importance"/> is empty or one value per column (an imatrix
    /// entry). Returns the bytes written. Multi-threaded over rows (<paramref name="threads"/> 0: all cores).
    /// </summary>
    public static long Rows(TensorType type, ReadOnlySpan<float> src, Span<byte> dst, int rows, int rowLength, ReadOnlySpan<float> importance = default, int threads = 0) =>
        type switch
        {
            TensorType.Q8_0 => Q8_0.Quantize(src, dst, rows, rowLength, importance, threads),
            TensorType.Q4_0 => Q4_0.Quantize(src, dst, rows, rowLength, importance, threads),
            TensorType.Q4_1 => Q4_1.Quantize(src, dst, rows, rowLength, importance, threads),
            TensorType.Q5_0 => Q5_0.Quantize(src, dst, rows, rowLength, importance, threads),
            TensorType.Q5_1 => Q5_1.Quantize(src, dst, rows, rowLength, importance, threads),
            TensorType.Q6_K => Q6_K.Quantize(src, dst, rows, rowLength, importance, threads),
            TensorType.Q2_K => Q2_K.Quantize(src, dst, rows, rowLength, importance, threads),
            TensorType.Q3_K => Q3_K.Quantize(src, dst, rows, rowLength, importance, threads),
            TensorType.Q4_K => Q4_K.Quantize(src, dst, rows, rowLength, importance, threads),
            TensorType.Q5_K => Q5_K.Quantize(src, dst, rows, rowLength, importance, threads),
            _ => throw new NotSupportedException($"quantizing to {TensorTypes.Get(type).Name} is not implemented"),
        };
}
