using EdgeQuant.Compression.OnnxQuant;
using EdgeQuant.Core.Errors;

namespace EdgeQuant.Compression.Tests.OnnxQuant;

/// <summary>
/// ONNX Runtime's quantization conventions on hand-computed cases (values chosen so scales are exact and ties are
/// real ties). The byte-for-byte comparison with ORT itself is in EdgeQuant.Export.Tests (Int8MathOrtTests).
/// </summary>
public sealed class Int8MathTests
{
    [Theory]
    [InlineData(QuantElement.Int8, false, false, -128, 127)]
    [InlineData(QuantElement.Int8, true, false, -127, 127)]
    [InlineData(QuantElement.Int8, true, true, -64, 64)]
    [InlineData(QuantElement.Int8, false, true, -64, 64)]
    [InlineData(QuantElement.UInt8, false, false, 0, 255)]
    [InlineData(QuantElement.UInt8, true, false, 0, 254)]
    [InlineData(QuantElement.UInt8, false, true, 0, 127)]
    public void Ranges_follow_orts_table(QuantElement type, bool symmetric, bool reduce, int min, int max) =>
        Assert.Equal(new QuantRange(min, max), Int8Math.Range(type, symmetric, reduce));

    [Fact]
    public void Scale_and_zero_point_include_zero_and_symmetrize()
    {
        // Asymmetric UINT8 over [1, 256]: widened to [0, 256]; scale 256/255, zero point 0.
        var p = Int8Math.ScaleZeroPoint(1f, 256f, new QuantRange(0, 255), symmetric: false);
        Assert.Equal((float)(256.0 / 255.0), p.Scale);
        Assert.Equal(0, p.ZeroPoint);
        // [-51, 204] over 0..255: scale exactly 1, zero point 51.
        p = Int8Math.ScaleZeroPoint(-51f, 204f, new QuantRange(0, 255), symmetric: false);
        Assert.Equal(new QuantParams(1f, 51), p);
        // Symmetric INT8: [-0.5, 0.25] → ±0.5 over −127..127 → scale 1/254, zero point 0.
        p = Int8Math.ScaleZeroPoint(-0.5f, 0.25f, Int8Math.Range(QuantElement.Int8, true, false), symmetric: true);
        Assert.Equal((float)(1.0 / 254.0), p.Scale);
        Assert.Equal(0, p.ZeroPoint);
        // Symmetric UINT8 centres on 127; reduced symmetric UINT8 on round(63.5) = 64 (ties to even).
        Assert.Equal(127, Int8Math.ScaleZeroPoint(-1f, 1f, Int8Math.Range(QuantElement.UInt8, true, false), true).ZeroPoint);
        Assert.Equal(64, Int8Math.ScaleZeroPoint(-1f, 1f, Int8Math.Range(QuantElement.UInt8, true, true), true).ZeroPoint);
        // An all-zero range: scale 1, zero point 0 (not a division by zero).
        Assert.Equal(new QuantParams(1f, 0), Int8Math.ScaleZeroPoint(0f, 0f, new QuantRange(-127, 127), true));
        Assert.Throws<BadInputException>(() => Int8Math.ScaleZeroPoint(float.NaN, 1f, new QuantRange(-127, 127), true));
    }

    [Fact]
    public void Quantize_rounds_ties_to_even_and_saturates()
    {
        var p = new QuantParams(0.5f, 3);
        var clip = Int8Math.Full(QuantElement.Int8);
        // x / 0.5 = 1.5 → 2, 2.5 → 2, -0.5 → -0 (then +3), far values clip.
        Assert.Equal(5, Int8Math.Quantize(0.75f, p, clip));
        Assert.Equal(5, Int8Math.Quantize(1.25f, p, clip));
        Assert.Equal(3, Int8Math.Quantize(-0.25f, p, clip));
        Assert.Equal(127, Int8Math.Quantize(1000f, p, clip));
        Assert.Equal(-128, Int8Math.Quantize(-1000f, p, clip));
        Assert.Equal(1.0f, p.Dequantize(5));
    }

    [Fact]
    public void Per_channel_weights_have_one_scale_per_output_row()
    {
        // Row 0: max |w| 127 → scale 1; row 1: max |w| 63.5 → scale 0.5 (both exact), zero points 0.
        float[] w = [127f, -2.5f, 3.5f, 0f, -63.5f, 1f, 0.25f, 0.75f];
        var q = Int8Math.QuantizeWeights(w, 2, 4, perChannel: true, reduceRange: false);
        Assert.Equal([1f, 0.5f], q.Scales);
        Assert.Equal([0, 0], q.ZeroPoints.Select(z => (int)z));
        Assert.Equal(new sbyte[] { 127, -2, 4, 0, -127, 2, 0, 2 }, q.Values);
        Assert.Equal([127f, -2f, 4f, 0f, -63.5f, 1f, 0f, 1f], q.Dequantize());
        Assert.Equal(new sbyte[] { 127, -127, -2, 2, 4, 0, 0, 2 }, q.Transposed());

        // Per tensor: one scale 1 for both rows; -63.5 → -64 (tie to even), 0.75 → 1.
        var t = Int8Math.QuantizeWeights(w, 2, 4, perChannel: false, reduceRange: false);
        Assert.Equal([1f], t.Scales);
        Assert.Equal(new sbyte[] { 127, -2, 4, 0, -64, 1, 0, 1 }, t.Values);

        // reduce_range: ±127 over −64..64 → scale 127/64 = 1.984375; 127 → 64, 3.5/1.984375 = 1.76 → 2.
        var r = Int8Math.QuantizeWeights(w, 2, 4, perChannel: false, reduceRange: true);
        Assert.Equal([1.984375f], r.Scales);
        Assert.Equal(new sbyte[] { 64, -1, 2, 0, -32, 1, 0, 0 }, r.Values);
        Assert.All(r.Values, v => Assert.InRange((int)v, -64, 64));
    }

    [Fact]
    public void Random_weights_stay_within_half_a_step_of_the_source()
    {
        var rng = new Random(5);
        int outDim = 37, inDim = 61;
        var w = new float[outDim * inDim];
        for (int i = 0; i < w.Length; i++) w[i] = (float)((rng.NextDouble() - 0.5) * (1 + i % 7));
        foreach (bool perChannel in new[] { true, false })
            foreach (bool reduce in new[] { false, true })
            {
                var q = Int8Math.QuantizeWeights(w, outDim, inDim, perChannel, reduce);
                var back = q.Dequantize();
                int limit = reduce ? 64 : 127;
                for (int o = 0; o < outDim; o++)
                {
                    float s = q.ParamsOfRow(o).Scale;
                    for (int i = 0; i < inDim; i++)
                    {
                        Assert.InRange(Math.Abs(back[o * inDim + i] - w[o * inDim + i]), 0, s * 0.5f * 1.0001f);
                        Assert.InRange((int)q.Values[o * inDim + i], -limit, limit);
                    }
                }
                // The extreme value of each group lands on the range's end.
                Assert.Contains(q.Values, v => Math.Abs((int)v) == limit);
            }
    }

    [Fact]
    public void Dynamic_quantize_linear_follows_the_spec()
    {
        // max 255, min 0 → scale exactly 1, zero point 0; 2.5 → 2 and 3.5 → 4 (ties to even).
        float[] x = [255f, 2.5f, 3.5f, 0f, 100.2f];
        var y = new byte[x.Length];
        var p = Int8Math.DynamicQuantizeLinear(x, y);
        Assert.Equal(new QuantParams(1f, 0), p);
        Assert.Equal(new byte[] { 255, 2, 4, 0, 100 }, y);

        // Negative only: range [-255, 0] → scale 1, zero point 255; -2.5 → -2 + 255.
        x = [-255f, -2.5f, -0f];
        p = Int8Math.DynamicQuantizeLinear(x, y);
        Assert.Equal(new QuantParams(1f, 255), p);
        Assert.Equal(new byte[] { 0, 253, 255 }, y[..3]);

        // Mixed: [-51, 204] → scale 1, zero point 51.
        x = [-51f, 204f, 0.5f, -0.5f];
        p = Int8Math.DynamicQuantizeLinear(x, y);
        Assert.Equal(new QuantParams(1f, 51), p);
        Assert.Equal(new byte[] { 0, 255, 51, 51 }, y[..4]);

        // All zeros: scale 1 (ORT's guard; the spec's formula would divide by zero), zero point 0.
        x = [0f, 0f];
        Assert.Equal(new QuantParams(1f, 0), Int8Math.DynamicQuantizeLinear(x, y));

        // Fake quant: the dequantized values, and the parameters returned.
        x = [-51f, 204f, 0.4f, 10.6f];
        p = Int8Math.DynamicQuantizeDequantize(x);
        Assert.Equal(new QuantParams(1f, 51), p);
        Assert.Equal([-51f, 204f, 0f, 11f], x);
    }

    [Fact]
    public void Dynamic_scale_is_computed_in_float_as_orts_kernel_does()
    {
        float[] x = [-0.3f, 0.7f, 0.1f];
        var p = Int8Math.DynamicParams(x);
        float scale = (0.7f - -0.3f) / 255f;
        Assert.Equal(scale, p.Scale);
        Assert.Equal((int)MathF.Round(0.3f / scale), p.ZeroPoint);
        Assert.Throws<BadInputException>(() => Int8Math.DynamicParams([1f, float.PositiveInfinity]));
    }
}
