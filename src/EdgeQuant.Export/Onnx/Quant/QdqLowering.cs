using System.Globalization;
using System.Runtime.InteropServices;
using EdgeQuant.Compression.OnnxQuant;
using static EdgeQuant.Export.Onnx.OnnxGraphBuilder;
using DataType = EdgeQuant.Formats.Onnx.Proto.TensorProto.Types.DataType;

namespace EdgeQuant.Export.Onnx.Quant;

/// <summary>
/// Static INT8 linear layers in the QDQ format ONNX Runtime's static quantizer writes: the activation goes through
/// QuantizeLinear → DequantizeLinear with the calibrated scale and zero point (UINT8 asymmetric, or INT8 symmetric),
/// the weight is an INT8 initializer [in, out] → DequantizeLinear (per tensor, or per output channel with axis = 1),
/// then a float MatMul; a bias becomes INT32 at scale x_scale · w_scale → DequantizeLinear → Add. ORT's graph optimizer
/// fuses DQ → MatMul into integer kernels (MatMulIntegerToFloat / QLinearMatMul). Layers that share a UINT8-quantized
/// input (attn_q/k/v, ffn_gate/up) share its QuantizeLinear. Excluded layers return null and stay FP32.
/// </summary>
/// <remarks>
/// <see cref="QdqFakeQuant"/> computes the same numbers in the engine. A bias whose initializer went to the external
/// data file (models over 2 GB) cannot be read back here and stays a float Add.
/// </remarks>
public sealed class QdqLowering : IOnnxLinearLowering
{
    private readonly ActivationRanges _ranges;
    private readonly Int8StaticOptions _options;
    private readonly Dictionary<string, (string Value, string Scale, string ZeroPoint)> _shared = new(StringComparer.Ordinal);
    private readonly List<string> _quantized = [];

    public QdqLowering(ActivationRanges ranges, Int8StaticOptions options)
    {
        ArgumentNullException.ThrowIfNull(ranges);
        ArgumentNullException.ThrowIfNull(options);
        _ranges = ranges;
        _options = options;
    }

    public string Scheme => "int8-static";

    /// <summary>Layers written as QDQ so far (exporter layer names), in graph order.</summary>
    public IReadOnlyList<string> QuantizedLayers => _quantized;

    /// <summary>Biases written as INT32 so far.</summary>
    public int Int32Biases { get; private set; }

    public string? Emit(OnnxGraphBuilder b, OnnxLinear l)
    {
        if (!QdqFakeQuant.Includes(_options.Layers, l.Layer, l.HookLayer)) return null;
        var range = _ranges.Get(l.HookLayer);
        var (xp, type) = QdqFakeQuant.ActivationParams(range, _options);
        string x = Activation(b, l, xp, type);

        var w = Int8Math.QuantizeWeights(l.Rows, l.OutDim, l.InDim, _options.PerChannel, _options.ReduceRange);
        long[] paramDims = _options.PerChannel ? [l.OutDim] : [];
        string wq = b.Initializer(l.WeightName + "_quantized", DataType.Int8, MemoryMarshal.AsBytes(w.Transposed().AsSpan()), l.InDim, l.OutDim);
        string ws = b.Initializer(l.WeightName + "_scale", w.Scales, paramDims);
        string wz = b.Initializer(l.WeightName + "_zero_point", DataType.Int8, MemoryMarshal.AsBytes(w.ZeroPoints.AsSpan()), paramDims);
        var axis = _options.PerChannel ? new[] { Attr("axis", 1L) } : [];
        string wdq = b.Node("DequantizeLinear", [wq, ws, wz], [b.Fresh(l.WeightName + "_DequantizeLinear_Output")], l.WeightName + "_DequantizeLinear", "", axis);
        string y = b.Op("MatMul", l.Layer, [x, wdq]);
        _quantized.Add(l.Layer);
        if (l.Bias is null) return y;

        string bias = l.Bias;
        if (b.TryReadInlineFloats(l.Bias, out var values) && values.Length == l.OutDim && QdqFakeQuant.QuantizeBias(values, xp.Scale, w) is { } qb)
        {
            var scales = new float[l.OutDim];
            for (int r = 0; r < scales.Length; r++) scales[r] = QdqFakeQuant.BiasScale(xp.Scale, w, r);
            string bq = b.Initializer(l.Bias + "_quantized", DataType.Int32, MemoryMarshal.AsBytes(qb.AsSpan()), l.OutDim);
            string bs = b.Initializer(l.Bias + "_quantized_scale", scales, l.OutDim);
            bias = b.Node("DequantizeLinear", [bq, bs], [b.Fresh(l.Bias + "_DequantizeLinear_Output")], l.Bias + "_DequantizeLinear", "", Attr("axis", 0L));
            Int32Biases++;
        }
        return b.Op("Add", l.Layer + "/bias", [y, bias]);
    }

    /// <summary>
    /// The dequantized activation: one QuantizeLinear per graph value and parameters (UINT8: q/k/v and gate/up share
    /// theirs), and a DequantizeLinear per consumer, so each DQ → MatMul can become one MatMulIntegerToFloat. INT8
    /// activations get a QuantizeLinear per consumer too: ORT (the pinned CPU build) then rewrites each S8 Q/DQ pair to U8 and
    /// fuses it, but leaves a Q shared by several DQs as float MatMuls (measured: 3 of 13 layers fused when shared).
    /// </summary>
    private string Activation(OnnxGraphBuilder b, OnnxLinear l, QuantParams p, QuantElement type)
    {
        string key = string.Create(CultureInfo.InvariantCulture, $"{l.Input}|{BitConverter.SingleToInt32Bits(p.Scale)}|{p.ZeroPoint}|{type}");
        if (type == QuantElement.Int8) key += "|" + l.Layer;
        string stem = (type == QuantElement.Int8 ? l.Layer : l.HookLayer) + ".input";
        if (!_shared.TryGetValue(key, out var q))
        {
            string scale = b.Initializer(b.Fresh(stem + "_scale"), [p.Scale]);
            string zp = type == QuantElement.UInt8
                ? b.Initializer(b.Fresh(stem + "_zero_point"), DataType.Uint8, [(byte)p.ZeroPoint])
                : b.Initializer(b.Fresh(stem + "_zero_point"), DataType.Int8, [unchecked((byte)(sbyte)p.ZeroPoint)]);
            string quantized = b.Node("QuantizeLinear", [l.Input, scale, zp], [b.Fresh(stem + "_QuantizeLinear_Output")], stem + "_QuantizeLinear");
            _shared[key] = q = (quantized, scale, zp);
        }
        return b.Node("DequantizeLinear", [q.Value, q.Scale, q.ZeroPoint], [b.Fresh(l.Layer + ".input_DequantizeLinear_Output")], l.Layer + ".input_DequantizeLinear");
    }

    public IEnumerable<KeyValuePair<string, string>> Metadata
    {
        get
        {
            yield return new("edgequant.quantization", "qdq int8 static");
            yield return new("edgequant.calibration_method", ActivationRanges.MethodName(_ranges.Method));
            if (_ranges.Percentile is { } pct) yield return new("edgequant.calibration_percentile", pct.ToString("R", CultureInfo.InvariantCulture));
            if (_ranges.CalibrationSha256 is { } sha) yield return new("edgequant.calibration_sha256", sha);
            yield return new("edgequant.activations", _options.SymmetricActivations ? "int8 symmetric per-tensor" : "uint8 asymmetric per-tensor");
            yield return new("edgequant.weights", (_options.PerChannel ? "int8 symmetric per-channel" : "int8 symmetric per-tensor") + (_options.ReduceRange ? " reduce_range" : ""));
            yield return new("edgequant.quantized_layers", _quantized.Count.ToString(CultureInfo.InvariantCulture));
        }
    }
}
