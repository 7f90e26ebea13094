using System.Globalization;
using System.Runtime.InteropServices;
using EdgeQuant.Compression.OnnxQuant;
using static EdgeQuant.Export.Onnx.OnnxGraphBuilder;
using DataType = EdgeQuant.Formats.Onnx.Proto.TensorProto.Types.DataType;

namespace EdgeQuant.Export.Onnx.Quant;

/// <summary>
/// 4-bit weight-only linear layers: one com.microsoft <c>MatMulNBits</c> node per selected layer (ONNX Runtime contrib
/// op, domain version 1) with K, N, bits = 4, block_size and accuracy_level = 0. Inputs A, B [N, blocks, blob] uint8,
/// scales [N · blocks] float, zero_points [N · ⌈blocks / 2⌉] uint8 (asymmetric only; symmetric blocks use the implicit
/// 8), and the bias as input 5 (g_idx left empty), so no separate Add is needed. Excluded layers (see
/// <see cref="LayerSelection"/>, which keeps the LM head float unless asked) return null and stay FP32 MatMuls.
/// </summary>
/// <remarks>
/// accuracy_level 0 makes ORT's CPU kernel compute in float on the dequantized weights (SQNBIT_CompFp32); level 4 would
/// quantize the activations to int8 per block, which <see cref="Int4FakeQuant"/> does not simulate. Quantization is
/// per output row, so the rotate-half permutation of Q/K rows the exporter applies first does not change any block.
/// </remarks>
public sealed class MatMulNBitsLowering : IOnnxLinearLowering
{
    public const string Domain = "com.microsoft";
    public const long AccuracyLevel = 0;

    private readonly Int4WeightOptions _options;
    private bool _imported;

    public MatMulNBitsLowering(Int4WeightOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (!Int4Quantization.BlockSizes.Contains(options.BlockSize))
            throw new Core.Errors.BadInputException($"--block-size: {options.BlockSize} is not one of 32, 64, 128");
        _options = options;
    }

    public string Scheme => "int4-weight";

    /// <summary>Layers written as MatMulNBits so far (hook names), in graph order.</summary>
    public IReadOnlyList<string> QuantizedLayers => _quantized;

    /// <summary>Of those, the layers whose blocks were chosen with the imatrix (the others had no entry: round to nearest).</summary>
    public IReadOnlyList<string> ImportanceLayers => _weighted;

    private readonly List<string> _quantized = [];
    private readonly List<string> _weighted = [];

    public string? Emit(OnnxGraphBuilder b, OnnxLinear l)
    {
        // GPT-2's q/k/v parts are excluded by their own name or by the fused attn_qkv's, as Int4FakeQuant does.
        if (!_options.Layers.Includes(l.Layer) || (l.HookLayer != l.Layer && !_options.Layers.Includes(l.HookLayer))) return null;
        if (!_imported)
        {
            b.ImportDomain(Domain, 1);
            _imported = true;
        }
        var imp = Int4FakeQuant.LayerImportance(_options, l.HookLayer, l.InDim, l.WeightName);
        var q = Int4Quantization.Quantize(l.Rows, l.OutDim, l.InDim, _options.BlockSize, _options.Symmetric, imp, l.WeightName);
        string stem = l.WeightName.EndsWith(".weight", StringComparison.Ordinal) ? l.WeightName[..^".weight".Length] : l.WeightName;
        string data = b.Initializer(stem + ".weight_q4", DataType.Uint8, q.Data, l.OutDim, q.BlocksPerRow, q.BlobSize);
        string scales = b.Initializer(stem + ".weight_scales", q.Scales, (long)l.OutDim * q.BlocksPerRow);
        var inputs = new List<string> { l.Input, data, scales };
        if (q.ZeroPoints is { } zp) inputs.Add(b.Initializer(stem + ".weight_zero_points", DataType.Uint8, zp, (long)l.OutDim * q.ZeroPointBytesPerRow));
        if (l.Bias is not null)
        {
            while (inputs.Count < 5) inputs.Add("");
            inputs.Add(l.Bias);
        }
        string output = b.Fresh(l.Layer + "/MatMulNBits");
        b.Node("MatMulNBits", inputs, [output], output, Domain,
            Attr("K", (long)l.InDim), Attr("N", (long)l.OutDim), Attr("bits", 4L), Attr("block_size", (long)_options.BlockSize),
            Attr("accuracy_level", AccuracyLevel));
        _quantized.Add(l.Layer);
        if (imp is not null) _weighted.Add(l.Layer);
        return output;
    }

    public IEnumerable<KeyValuePair<string, string>> Metadata
    {
        get
        {
            yield return new("edgequant.int4.block_size", _options.BlockSize.ToString(CultureInfo.InvariantCulture));
            yield return new("edgequant.int4.symmetric", _options.Symmetric ? "true" : "false");
            yield return new("edgequant.int4.rounding", _options.Importance is null ? "rtn" : "imatrix");
            yield return new("edgequant.int4.accuracy_level", AccuracyLevel.ToString(CultureInfo.InvariantCulture));
            yield return new("edgequant.int4.quantized_layers", _quantized.Count.ToString(CultureInfo.InvariantCulture));
            if (_options.Importance is { } m)
            {
                yield return new("edgequant.int4.imatrix_sha256", m.ContentSha256);
                yield return new("edgequant.int4.imatrix_layers", _weighted.Count.ToString(CultureInfo.InvariantCulture));
            }
        }
    }
}
