using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using EdgeQuant.Core.Errors;
using EdgeQuant.Core.Tensors;
using EdgeQuant.Models;
using EdgeQuant.Models.Engine;

namespace EdgeQuant.Compression.OnnxQuant;

/// <summary>
/// The dynamic INT8 scheme simulated in the engine, as <c>Int8DynamicLowering</c> exports it: each selected linear
/// weight is replaced by its dequantized INT8 copy (<see cref="Int8Math.QuantizeWeights"/>: symmetric, per channel or
/// per tensor, reduce_range), and a hook replaces each selected layer's input by DynamicQuantizeLinear's dequantized
/// UINT8 values (<see cref="Int8Math.DynamicQuantizeDequantize"/>, one scale per call).
/// </summary>
/// <remarks>
/// <para>
/// One hook call is one micro-batch, and DynamicQuantizeLinear takes its range over the whole tensor it is given, so
/// the two agree when ORT runs the same tokens as one batch (a perplexity chunk of up to <c>EngineOptions.MaxBatch</c>
/// tokens fed in one call, or one token at a time when decoding). Feeding ORT a different split changes the ranges.
/// </para>
/// <para>
/// Layers are selected by the engine's hook names, so GPT-2's fused <c>attn_qkv</c> is one layer here and in the
/// lowering (which selects by <c>OnnxLinear.HookLayer</c>). Per-tensor weights of a fused attn_qkv are quantized as
/// three tensors q | k | v, as the exporter splits them. The LM head (<c>output</c>, off by default) is hooked on the
/// rows whose logits were requested only, while ORT quantizes all positions' rows together: with the head included,
/// the two agree only when every position's logits are requested.
/// </para>
/// </remarks>
public static partial class Int8DynamicFakeQuant
{
    [GeneratedRegex(@"^blk\.\d+\.(attn_q|attn_k|attn_v|attn_output|attn_qkv|ffn_gate|ffn_up|ffn_down)$", RegexOptions.CultureInvariant)]
    private static partial Regex LinearLayer();

    /// <summary>The model's linear layers by the engine's hook names (GPT-2: <c>blk.N.attn_qkv</c>), then <c>output</c>.</summary>
    public static IReadOnlyList<string> HookLayers(Model model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var layers = new List<string>();
        foreach (var t in model.Tensors)
            if (t.Shape.Length == 2 && t.Name.EndsWith(".weight", StringComparison.Ordinal) && LinearLayer().IsMatch(t.Name[..^".weight".Length]))
                layers.Add(t.Name[..^".weight".Length]);
        layers.Add("output");
        return layers;
    }

    public static FakeQuantization Create(Model model, Int8DynamicOptions options)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        string src = model.Provenance.SourcePath;
        var sel = options.Layers;
        var all = HookLayers(model);
        sel.Validate(all);
        var c = model.Config;

        var tensors = new FakeQuantTensors(model);
        foreach (var t in model.Tensors)
        {
            if (t.Shape.Length != 2 || !t.Name.EndsWith(".weight", StringComparison.Ordinal)) continue;
            string layer = t.Name[..^".weight".Length];
            if (!LinearLayer().IsMatch(layer) || !sel.Includes(layer)) continue;
            if (t.Shape[0] > int.MaxValue || t.Shape[1] > int.MaxValue || t.ElementCount > Array.MaxLength)
                throw new BadInputException($"{src}: tensor '{t.Name}' [{t.Shape[0]}, {t.Shape[1]}] is too large to quantize in memory");
            int rows = (int)t.Shape[0], cols = (int)t.Shape[1];
            var w = t.ToFloat32();
            if (layer.EndsWith(".attn_qkv", StringComparison.Ordinal) && !options.PerChannel)
            {
                // GPT-2 (n_head_kv = n_head): the exporter writes q, k, v as three tensors, each with its own scale.
                if (rows % 3 != 0) throw new BadInputException($"{src}: tensor '{t.Name}' has {rows} rows, not q | k | v of equal size");
                int part = rows / 3;
                for (int i = 0; i < 3; i++)
                    Quantize(w.AsSpan(i * part * cols, part * cols), part, cols, options, t.Name, src);
            }
            else Quantize(w, rows, cols, options, t.Name, src);
            tensors.Replace(t, w);
        }

        if (sel.Includes("output"))
        {
            var source = tensors.LmHeadSource();
            var w = source.ToFloat32();
            Quantize(w, c.VocabSize, c.EmbeddingLength, options, source.Name + " (LM head)", src);
            tensors.ReplaceLmHead(source, w);
        }

        var hooked = all.Where(sel.Includes).ToHashSet(StringComparer.Ordinal);
        return new FakeQuantization(tensors.Build(), new InputHook(hooked));
    }

    /// <summary>Replaces <paramref name="w"/> ([rows, cols]) by its dequantized INT8 values.</summary>
    private static void Quantize(Span<float> w, int rows, int cols, Int8DynamicOptions options, string tensor, string src)
    {
        QuantizedMatrix q;
        try
        {
            q = Int8Math.QuantizeWeights(w, rows, cols, options.PerChannel, options.ReduceRange);
        }
        catch (BadInputException e)
        {
            throw new BadInputException($"{src}: tensor '{tensor}': {e.Message}");
        }
        q.Dequantize().CopyTo(w);
    }

    /// <summary>DynamicQuantizeLinear + dequantize on each selected layer's input, one range per call (micro-batch).</summary>
    private sealed class InputHook(HashSet<string> layers) : ILinearInputHook
    {
        public void OnInput(string layer, Span<float> input, int rows, int cols)
        {
            bool include = layers.Contains(layer);
            if (include) Int8Math.DynamicQuantizeDequantize(input[..(rows * cols)]);
        }
    }
}
