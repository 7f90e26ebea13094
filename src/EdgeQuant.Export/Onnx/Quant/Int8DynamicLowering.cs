using System.Globalization;
using System.Runtime.InteropServices;
using EdgeQuant.Compression.OnnxQuant;
using static EdgeQuant.Export.Onnx.OnnxGraphBuilder;
using DataType = EdgeQuant.Formats.Onnx.Proto.TensorProto.Types.DataType;

namespace EdgeQuant.Export.Onnx.Quant;

/// <summary>
/// Dynamic INT8 linear layers, the graph ONNX Runtime's own <c>quantize_dynamic</c> writes for a MatMul:
/// <code>
/// x ─ DynamicQuantizeLinear ─┬ x_q (uint8) ─┐
///                            ├ x_zero_point ┼ MatMulInteger(x_q, W_q [in, out] int8, x_zp, W_zp) → int32 ─ Cast float ─┐
///                            └ x_scale ─ Mul(W_scale) ──────────────────────────────────────────────────── Mul ─ (+ bias) → y
/// </code>
/// Weights are symmetric INT8 (zero points 0) per output channel or per tensor, with ORT's reduce_range option
/// (<see cref="Int8Math.QuantizeWeights"/>); activations are UINT8, one scale per tensor, computed at run time. Layers
/// sharing an input (q/k/v, gate/up) share one DynamicQuantizeLinear. ORT's optimizer fuses the pattern into
/// MatMulIntegerToFloat or DynamicQuantizeMatMul (com.microsoft); the graph itself uses standard ops only. Layers
/// <see cref="Int8DynamicOptions.Layers"/> excludes (by the engine's hook name, so GPT-2's q/k/v go together as
/// attn_qkv, as <see cref="Int8DynamicFakeQuant"/> sees them) return null and stay FP32.
/// </summary>
/// <remarks>
/// Without VNNI, x86 MLAS multiplies u8·s8 with VPMADDUBSW, whose int16 pair sums can saturate for full-range weights;
/// reduce_range (7-bit weights) avoids that at some accuracy cost. The fake-quant engine does not model saturation.
/// </remarks>
public sealed class Int8DynamicLowering : IOnnxLinearLowering
{
    private readonly Int8DynamicOptions _options;
    private readonly List<string> _quantized = [];
    private readonly Dictionary<string, (string Q, string Scale, string ZeroPoint)> _inputs = new(StringComparer.Ordinal);
    private OnnxGraphBuilder? _builder;

    public Int8DynamicLowering(Int8DynamicOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options;
    }

    public string Scheme => "int8-dynamic";

    /// <summary>Layers written as MatMulInteger so far (names as in <see cref="OnnxLinear.Layer"/>), in graph order.</summary>
    public IReadOnlyList<string> QuantizedLayers => _quantized;

    public string? Emit(OnnxGraphBuilder b, OnnxLinear l)
    {
        ArgumentNullException.ThrowIfNull(b);
        ArgumentNullException.ThrowIfNull(l);
        if (!_options.Layers.Includes(l.HookLayer)) return null;
        if (!ReferenceEquals(b, _builder))
        {
            // A new export: quantized inputs of the previous graph mean nothing here.
            _builder = b;
            _inputs.Clear();
            _quantized.Clear();
        }

        QuantizedMatrix q;
        try
        {
            q = Int8Math.QuantizeWeights(l.Rows, l.OutDim, l.InDim, _options.PerChannel, _options.ReduceRange);
        }
        catch (Core.Errors.BadInputException e)
        {
            // NaN/Inf weights (exported with --allow-nonfinite) have no INT8 scale; name the tensor.
            throw new Core.Errors.BadInputException($"tensor '{l.WeightName}': {e.Message}");
        }
        string stem = l.WeightName.EndsWith(".weight", StringComparison.Ordinal) ? l.WeightName[..^".weight".Length] : l.WeightName;
        string w = b.Initializer(stem + ".weight_quantized", DataType.Int8, MemoryMarshal.AsBytes(q.Transposed().AsSpan()), l.InDim, l.OutDim);
        string wScale, wZero;
        if (_options.PerChannel)
        {
            wScale = b.Initializer(stem + ".weight_scale", q.Scales, l.OutDim);
            wZero = b.Initializer(stem + ".weight_zero_point", DataType.Int8, MemoryMarshal.AsBytes(q.ZeroPoints.AsSpan()), l.OutDim);
        }
        else
        {
            wScale = b.Initializer(stem + ".weight_scale", q.Scales);
            wZero = b.Initializer(stem + ".weight_zero_point", DataType.Int8, MemoryMarshal.AsBytes(q.ZeroPoints.AsSpan()));
        }

        if (!_inputs.TryGetValue(l.Input, out var x))
        {
            string stemX = l.HookLayer + "/input";
            x = (b.Fresh(stemX + "_quantized"), b.Fresh(stemX + "_scale"), b.Fresh(stemX + "_zero_point"));
            b.Node("DynamicQuantizeLinear", [l.Input], [x.Q, x.Scale, x.ZeroPoint], stemX + "/DynamicQuantizeLinear");
            _inputs[l.Input] = x;
        }

        string acc = b.Fresh(l.Layer + "/MatMulInteger");
        b.Node("MatMulInteger", [x.Q, w, x.ZeroPoint, wZero], [acc], acc);
        string asFloat = b.Op("Cast", l.Layer, [acc], Attr("to", (long)DataType.Float));
        string scale = b.Op("Mul", l.Layer + "/scale", [x.Scale, wScale]);
        string y = b.Op("Mul", l.Layer + "/dequantize", [asFloat, scale]);
        if (l.Bias is not null) y = b.Op("Add", l.Layer + "/bias", [y, l.Bias]);
        _quantized.Add(l.Layer);
        return y;
    }

    public IEnumerable<KeyValuePair<string, string>> Metadata
    {
        get
        {
            yield return new("edgequant.int8.weights", _options.ReduceRange ? "int8 symmetric, 7-bit range -64..64" : "int8 symmetric, -127..127");
            yield return new("edgequant.int8.per_channel", _options.PerChannel ? "true" : "false");
            yield return new("edgequant.int8.reduce_range", _options.ReduceRange ? "true" : "false");
            yield return new("edgequant.int8.activations", "uint8 asymmetric per tensor, DynamicQuantizeLinear at run time");
            yield return new("edgequant.int8.quantized_layers", _quantized.Count.ToString(CultureInfo.InvariantCulture));
        }
    }
}
