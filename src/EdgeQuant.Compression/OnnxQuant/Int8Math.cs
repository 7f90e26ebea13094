using EdgeQuant.Core.Errors;

namespace EdgeQuant.Compression.OnnxQuant;

/// <summary>The 8-bit element types ONNX quantization writes.</summary>
public enum QuantElement
{
    /// <summary>Signed, −128..127 (weights).</summary>
    Int8,

    /// <summary>Unsigned, 0..255 (DynamicQuantizeLinear's activations, asymmetric QDQ activations).</summary>
    UInt8,
}

/// <summary>The integer range quantized values are mapped into (inclusive).</summary>
public readonly record struct QuantRange(int Min, int Max);

/// <summary>Affine quantization parameters: real = Scale · (q − ZeroPoint).</summary>
public readonly record struct QuantParams(float Scale, int ZeroPoint)
{
    public float Dequantize(int q) => (q - ZeroPoint) * Scale;
}

/// <summary>
/// A quantized [Rows, Cols] row-major weight matrix (the model's [out, in] layout), one scale and zero point per row
/// (per output channel) or one for the whole matrix.
/// </summary>
public sealed record QuantizedMatrix(sbyte[] Values, int Rows, int Cols, float[] Scales, sbyte[] ZeroPoints, bool PerChannel)
{
    public QuantParams ParamsOfRow(int row) => PerChannel ? new(Scales[row], ZeroPoints[row]) : new(Scales[0], ZeroPoints[0]);

    /// <summary>The real values the integers stand for, [Rows, Cols] row-major (what a fake-quantized model holds).</summary>
    public float[] Dequantize()
    {
        var dst = new float[Values.Length];
        for (int r = 0; r < Rows; r++)
        {
            var p = ParamsOfRow(r);
            int at = r * Cols;
            for (int c = 0; c < Cols; c++) dst[at + c] = p.Dequantize(Values[at + c]);
        }
        return dst;
    }

    /// <summary>Values transposed to [Cols, Rows] (MatMul's B = Wᵀ, [in, out]) for an ONNX initializer.</summary>
    public sbyte[] Transposed()
    {
        var t = new sbyte[Values.Length];
        for (int r = 0; r < Rows; r++)
            for (int c = 0; c < Cols; c++) t[(long)c * Rows + r] = Values[(long)r * Cols + c];
        return t;
    }
}

/// <summary>
/// 8-bit quantization with the conventions of ONNX Runtime: its Python quantizer (onnxruntime.quantization,
/// quant_utils: get_qmin_qmax_for_qType, compute_scale_zp, quantize_nparray) for weights, and its CPU kernel of
/// DynamicQuantizeLinear (and the ONNX spec of that op) for activations quantized at run time. The exporters and the
/// fake-quant engine hooks both use these functions, so what the engine simulates is what ORT runs.
/// </summary>
/// <remarks>
/// Rounding is to nearest, ties to even, everywhere (numpy's round, the ONNX spec's "round to nearest ties to even",
/// MLAS's cvtps2dq under the default MXCSR). Quantization divides by the scale (as MLAS and numpy do) rather than
/// multiplying by its reciprocal, which can differ in the last bit and flip a tie.
/// </remarks>
public static class Int8Math
{
    /// <summary>
    /// ORT's get_qmin_qmax_for_qType: reduce_range takes precedence (INT8 −64..64, UINT8 0..127: 7 bits, so the u8·s8
    /// pair sums of VPMADDUBSW cannot saturate int16 on CPUs without VNNI); otherwise symmetric INT8 is −127..127
    /// (a zero point of exactly 0) and symmetric UINT8 0..254 (zero point 127); otherwise the full type.
    /// </summary>
    public static QuantRange Range(QuantElement type, bool symmetric, bool reduceRange) => (type, symmetric, reduceRange) switch
    {
        (QuantElement.Int8, _, true) => new(-64, 64),
        (QuantElement.UInt8, _, true) => new(0, 127),
        (QuantElement.Int8, true, false) => new(-127, 127),
        (QuantElement.UInt8, true, false) => new(0, 254),
        (QuantElement.Int8, false, false) => new(-128, 127),
        _ => new(0, 255),
    };

    /// <summary>The type's full range, to which quantized values are clipped (quantize_nparray clips to it, not to <see cref="Range"/>).</summary>
    public static QuantRange Full(QuantElement type) => type == QuantElement.Int8 ? new(-128, 127) : new(0, 255);

    /// <summary>
    /// ORT's compute_scale_zp: the range is widened to include 0 (so 0 is exact), made ±max|r| when symmetric, and
    /// mapped onto <paramref name="q"/>. The scale is computed in double and stored as float; the asymmetric zero
    /// point is round(qmin − rmin / scale) with the double scale; the symmetric one round((qmin + qmax) / 2). A
    /// range too small for a normal float scale (all zeros) gives scale 1, zero point 0.
    /// </summary>
    public static QuantParams ScaleZeroPoint(float rmin, float rmax, QuantRange q, bool symmetric)
    {
        if (q.Min > 0 || q.Max < 0 || q.Min >= q.Max) throw new ArgumentException($"quantized range [{q.Min}, {q.Max}] must contain 0 and be non-empty", nameof(q));
        if (!float.IsFinite(rmin) || !float.IsFinite(rmax))
            throw new BadInputException($"cannot quantize a range [{rmin}, {rmax}] that is not finite");
        rmin = MathF.Min(rmin, 0f);
        rmax = MathF.Max(rmax, 0f);
        if (symmetric)
        {
            float absMax = MathF.Max(MathF.Abs(rmin), MathF.Abs(rmax));
            rmin = -absMax;
            rmax = absMax;
        }
        // rmax − rmin is a float32 subtraction in numpy before it is widened; keep that order.
        double scale = (double)(rmax - rmin) / ((double)q.Max - q.Min);
        if (scale < FloatTiny) return new QuantParams(1f, 0);
        int zp = symmetric
            ? (int)Math.Round((q.Min + q.Max) / 2.0, MidpointRounding.ToEven)
            : (int)Math.Round(q.Min - rmin / scale, MidpointRounding.ToEven);
        return new QuantParams((float)scale, zp);
    }

    /// <summary>saturate(round(x / scale) + zero point) in float arithmetic, clipped to <paramref name="clip"/>.</summary>
    public static int Quantize(float x, QuantParams p, QuantRange clip)
    {
        float v = MathF.Round(x / p.Scale, MidpointRounding.ToEven) + p.ZeroPoint;
        // NaN (a non-finite input) saturates low, as MINPS/MAXPS clamping does in MLAS.
        if (!(v >= clip.Min)) return clip.Min;
        return v > clip.Max ? clip.Max : (int)v;
    }

    /// <summary>Quantizes to INT8 with <see cref="Full"/>(Int8) clipping (ONNX QuantizeLinear with an int8 zero point).</summary>
    public static void QuantizeInt8(ReadOnlySpan<float> x, QuantParams p, Span<sbyte> q)
    {
        if (q.Length < x.Length) throw new ArgumentException("output too short", nameof(q));
        var clip = Full(QuantElement.Int8);
        for (int i = 0; i < x.Length; i++) q[i] = (sbyte)Quantize(x[i], p, clip);
    }

    /// <summary>
    /// INT8 weights as ORT's dynamic quantizer writes them for a MatMul: symmetric (its default for INT8 weights,
    /// zero points 0), −127..127 or −64..64 with <paramref name="reduceRange"/>; one scale per output channel (row of
    /// the [out, in] matrix, = column of MatMul's B) or one for the tensor. Refuses NaN/Inf.
    /// </summary>
    public static QuantizedMatrix QuantizeWeights(ReadOnlySpan<float> rows, int outDim, int inDim, bool perChannel, bool reduceRange)
    {
        if (outDim <= 0 || inDim <= 0 || (long)outDim * inDim != rows.Length)
            throw new ArgumentException($"{rows.Length} weights do not form [{outDim}, {inDim}]", nameof(rows));
        var range = Range(QuantElement.Int8, symmetric: true, reduceRange);
        var values = new sbyte[rows.Length];
        int groups = perChannel ? outDim : 1;
        var scales = new float[groups];
        var zeroPoints = new sbyte[groups];
        int groupLength = perChannel ? inDim : rows.Length;
        for (int g = 0; g < groups; g++)
        {
            var src = rows.Slice(g * groupLength, groupLength);
            var (min, max) = MinMax(src);
            var p = ScaleZeroPoint(min, max, range, symmetric: true);
            scales[g] = p.Scale;
            zeroPoints[g] = (sbyte)p.ZeroPoint;
            QuantizeInt8(src, p, values.AsSpan(g * groupLength, groupLength));
        }
        return new QuantizedMatrix(values, outDim, inDim, scales, zeroPoints, perChannel);
    }

    /// <summary>
    /// DynamicQuantizeLinear's parameters for <paramref name="x"/> (one per tensor, UINT8), as ORT's CPU kernel computes
    /// them in float: min/max widened to include 0; scale = (max − min) / 255, or 1 when max = min (the spec's formula
    /// would divide by zero there); zero point = round(clamp(0 − min / scale, 0, 255)).
    /// </summary>
    public static QuantParams DynamicParams(ReadOnlySpan<float> x)
    {
        var (min, max) = MinMax(x);
        min = MathF.Min(min, 0f);
        max = MathF.Max(max, 0f);
        float scale = max == min ? 1f : (max - min) / 255f;
        float zp = 0f - min / scale;
        zp = MathF.Round(Math.Clamp(zp, 0f, 255f), MidpointRounding.ToEven);
        return new QuantParams(scale, (int)zp);
    }

    /// <summary>DynamicQuantizeLinear: y = saturate(round(x / scale) + zero point) as UINT8; returns (scale, zero point).</summary>
    public static QuantParams DynamicQuantizeLinear(ReadOnlySpan<float> x, Span<byte> y)
    {
        if (y.Length < x.Length) throw new ArgumentException("output too short", nameof(y));
        var p = DynamicParams(x);
        var clip = Full(QuantElement.UInt8);
        for (int i = 0; i < x.Length; i++) y[i] = (byte)Quantize(x[i], p, clip);
        return p;
    }

    /// <summary>
    /// Fake quantization of a run-time-quantized activation: replaces <paramref name="x"/> in place by
    /// (DynamicQuantizeLinear(x) − zero point) · scale, the real values MatMulInteger multiplies. Returns the parameters.
    /// </summary>
    public static QuantParams DynamicQuantizeDequantize(Span<float> x)
    {
        var p = DynamicParams(x);
        var clip = Full(QuantElement.UInt8);
        for (int i = 0; i < x.Length; i++) x[i] = p.Dequantize(Quantize(x[i], p, clip));
        return p;
    }

    /// <summary>Quantize-dequantize in place with fixed parameters, clipped to <paramref name="clip"/> (static activations, QDQ pairs).</summary>
    public static void QuantizeDequantize(Span<float> x, QuantParams p, QuantRange clip)
    {
        for (int i = 0; i < x.Length; i++) x[i] = p.Dequantize(Quantize(x[i], p, clip));
    }

    /// <summary>Minimum and maximum (0, 0 for an empty span); NaN/Inf are refused: a scale from them is meaningless.</summary>
    public static (float Min, float Max) MinMax(ReadOnlySpan<float> x)
    {
        if (x.IsEmpty) return (0f, 0f);
        float min = System.Numerics.Tensors.TensorPrimitives.Min(x), max = System.Numerics.Tensors.TensorPrimitives.Max(x);
        if (!float.IsFinite(min) || !float.IsFinite(max))
            throw new BadInputException($"cannot quantize values that are not finite (min {min}, max {max})");
        return (min, max);
    }

    // numpy.finfo(float32).tiny: the smallest normal float.
    private const double FloatTiny = 1.1754943508222875e-38;
}
