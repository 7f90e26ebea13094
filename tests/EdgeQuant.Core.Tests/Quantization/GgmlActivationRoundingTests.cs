using System.Runtime.InteropServices;
using EdgeQuant.Core.Quantization;
using EdgeQuant.Core.Tensors;

namespace EdgeQuant.Core.Tests.Quantization;

/// <summary>
/// <see cref="GgmlActivationRounding"/> against libggml-base, bit for bit: each row quantized by ggml's
/// quantize_row_q8_0_ref / q8_1_ref / q8_K_ref and decoded by ggml's dequantize_row_* (Q8_1 has none: its F16 d times
/// each int8 q, decoded here from the block bytes), F16/BF16 by ggml_fp32_to_fp16_row / ggml_fp32_to_bf16_row_ref.
/// </summary>
public unsafe class GgmlActivationRoundingTests
{
    private static readonly Lazy<nint> Handle = new(() => NativeLibrary.Load(GgmlNative.LibraryPath
        ?? throw new FileNotFoundException("libggml-base.so not found: run `make runtimes` or set EDGEQUANT_RUNTIMES")));

    /// <summary>
    /// Rows of 4 super-blocks (1024 values) with: Gaussian activations, a block of zeros, a negative largest value,
    /// values far below F16's normal range (subnormal scale), large magnitudes, and blocks of exact .5 ties (largest
    /// value 127 gives scale 1, so 2.5 must round as ggml rounds: away from zero in Q8_0, to even in Q8_K).
    /// </summary>
    private static float[] Row(int seed)
    {
        var rng = new Random(seed);
        var x = new float[1024];
        for (int i = 0; i < x.Length; i++)
        {
            double u1 = 1 - rng.NextDouble(), u2 = rng.NextDouble();
            x[i] = (float)(Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
        }
        x.AsSpan(32, 32).Clear();
        x[70] = -9f;
        for (int i = 96; i < 128; i++) x[i] *= 1e-9f;
        for (int i = 128; i < 160; i++) x[i] *= 3e4f;
        for (int i = 256; i < 512; i++) x[i] = (i % 7 - 3) + 0.5f;
        x[300] = 127f;
        for (int i = 512; i < 544; i++) x[i] = -((i % 5) + 0.5f);
        x[520] = -127f;
        x.AsSpan(768, 256).Clear(); // a whole zero super-block
        return x;
    }

    public static TheoryData<TensorType> Types => new() { TensorType.Q8_0, TensorType.Q8_1, TensorType.Q8_K, TensorType.F16, TensorType.BF16 };

    [GgmlTheory]
    [MemberData(nameof(Types))]
    public void Rounding_equals_ggml_quantize_then_dequantize_bit_for_bit(TensorType type)
    {
        for (int seed = 1; seed <= 20; seed++)
        {
            var x = Row(seed);
            var expected = Ggml(type, x);
            var actual = x.ToArray();
            GgmlActivationRounding.Round(actual, type);
            for (int i = 0; i < x.Length; i++)
            {
                if (BitConverter.SingleToInt32Bits(actual[i]) != BitConverter.SingleToInt32Bits(expected[i]))
                    Assert.Fail($"{type} seed {seed} [{i}]: x {x[i]:R} -> {actual[i]:R}, ggml {expected[i]:R}");
            }
            Assert.NotEqual(x, actual); // the rounding did something
        }
    }

    private static float[] Ggml(TensorType type, float[] x)
    {
        var y = new float[x.Length];
        switch (type)
        {
            case TensorType.Q8_0:
            case TensorType.Q8_K:
                GgmlNative.DequantizeRow(type, GgmlNative.QuantizeRowReference(type, x), y);
                break;
            case TensorType.Q8_1:
                var blocks = GgmlNative.QuantizeRowReference(type, x);
                for (int b = 0; b < x.Length / 32; b++)
                {
                    var block = blocks.AsSpan(b * 36, 36);
                    float d = (float)BitConverter.ToHalf(block[..2]);
                    for (int j = 0; j < 32; j++) y[b * 32 + j] = (sbyte)block[4 + j] * d;
                }
                break;
            case TensorType.F16:
            case TensorType.BF16:
                var bits = new ushort[x.Length];
                var fn = (delegate* unmanaged<float*, ushort*, long, void>)NativeLibrary.GetExport(Handle.Value,
                    type == TensorType.F16 ? "ggml_fp32_to_fp16_row" : "ggml_fp32_to_bf16_row_ref");
                fixed (float* xp = x)
                fixed (ushort* bp = bits)
                    fn(xp, bp, x.Length);
                for (int i = 0; i < x.Length; i++)
                    y[i] = type == TensorType.F16 ? (float)BitConverter.UInt16BitsToHalf(bits[i]) : BitConverter.UInt32BitsToSingle((uint)bits[i] << 16);
                break;
        }
        return y;
    }

    [Fact]
    public void Vec_dot_types_follow_ggml_cpu_type_traits()
    {
        Assert.Equal(TensorType.Q8_0, GgmlActivationRounding.VecDotType(TensorType.Q4_0));
        Assert.Equal(TensorType.Q8_0, GgmlActivationRounding.VecDotType(TensorType.Q5_0));
        Assert.Equal(TensorType.Q8_0, GgmlActivationRounding.VecDotType(TensorType.Q8_0));
        Assert.Equal(TensorType.Q8_1, GgmlActivationRounding.VecDotType(TensorType.Q4_1));
        Assert.Equal(TensorType.Q8_1, GgmlActivationRounding.VecDotType(TensorType.Q5_1));
        foreach (var k in new[] { TensorType.Q2_K, TensorType.Q3_K, TensorType.Q4_K, TensorType.Q5_K, TensorType.Q6_K })
            Assert.Equal(TensorType.Q8_K, GgmlActivationRounding.VecDotType(k));
        Assert.Equal(TensorType.F16, GgmlActivationRounding.VecDotType(TensorType.F16));
        Assert.Null(GgmlActivationRounding.VecDotType(TensorType.F32));
        Assert.Throws<ArgumentException>(() => GgmlActivationRounding.Round(new float[33], TensorType.Q8_0));
    }
}
