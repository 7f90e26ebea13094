using System.Numerics.Tensors;
using System.Runtime.Intrinsics;

namespace EdgeQuant.Core.Kernels;

/// <summary>
/// LayerNorm with weight and bias fused: y = (x - mean) / sqrt(var + eps) * w + b, with the biased variance as
/// PyTorch and ggml use. The corrected two-pass algorithm (Björck): centre on the float mean, then take the
/// centred values' own (tiny) mean c as a correction, var = mean(d²) − c². The one-pass E[x²]−E[x]² form cancels
/// catastrophically when |mean| is large next to the spread, and even the plain two-pass form leaves the float
/// mean's rounding (~n·u·|mean|) in every output, which is visible for rows like 5 ± 1.
/// </summary>
public static class LayerNorm
{
    /// <summary>One row. <paramref name="y"/> may be <paramref name="x"/> itself.</summary>
    public static void Apply(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias, Span<float> y, float epsilon)
    {
        int n = x.Length;
        if (weight.Length != n) throw new ArgumentException($"weight has {weight.Length} elements, the row {n}", nameof(weight));
        if (bias.Length != n) throw new ArgumentException($"bias has {bias.Length} elements, the row {n}", nameof(bias));
        if (n == 0) return;
        ElementwiseLoop.CheckDestination(x, y, nameof(y));
        float mean = TensorPrimitives.Sum(x) / n;
        Span<float> centred = y[..n];
        ElementwiseLoop.Unary(x, centred, new SubtractOperator(mean));
        float correction = TensorPrimitives.Sum(centred) / n;
        float variance = MathF.Max(0f, TensorPrimitives.SumOfSquares(centred) / n - correction * correction);
        float rstd = 1f / MathF.Sqrt(variance + epsilon);
        ElementwiseLoop.Ternary(centred, weight, bias, centred, new ShiftScaleWeightBiasOperator(correction, rstd));
    }

    /// <summary>Every row of a [rows x weight.Length] matrix.</summary>
    public static void ApplyRows(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias, Span<float> y, int rows, float epsilon)
    {
        int n = weight.Length;
        KernelGuard.Rows(x.Length, y.Length, rows, n);
        for (int r = 0; r < rows; r++) Apply(x.Slice(r * n, n), weight, bias, y.Slice(r * n, n), epsilon);
    }
}

internal readonly struct SubtractOperator(float value) : IUnaryOperator
{
    public float Invoke(float x) => x - value;
    public Vector128<float> Invoke(Vector128<float> x) => x - Vector128.Create(value);
    public Vector256<float> Invoke(Vector256<float> x) => x - Vector256.Create(value);
    public Vector512<float> Invoke(Vector512<float> x) => x - Vector512.Create(value);
}

internal readonly struct ShiftScaleWeightBiasOperator(float shift, float scale) : ITernaryOperator
{
    public float Invoke(float x, float w, float b) => (x - shift) * scale * w + b;
    public Vector128<float> Invoke(Vector128<float> x, Vector128<float> w, Vector128<float> b) => (x - Vector128.Create(shift)) * scale * w + b;
    public Vector256<float> Invoke(Vector256<float> x, Vector256<float> w, Vector256<float> b) => (x - Vector256.Create(shift)) * scale * w + b;
    public Vector512<float> Invoke(Vector512<float> x, Vector512<float> w, Vector512<float> b) => (x - Vector512.Create(shift)) * scale * w + b;
}
