using System.Numerics.Tensors;
using System.Runtime.Intrinsics;

namespace EdgeQuant.Core.Kernels;

/// <summary>
/// Row-wise softmax, max-subtracted. Not TensorPrimitives.SoftMax: that one does not subtract the maximum, so a
/// logit of 89 already overflows e^x to infinity and the row turns to NaN. TensorPrimitives still does the pieces
/// it is good at (the NaN-propagating Max, the final scale).
/// </summary>
public static class Softmax
{
    /// <summary>y = softmax(x * scale) for one row; <paramref name="scale"/> must be positive (attention's 1/√d).</summary>
    public static void Apply(ReadOnlySpan<float> x, Span<float> y, float scale = 1f)
    {
        if (!(scale > 0) || float.IsInfinity(scale)) throw new ArgumentOutOfRangeException(nameof(scale), scale, "must be positive and finite");
        int n = x.Length;
        if (n == 0) return;
        ElementwiseLoop.CheckDestination(x, y, nameof(y));
        // max(x * scale) = scale * max(x) for scale > 0, so the shift needs no extra pass.
        float max = TensorPrimitives.Max(x);
        float sum = ElementwiseLoop.UnaryWithSum(x, y[..n], new ExpShiftOperator(max, scale));
        TensorPrimitives.Multiply(y[..n], 1f / sum, y[..n]);
    }

    /// <summary>
    /// Causal attention weights in place over a [rows x columns] score matrix: query row r sits at absolute position
    /// <paramref name="firstPosition"/> + r and sees key columns 0 .. firstPosition + r; later columns become 0.
    /// </summary>
    public static void ApplyCausal(Span<float> scores, int rows, int columns, int firstPosition, float scale = 1f)
    {
        KernelGuard.Matrix(scores.Length, rows, columns, nameof(scores));
        if (firstPosition < 0) throw new ArgumentOutOfRangeException(nameof(firstPosition), firstPosition, "must not be negative");
        for (int r = 0; r < rows; r++)
        {
            Span<float> row = scores.Slice(r * columns, columns);
            int visible = (int)Math.Min(columns, (long)firstPosition + r + 1);
            Apply(row[..visible], row[..visible], scale);
            row[visible..].Clear();
        }
    }
}

/// <summary>e^((x - max) * scale). With max = +inf or NaN every lane is NaN, as the mathematical softmax is.</summary>
internal readonly struct ExpShiftOperator(float max, float scale) : IUnaryOperator
{
    public float Invoke(float x) => MathF.Exp((x - max) * scale);
    public Vector128<float> Invoke(Vector128<float> x) => Vector128.Exp((x - Vector128.Create(max)) * scale);
    public Vector256<float> Invoke(Vector256<float> x) => Vector256.Exp((x - Vector256.Create(max)) * scale);
    public Vector512<float> Invoke(Vector512<float> x) => Vector512.Exp((x - Vector512.Create(max)) * scale);
}
