using System.Runtime.Intrinsics;

namespace EdgeQuant.Core.Kernels;

// Operator structs in the System.Numerics.Tensors style: one struct per operation, one Invoke per vector width plus
// a scalar one. The loop drivers in ElementwiseLoop are generic over these structs, so the JIT specializes and
// inlines every operator into the driver's loop; remainders, unrolling and the width choice live once in the driver.
// Instance (not static) members, because fused kernels carry per-row state (a norm's scale, a row's maximum).

/// <summary>y = f(x), element by element.</summary>
internal interface IUnaryOperator
{
    float Invoke(float x);
    Vector128<float> Invoke(Vector128<float> x);
    Vector256<float> Invoke(Vector256<float> x);
    Vector512<float> Invoke(Vector512<float> x);
}

/// <summary>z = f(x, y), element by element.</summary>
internal interface IBinaryOperator
{
    float Invoke(float x, float y);
    Vector128<float> Invoke(Vector128<float> x, Vector128<float> y);
    Vector256<float> Invoke(Vector256<float> x, Vector256<float> y);
    Vector512<float> Invoke(Vector512<float> x, Vector512<float> y);
}

/// <summary>d = f(x, y, z), element by element.</summary>
internal interface ITernaryOperator
{
    float Invoke(float x, float y, float z);
    Vector128<float> Invoke(Vector128<float> x, Vector128<float> y, Vector128<float> z);
    Vector256<float> Invoke(Vector256<float> x, Vector256<float> y, Vector256<float> z);
    Vector512<float> Invoke(Vector512<float> x, Vector512<float> y, Vector512<float> z);
}
