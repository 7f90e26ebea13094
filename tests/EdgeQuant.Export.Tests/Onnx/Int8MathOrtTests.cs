using System.Runtime.InteropServices;
using EdgeQuant.Compression.OnnxQuant;
using EdgeQuant.Export.Onnx;
using EdgeQuant.Formats.Onnx.Proto;
using EdgeQuant.Runtimes.OnnxRuntime;
using Google.Protobuf;
using DataType = EdgeQuant.Formats.Onnx.Proto.TensorProto.Types.DataType;

namespace EdgeQuant.Export.Tests.Onnx;

/// <summary>
/// <see cref="Int8Math"/> against ONNX Runtime itself: one-node DynamicQuantizeLinear and QuantizeLinear graphs run
/// through the project's binding, outputs compared byte for byte (and scales bit for bit).
/// </summary>
public sealed class Int8MathOrtTests
{
    public static TheoryData<string, int> Inputs => new()
    {
        { "mixed", 1 }, { "mixed", 7 }, { "mixed", 257 }, { "mixed", 4099 },
        { "positive", 300 }, { "negative", 300 }, { "zeros", 16 }, { "ties", 512 }, { "wide", 1000 }, { "tiny", 64 },
    };

    [OnnxExportTheory]
    [MemberData(nameof(Inputs))]
    public void Dynamic_quantize_linear_equals_orts_bytes(string kind, int n)
    {
        var x = Make(kind, n, seed: n);
        var expected = new byte[n];
        var p = Int8Math.DynamicQuantizeLinear(x, expected);

        using var b = new OnnxGraphBuilder("dql");
        b.Input("x", DataType.Float, (long)n);
        b.Node("DynamicQuantizeLinear", ["x"], ["y", "scale", "zp"]);
        b.Output("y", DataType.Uint8, (long)n);
        b.Output("scale", DataType.Float);
        b.Output("zp", DataType.Uint8);
        using var session = OrtSession.FromBytes(b.Build("test", "0").ToByteArray(), new OrtSessionSettings { IntraOpThreads = 1 });
        using var input = OrtValue.CreateTensor(x, [n]);
        using var r = session.Run(("x", input));
        Assert.Equal(BitConverter.SingleToInt32Bits(p.Scale), BitConverter.SingleToInt32Bits(r["scale"].GetTensorData<float>()[0]));
        Assert.Equal(p.ZeroPoint, r["zp"].GetTensorData<byte>()[0]);
        var actual = r["y"].GetTensorData<byte>().ToArray();
        int diff = Enumerable.Range(0, n).FirstOrDefault(i => actual[i] != expected[i], -1);
        Assert.True(diff < 0, diff < 0 ? "" : $"element {diff}: x {x[diff]:R}, ORT {actual[diff]}, Int8Math {expected[diff]}");
    }

    [OnnxExportTheory]
    [InlineData(true, false)]
    [InlineData(true, true)]
    [InlineData(false, false)]
    [InlineData(false, true)]
    public void Weight_quantization_equals_orts_quantize_linear(bool perChannel, bool reduceRange)
    {
        // ORT's quantizer computes scales in Python and quantizes with numpy; its QuantizeLinear kernel applies the same
        // saturate(round(x / scale) + zp), so with our scales the integers must agree exactly.
        int outDim = 24, inDim = 67;
        var w = Make("mixed", outDim * inDim, seed: 3);
        for (int o = 0; o < outDim; o++)
            for (int i = 0; i < inDim; i++) w[o * inDim + i] *= 1 + o; // rows of different magnitudes
        var q = Int8Math.QuantizeWeights(w, outDim, inDim, perChannel, reduceRange);

        using var b = new OnnxGraphBuilder("ql");
        b.Input("w", DataType.Float, (long)outDim, (long)inDim);
        string scale = perChannel ? b.Initializer("scale", q.Scales, outDim) : b.Initializer("scale", q.Scales);
        string zp = perChannel
            ? b.Initializer("zp", DataType.Int8, MemoryMarshal.AsBytes(q.ZeroPoints.AsSpan()), outDim)
            : b.Initializer("zp", DataType.Int8, MemoryMarshal.AsBytes(q.ZeroPoints.AsSpan()));
        b.Node("QuantizeLinear", ["w", scale, zp], ["q"], null, "", OnnxGraphBuilder.Attr("axis", 0L));
        b.Output("q", DataType.Int8, (long)outDim, (long)inDim);
        using var session = OrtSession.FromBytes(b.Build("test", "0").ToByteArray(), new OrtSessionSettings { IntraOpThreads = 1 });
        using var input = OrtValue.CreateTensor(w, [outDim, inDim]);
        using var r = session.Run(("w", input));
        Assert.Equal(q.Values, r["q"].GetTensorData<sbyte>().ToArray());
        int limit = reduceRange ? 64 : 127;
        Assert.Equal(limit, q.Values.Max(v => Math.Abs((int)v)));
    }

    /// <summary>Test inputs; "ties" are exact half-steps of the scale ORT will pick, so rounding mode matters.</summary>
    private static float[] Make(string kind, int n, int seed)
    {
        var rng = new Random(seed);
        var x = new float[n];
        for (int i = 0; i < n; i++)
        {
            float g = (float)((rng.NextDouble() - 0.4) * 6);
            x[i] = kind switch
            {
                "positive" => MathF.Abs(g) + 0.01f,
                "negative" => -MathF.Abs(g) - 0.01f,
                "zeros" => 0f,
                // ±255 make the scale exactly 2 and the zero point 127.5 → 128; odd integers land on x / 2 = k + ½.
                "ties" => i == 0 ? 255f : i == 1 ? -255f : 2 * rng.Next(-127, 127) + 1,
                "wide" => g * MathF.Pow(10, rng.Next(-6, 4)),
                "tiny" => g * 1e-30f,
                _ => g,
            };
        }
        return x;
    }
}
