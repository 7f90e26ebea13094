using EdgeQuant.Core.Kernels;

namespace EdgeQuant.Models.Engine;

/// <summary>
/// The numeric steps of a forward pass over row-major F32 buffers, each handed to a Core kernel. Kept as the one
/// place the engine names kernels, so a kernel swap (or a scalar check) is a change here only.
/// </summary>
internal static class EngineMath
{
    /// <summary>c[rows, w.Out] = a[rows, w.In] · Wᵀ + bias; with <paramref name="accumulate"/>, c += that (residual add).</summary>
    public static void Linear(ReadOnlySpan<float> a, int rows, LinearWeight w, Span<float> c, int threads, bool accumulate = false)
    {
        var dst = c[..(rows * w.Out)];
        Sgemm.Multiply(a[..(rows * w.In)], rows, w.Weight, dst, accumulate, threads);
        if (w.Bias is not null) VectorOps.AddBiasRows(dst, w.Bias, rows);
    }

    public static void RmsNorm(ReadOnlySpan<float> x, int rows, int d, NormWeight w, float eps, Span<float> dst)
    {
        Core.Kernels.RmsNorm.ApplyRows(x[..(rows * d)], w.Weight, dst[..(rows * d)], rows, eps);
        // RMSNorm has no bias in any supported architecture; honour one if a converter wrote it.
        if (w.Bias is not null) VectorOps.AddBiasRows(dst, w.Bias, rows);
    }

    public static void LayerNorm(ReadOnlySpan<float> x, int rows, int d, NormWeight w, float eps, Span<float> dst) =>
        Core.Kernels.LayerNorm.ApplyRows(x[..(rows * d)], w.Weight, w.Bias ?? new float[d], dst[..(rows * d)], rows, eps);

    /// <summary>gate = silu(gate) * up.</summary>
    public static void SwiGlu(Span<float> gate, ReadOnlySpan<float> up) => Core.Kernels.SwiGlu.Apply(gate, up, gate);

    /// <summary>GELU, tanh approximation (GPT-2's gelu_new), in place.</summary>
    public static void GeluTanh(Span<float> x, GeluMode mode)
    {
        if (mode == GeluMode.Exact)
        {
            Core.Kernels.GeluTanh.Apply(x, x);
            return;
        }
        var table = GgmlGeluTable.Value;
        for (int i = 0; i < x.Length; i++)
        {
            float v = x[i];
            x[i] = v <= -10f ? 0f : v >= 10f ? v : table[BitConverter.HalfToUInt16Bits((Half)v)];
        }
    }

    /// <summary>ggml's ggml_table_gelu_f16: GELU of every F16 value, rounded to F16 (kept here widened to F32).</summary>
    private static readonly Lazy<float[]> GgmlGeluTable = new(() =>
    {
        var t = new float[65536];
        for (int i = 0; i < t.Length; i++)
        {
            float f = (float)BitConverter.UInt16BitsToHalf((ushort)i);
            float g = 0.5f * f * (1f + MathF.Tanh(0.79788456080286535587989211986876f * f * (1f + 0.044715f * f * f)));
            t[i] = (float)(Half)g;
        }
        return t;
    });
}
