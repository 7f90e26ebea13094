using System.Runtime.Intrinsics;

namespace EdgeQuant.Core.Kernels;

/// <summary>SiLU (swish): x * sigmoid(x). Written here because TensorPrimitives has Sigmoid but no fused SiLU.</summary>
public static class Silu
{
    /// <summary>y = x / (1 + e^-x). <paramref name="y"/> may be <paramref name="x"/> itself.</summary>
    public static void Apply(ReadOnlySpan<float> x, Span<float> y) => ElementwiseLoop.Unary(x, y, new SiluOperator());
}

/// <summary>
/// x / (1 + e^-x) rather than x * sigmoid(x): one division, and for x → -inf e^-x overflows to +inf giving -0
/// instead of the -inf * 0 = NaN the product form would produce.
/// </summary>
internal readonly struct SiluOperator : IUnaryOperator
{
    public float Invoke(float x) => x / (1f + MathF.Exp(-x));
    public Vector128<float> Invoke(Vector128<float> x) => x / (Vector128<float>.One + Vector128.Exp(-x));
    public Vector256<float> Invoke(Vector256<float> x) => x / (Vector256<float>.One + Vector256.Exp(-x));
    public Vector512<float> Invoke(Vector512<float> x) => x / (Vector512<float>.One + Vector512.Exp(-x));
}
