using System.Numerics.Tensors;
using System.Runtime.Intrinsics;

namespace EdgeQuant.Core.Kernels;

/// <summary>
/// RMSNorm with its weight fused in: y = x / sqrt(mean(x²) + eps) * w. The sum of squares is TensorPrimitives'
/// (multi-accumulator SIMD); the scale-and-weight pass is ours because TensorPrimitives has no fused form.
/// </summary>
public static class RmsNorm
{
    /// <summary>One row. <paramref name="y"/> may be <paramref name="x"/> itself.</summary>
    public static void Apply(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, Span<float> y, float epsilon)
    {
        if (x.Length == 0) { CheckWeight(weight, 0); return; }
        CheckWeight(weight, x.Length);
        // Same order of operations as ggml (mean in wide precision, then 1/sqrtf, then x*scale, then *w), so the
        // engine's rounding stays close to llama.cpp's.
        float mean = (float)((double)TensorPrimitives.SumOfSquares(x) / x.Length);
        float scale = 1f / MathF.Sqrt(mean + epsilon);
        ElementwiseLoop.Binary(x, weight, y, new ScaleWeightOperator(scale));
    }

    /// <summary>Every row of a [rows x weight.Length] matrix.</summary>
    public static void ApplyRows(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, Span<float> y, int rows, float epsilon)
    {
        int n = weight.Length;
        KernelGuard.Rows(x.Length, y.Length, rows, n);
        for (int r = 0; r < rows; r++) Apply(x.Slice(r * n, n), weight, y.Slice(r * n, n), epsilon);
    }

    private static void CheckWeight(ReadOnlySpan<float> weight, int n)
    {
        if (weight.Length != n) throw new ArgumentException($"weight has {weight.Length} elements, the row {n}", nameof(weight));
    }
}

internal readonly struct ScaleWeightOperator(float scale) : IBinaryOperator
{
    public float Invoke(float x, float w) => x * scale * w;
    public Vector128<float> Invoke(Vector128<float> x, Vector128<float> w) => x * scale * w;
    public Vector256<float> Invoke(Vector256<float> x, Vector256<float> w) => x * scale * w;
    public Vector512<float> Invoke(Vector512<float> x, Vector512<float> w) => x * scale * w;
}
