using EdgeQuant.Core.Tensors;

namespace EdgeQuant.Core.Quantization;

/// <summary>
/// What ggml's CPU backend does to the activations before a matrix product with a quantized or 16-bit weight: it
/// converts each input row to the weight type's <c>vec_dot_type</c> (type_traits_cpu in ggml-cpu.c) and multiplies in
/// that form. Rounding a row to that type and back to F32 reproduces the values the dot product sees, so an F32 engine
/// that applies it before multiplying dequantized weights gets llama.cpp's accuracy figures (at Q8_0 this rounding is
/// half of llama.cpp's KLD). The quantizers follow ggml's reference rows (quantize_row_q8_0_ref, _q8_1_ref, _q8_K_ref);
/// the x86 Q8_0 path differs from the reference only on exact .5 ties.
/// </summary>
public static class GgmlActivationRounding
{
    /// <summary>
    /// The type ggml-cpu converts activations to for a weight of type <paramref name="weight"/>, or null when it
    /// multiplies them in F32 (F32 weights, and types ggml-cpu has no quantized dot product for here).
    /// </summary>
    public static TensorType? VecDotType(TensorType weight) => weight switch
    {
        TensorType.F16 => TensorType.F16,
        TensorType.BF16 => TensorType.BF16,
        TensorType.Q4_0 or TensorType.Q5_0 or TensorType.Q8_0 => TensorType.Q8_0,
        TensorType.Q4_1 or TensorType.Q5_1 => TensorType.Q8_1,
        TensorType.Q2_K or TensorType.Q3_K or TensorType.Q4_K or TensorType.Q5_K or TensorType.Q6_K => TensorType.Q8_K,
        _ => null,
    };

    /// <summary>Elements per block of a vec_dot type (a row's length must be a multiple of it).</summary>
    public static int BlockSize(TensorType vecDotType) => vecDotType switch
    {
        TensorType.F16 or TensorType.BF16 => 1,
        TensorType.Q8_0 or TensorType.Q8_1 => 32,
        TensorType.Q8_K => 256,
        _ => throw new ArgumentOutOfRangeException(nameof(vecDotType), vecDotType, "not a ggml vec_dot type"),
    };

    /// <summary>
    /// Rounds <paramref name="values"/> (whole rows laid end to end) in place to <paramref name="vecDotType"/> and back to
    /// F32: the values ggml's dequantize_row_* would give for the blocks quantize_row_*_ref writes.
    /// </summary>
    public static void Round(Span<float> values, TensorType vecDotType)
    {
        int block = BlockSize(vecDotType);
        if (values.Length % block != 0)
            throw new ArgumentException($"{values.Length} values are not whole {vecDotType} blocks of {block}", nameof(values));
        switch (vecDotType)
        {
            case TensorType.F16:
                for (int i = 0; i < values.Length; i++) values[i] = (float)(Half)values[i];
                break;
            case TensorType.BF16:
                for (int i = 0; i < values.Length; i++) values[i] = RoundBf16(values[i]);
                break;
            case TensorType.Q8_0:
            case TensorType.Q8_1:
                // Q8_1 holds the same d and qs as Q8_0 (plus s = F16(d·Σq), which only the Q4_1/Q5_1 dot product's
                // offset term reads), so the values are Q8_0's.
                for (int b = 0; b < values.Length; b += 32) RoundQ8_0(values.Slice(b, 32));
                break;
            case TensorType.Q8_K:
                for (int b = 0; b < values.Length; b += 256) RoundQ8_K(values.Slice(b, 256));
                break;
        }
    }

    /// <summary>quantize_row_q8_0_ref then dequantize_row_q8_0 on one block of 32.</summary>
    private static void RoundQ8_0(Span<float> x)
    {
        float amax = 0;
        foreach (var v in x) amax = MathF.Abs(v) > amax ? MathF.Abs(v) : amax;
        float d = amax / 127f;
        float id = d != 0 ? 1f / d : 0f;
        float dh = (float)(Half)d; // stored as F16; the dequantized value is F16(d)·q
        for (int i = 0; i < x.Length; i++)
        {
            // roundf (ties away from zero), then the int8_t store.
            float q = (sbyte)(int)MathF.Round(x[i] * id, MidpointRounding.AwayFromZero);
            x[i] = q * dh;
        }
    }

    /// <summary>quantize_row_q8_K_ref then dequantize_row_q8_K on one super-block of 256 (scale kept in F32).</summary>
    private static void RoundQ8_K(Span<float> x)
    {
        float amax = 0, max = 0;
        foreach (var v in x)
        {
            float a = MathF.Abs(v);
            if (a > amax) { amax = a; max = v; }
        }
        if (amax == 0)
        {
            x.Clear();
            return;
        }
        float iscale = -127f / max;
        float d = 1f / iscale;
        for (int i = 0; i < x.Length; i++)
        {
            // nearest_int: the 1.5·2^23 trick, i.e. round half to even.
            int v = (int)MathF.Round(iscale * x[i], MidpointRounding.ToEven);
            x[i] = d * (sbyte)Math.Min(127, v);
        }
    }

    /// <summary>ggml_compute_fp32_to_bf16 (nearest, ties to even; NaN kept quiet) and back.</summary>
    private static float RoundBf16(float f)
    {
        uint u = BitConverter.SingleToUInt32Bits(f);
        uint h = (u & 0x7fffffff) > 0x7f800000 ? (u >> 16) | 64 : (u + (0x7fff + ((u >> 16) & 1))) >> 16;
        return BitConverter.UInt32BitsToSingle(h << 16);
    }
}
