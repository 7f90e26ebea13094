using System.Text.RegularExpressions;
using EdgeQuant.Core.Errors;
using EdgeQuant.Models;

namespace EdgeQuant.Compression.OnnxQuant;

/// <summary>
/// The 4-bit weight-only scheme simulated in the engine: every selected linear weight is replaced by its
/// quantize-dequantized copy (<see cref="Int4Quantization"/>, the same codes <c>MatMulNBitsLowering</c> writes), and
/// activations stay float. That is what ORT's CPU MatMulNBits computes with accuracy_level 0 (unset) or 1: its
/// SQNBIT_CompFp32 path dequantizes B to float and multiplies in float; only accuracy_level 4 (SQNBIT_CompInt8)
/// would quantize A to int8 per block, which the lowering never asks for.
/// </summary>
public static partial class Int4FakeQuant
{
    [GeneratedRegex(@"^blk\.\d+\.(attn_q|attn_k|attn_v|attn_output|attn_qkv|ffn_gate|ffn_up|ffn_down)$", RegexOptions.CultureInvariant)]
    private static partial Regex LinearLayer();

    /// <summary>The model's linear layers by hook name (<c>blk.N.attn_q</c>, …, <c>output</c>), as the exporter meets them.</summary>
    public static IReadOnlyList<string> LinearLayers(Model model)
    {
        var layers = new List<string>();
        foreach (var t in model.Tensors)
        {
            if (!t.Name.EndsWith(".weight", StringComparison.Ordinal) || t.Shape.Length != 2) continue;
            string layer = t.Name[..^".weight".Length];
            if (!LinearLayer().IsMatch(layer)) continue;
            if (layer.EndsWith(".attn_qkv", StringComparison.Ordinal))
            {
                // GPT-2's fused projection is exported as three layers; --exclude may name the parts or the whole.
                string p = layer[..^"attn_qkv".Length];
                layers.AddRange([layer, p + "attn_q", p + "attn_k", p + "attn_v"]);
            }
            else layers.Add(layer);
        }
        layers.Add("output");
        return layers;
    }

    public static FakeQuantization Create(Model model, Int4WeightOptions options)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        string src = model.Provenance.SourcePath;
        if (!Int4Quantization.BlockSizes.Contains(options.BlockSize))
            throw new BadInputException($"--block-size: {options.BlockSize} is not one of 32, 64, 128");
        var sel = options.Layers;
        sel.Validate(LinearLayers(model));
        var c = model.Config;

        var tensors = new FakeQuantTensors(model);
        foreach (var t in model.Tensors)
        {
            if (!t.Name.EndsWith(".weight", StringComparison.Ordinal) || t.Shape.Length != 2) continue;
            string layer = t.Name[..^".weight".Length];
            if (!LinearLayer().IsMatch(layer)) continue;
            int rows = checked((int)t.Shape[0]), cols = checked((int)t.Shape[1]);
            var w = t.ToFloat32();
            var imp = LayerImportance(options, layer, cols, src);
            bool any = false;
            if (layer.EndsWith(".attn_qkv", StringComparison.Ordinal))
            {
                // Rows q | k | v, each part selected on its own as the exporter splits them; per-row blocks make the
                // parts independent.
                string p = layer[..^"attn_qkv".Length];
                int q = c.HeadCount * c.HeadDim, kv = c.HeadCountKv * c.HeadDim;
                if (q + 2 * kv != rows) throw new BadInputException($"{src}: tensor '{t.Name}' has {rows} rows, expected {q + 2 * kv}");
                foreach (var (name, start, count) in new[] { (p + "attn_q", 0, q), (p + "attn_k", q, kv), (p + "attn_v", q + kv, kv) })
                {
                    if (!sel.Includes(name) || !sel.Includes(layer)) continue;
                    var part = w.AsSpan(start * cols, count * cols).ToArray();
                    Int4Quantization.QuantizeDequantize(part, count, cols, options.BlockSize, options.Symmetric, imp, $"{src}: tensor '{t.Name}'")
                        .CopyTo(w.AsSpan(start * cols));
                    any = true;
                }
            }
            else if (sel.Includes(layer))
            {
                w = Int4Quantization.QuantizeDequantize(w, rows, cols, options.BlockSize, options.Symmetric, imp, $"{src}: tensor '{t.Name}'");
                any = true;
            }
            if (any) tensors.Replace(t, w);
        }

        if (sel.Includes("output"))
        {
            var source = tensors.LmHeadSource();
            var w = Int4Quantization.QuantizeDequantize(source.ToFloat32(), c.VocabSize, c.EmbeddingLength, options.BlockSize, options.Symmetric,
                LayerImportance(options, "output", c.EmbeddingLength, src), $"{src}: tensor '{source.Name}' (LM head)");
            tensors.ReplaceLmHead(source, w);
        }

        return new FakeQuantization(tensors.Build(), null);
    }

    /// <summary>The imatrix values for a layer's weight (GPT-2's split q/k/v share attn_qkv's); null: round to nearest.</summary>
    public static float[]? LayerImportance(Int4WeightOptions options, string hookLayer, int columns, string src)
    {
        if (options.Importance is not { } m) return null;
        var imp = m.ImportanceFor(hookLayer + ".weight");
        if (imp is not null && imp.Length != columns)
            throw new BadInputException($"{src}: the importance matrix entry '{hookLayer}.weight' has {imp.Length} values, the layer has {columns} inputs");
        return imp;
    }
}
