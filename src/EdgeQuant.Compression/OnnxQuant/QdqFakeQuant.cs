using EdgeQuant.Core.Errors;
using EdgeQuant.Models;
using EdgeQuant.Models.Engine;

namespace EdgeQuant.Compression.OnnxQuant;

/// <summary>
/// The static (QDQ) INT8 scheme simulated in the engine, with exactly the numbers <c>QdqLowering</c> writes: weights
/// quantize-dequantized by <see cref="Int8Math.QuantizeWeights"/> (per channel or per tensor), biases rounded to INT32
/// at scale x_scale · w_scale, and a hook replacing each quantized layer's input by QuantizeLinear → DequantizeLinear
/// with the calibrated fixed range.
/// </summary>
public static class QdqFakeQuant
{
    /// <summary>
    /// The fake-quantized model and its activation hook. The result reads unchanged tensors from
    /// <paramref name="model"/>, which must stay open while it is used.
    /// </summary>
    public static FakeQuantization Create(Model model, ActivationRanges ranges, Int8StaticOptions options)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(ranges);
        ArgumentNullException.ThrowIfNull(options);
        var c = model.Config;
        var tensors = new FakeQuantTensors(model);
        var activations = new Dictionary<string, (QuantParams, QuantRange)>(StringComparer.Ordinal);

        foreach (var (hook, weightName) in Linears(model))
        {
            bool fused = hook.EndsWith(".attn_qkv", StringComparison.Ordinal);
            string prefix = hook[..(hook.LastIndexOf('.') + 1)];
            // The exporter splits a fused qkv into three MatMuls; it is quantized as the three parts it becomes.
            (string Layer, int Rows)[] parts = fused
                ? [(prefix + "attn_q", c.HeadCount * c.HeadDim), (prefix + "attn_k", c.HeadCountKv * c.HeadDim), (prefix + "attn_v", c.HeadCountKv * c.HeadDim)]
                : [(hook, -1)];
            if (!parts.All(p => Includes(options.Layers, p.Layer, hook))) continue;

            var range = ranges.Get(hook);
            var (xp, type) = ActivationParams(range, options);
            activations[hook] = (xp, Int8Math.Full(type));

            var source = model.Get(weightName);
            if (source.Shape.Length != 2) throw new BadInputException($"{model.Provenance.SourcePath}: tensor '{weightName}' is not a matrix");
            int outDim = (int)source.Shape[0], inDim = (int)source.Shape[1];
            var w = source.ToFloat32();
            var biasTensor = model.Find(hook + ".bias");
            var bias = biasTensor?.ToFloat32();
            if (fused && parts.Sum(p => p.Rows) != outDim)
                throw new BadInputException($"{model.Provenance.SourcePath}: tensor '{weightName}' has {outDim} rows, not q+k+v = {parts.Sum(p => p.Rows)}");
            int at = 0;
            foreach (var (_, rowsOfPart) in parts)
            {
                int rows = rowsOfPart < 0 ? outDim : rowsOfPart;
                var slice = w.AsSpan(at * inDim, rows * inDim);
                var q = Int8Math.QuantizeWeights(slice, rows, inDim, options.PerChannel, options.ReduceRange);
                q.Dequantize().CopyTo(slice);
                if (bias is not null && QuantizeBias(bias.AsSpan(at, rows), xp.Scale, q) is { } qb)
                    for (int r = 0; r < rows; r++) bias[at + r] = qb[r] * BiasScale(xp.Scale, q, r);
                at += rows;
            }
            // A tied LM head gets its own quantized copy; the embedding table stays float, as in the export.
            if (hook == "output") tensors.ReplaceLmHead(source, w);
            else tensors.Replace(source, w);
            if (biasTensor is not null) tensors.Replace(biasTensor, bias!);
        }
        return new FakeQuantization(tensors.Build(), activations.Count == 0 ? null : new ActivationHook(activations));
    }

    /// <summary>
    /// Whether a linear layer is quantized: selected by <paramref name="layer"/> and by the hook of its input. GPT-2's
    /// fused attn_qkv counts as one unit (its three parts share one input, which is quantized for all or none).
    /// </summary>
    public static bool Includes(LayerSelection selection, string layer, string hookLayer)
    {
        if (!selection.Includes(layer) || !selection.Includes(hookLayer)) return false;
        if (!hookLayer.EndsWith(".attn_qkv", StringComparison.Ordinal) || layer == hookLayer) return true;
        string prefix = hookLayer[..(hookLayer.LastIndexOf('.') + 1)];
        return selection.Includes(prefix + "attn_q") && selection.Includes(prefix + "attn_k") && selection.Includes(prefix + "attn_v");
    }

    /// <summary>
    /// The QuantizeLinear parameters of a calibrated range, ORT's conventions (<see cref="Int8Math.ScaleZeroPoint"/>):
    /// UINT8 0..255 asymmetric, or INT8 −127..127 with zero point 0 when <see cref="Int8StaticOptions.SymmetricActivations"/>.
    /// reduce_range concerns weights only, as in ORT.
    /// </summary>
    public static (QuantParams Params, QuantElement Type) ActivationParams(LayerRange range, Int8StaticOptions options)
    {
        var type = options.SymmetricActivations ? QuantElement.Int8 : QuantElement.UInt8;
        var q = Int8Math.Range(type, options.SymmetricActivations, reduceRange: false);
        return (Int8Math.ScaleZeroPoint(range.RangeMin, range.RangeMax, q, options.SymmetricActivations), type);
    }

    /// <summary>The scale of an INT32 bias element: x_scale · w_scale of its output channel, a float product as ORT's quantizer forms it.</summary>
    public static float BiasScale(float inputScale, QuantizedMatrix w, int row) => inputScale * w.ParamsOfRow(row).Scale;

    /// <summary>
    /// ORT's QDQ bias: round(b / (x_scale · w_scale)) as INT32; null when a value would not fit (the bias then stays a
    /// float Add, in the export and here alike).
    /// </summary>
    public static int[]? QuantizeBias(ReadOnlySpan<float> bias, float inputScale, QuantizedMatrix w)
    {
        var q = new int[bias.Length];
        for (int r = 0; r < bias.Length; r++)
        {
            float v = MathF.Round(bias[r] / BiasScale(inputScale, w, r), MidpointRounding.ToEven);
            if (!(v >= int.MinValue && v <= int.MaxValue)) return null;
            q[r] = (int)v;
        }
        return q;
    }

    /// <summary>(hook name, weight tensor) of every linear layer the model has, the LM head as "output".</summary>
    private static IEnumerable<(string Hook, string Weight)> Linears(Model model)
    {
        string[] kinds = ["attn_qkv", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"];
        for (int l = 0; l < model.Config.BlockCount; l++)
            foreach (var k in kinds)
                if (model.Find($"blk.{l}.{k}.weight") is not null) yield return ($"blk.{l}.{k}", $"blk.{l}.{k}.weight");
        yield return ("output", !model.Config.TiedEmbeddings && model.Find("output.weight") is not null ? "output.weight" : "token_embd.weight");
    }

    private sealed class ActivationHook(Dictionary<string, (QuantParams Params, QuantRange Clip)> layers) : ILinearInputHook
    {
        public void OnInput(string layer, Span<float> input, int rows, int cols)
        {
            if (layers.TryGetValue(layer, out var a)) Int8Math.QuantizeDequantize(input[..(rows * cols)], a.Params, a.Clip);
        }
    }
}
