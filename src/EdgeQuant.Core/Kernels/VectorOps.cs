using System.Numerics.Tensors;

namespace EdgeQuant.Core.Kernels;

/// <summary>
/// In-place element-wise helpers the engine needs (residual add, bias add, gating). Thin wrappers: TensorPrimitives
/// already vectorizes these well for every width, so there is nothing to gain from our own loops.
/// </summary>
public static class VectorOps
{
    /// <summary>x += y.</summary>
    public static void AddInPlace(Span<float> x, ReadOnlySpan<float> y) => TensorPrimitives.Add(x, y, x);

    /// <summary>x *= y.</summary>
    public static void MultiplyInPlace(Span<float> x, ReadOnlySpan<float> y) => TensorPrimitives.Multiply(x, y, x);

    /// <summary>x *= s.</summary>
    public static void ScaleInPlace(Span<float> x, float s) => TensorPrimitives.Multiply(x, s, x);

    /// <summary>Adds <paramref name="bias"/> (length n) to every row of a [rows x n] matrix.</summary>
    public static void AddBiasRows(Span<float> x, ReadOnlySpan<float> bias, int rows)
    {
        int n = bias.Length;
        if (rows < 0 || (long)rows * n > x.Length)
            throw new ArgumentException($"{rows} rows of {n} exceed the {x.Length} elements given", nameof(rows));
        for (int r = 0; r < rows; r++)
        {
            Span<float> row = x.Slice(r * n, n);
            TensorPrimitives.Add(row, bias, row);
        }
    }

    /// <summary>Dot product (TensorPrimitives.Dot: multi-accumulator SIMD).</summary>
    public static float Dot(ReadOnlySpan<float> x, ReadOnlySpan<float> y) => TensorPrimitives.Dot(x, y);
}
