using System.Runtime.Intrinsics;

namespace EdgeQuant.Core.Kernels;

/// <summary>The Llama FFN gate: silu(gate) * up in one pass (no TensorPrimitives equivalent).</summary>
public static class SwiGlu
{
    /// <summary>y = silu(gate) * up. <paramref name="y"/> may be <paramref name="gate"/> or <paramref name="up"/>.</summary>
    public static void Apply(ReadOnlySpan<float> gate, ReadOnlySpan<float> up, Span<float> y) =>
        ElementwiseLoop.Binary(gate, up, y, new SwiGluOperator());
}

internal readonly struct SwiGluOperator : IBinaryOperator
{
    public float Invoke(float g, float u) => g / (1f + MathF.Exp(-g)) * u;
    public Vector128<float> Invoke(Vector128<float> g, Vector128<float> u) => g / (Vector128<float>.One + Vector128.Exp(-g)) * u;
    public Vector256<float> Invoke(Vector256<float> g, Vector256<float> u) => g / (Vector256<float>.One + Vector256.Exp(-g)) * u;
    public Vector512<float> Invoke(Vector512<float> g, Vector512<float> u) => g / (Vector512<float>.One + Vector512.Exp(-g)) * u;
}
