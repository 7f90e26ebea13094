using System.Runtime.Intrinsics;

namespace EdgeQuant.Core.Kernels;

/// <summary>
/// GELU with GPT-2's tanh approximation ("gelu_new" in HF, GGML_OP_GELU): 0.5x(1 + tanh(√(2/π)(x + 0.044715x³))).
/// TensorPrimitives has Tanh but no GELU, and the fused form below is both cheaper and more accurate.
/// </summary>
public static class GeluTanh
{
    /// <summary>y = gelu_tanh(x). <paramref name="y"/> may be <paramref name="x"/> itself.</summary>
    public static void Apply(ReadOnlySpan<float> x, Span<float> y) => ElementwiseLoop.Unary(x, y, new GeluTanhOperator());
}

/// <summary>
/// Uses the identity 0.5(1 + tanh(u)) = 1 / (1 + e^(-2u)), so gelu = x / (1 + e^(-2u)): no cancellation in
/// 1 + tanh(u) for negative x, where the textbook form loses every significant digit.
/// </summary>
internal readonly struct GeluTanhOperator : IUnaryOperator
{
    // -2 * sqrt(2/pi) and -2 * sqrt(2/pi) * 0.044715, folded so u costs two multiplies and one FMA.
    private const float C1 = -1.5957691216057308f;
    private const float C3 = -0.07135481627159576f;

    public float Invoke(float x) => x / (1f + MathF.Exp(x * (C1 + C3 * x * x)));

    public Vector128<float> Invoke(Vector128<float> x) =>
        x / (Vector128<float>.One + Vector128.Exp(x * Vector128.MultiplyAddEstimate(Vector128.Create(C3), x * x, Vector128.Create(C1))));

    public Vector256<float> Invoke(Vector256<float> x) =>
        x / (Vector256<float>.One + Vector256.Exp(x * Vector256.MultiplyAddEstimate(Vector256.Create(C3), x * x, Vector256.Create(C1))));

    public Vector512<float> Invoke(Vector512<float> x) =>
        x / (Vector512<float>.One + Vector512.Exp(x * Vector512.MultiplyAddEstimate(Vector512.Create(C3), x * x, Vector512.Create(C1))));
}
