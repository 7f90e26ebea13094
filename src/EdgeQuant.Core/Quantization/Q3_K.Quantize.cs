namespace EdgeQuant.Core.Quantization;

// Placeholder until the Q3_K quantizer lands: Quantize.IsSupported reports false, so nothing calls this.
public static partial class Q3_K
{
    /// <summary>Whether this type's quantizer is implemented.</summary>
    public static bool Implemented => false;

    /// <summary>Not implemented yet.</summary>
    public static long Quantize(ReadOnlySpan<float> src, Span<byte> dst, int rows, int rowLength, ReadOnlySpan<float> importance = default, int threads = 0) =>
        throw new NotSupportedException("quantizing to Q3_K is not implemented");
}
