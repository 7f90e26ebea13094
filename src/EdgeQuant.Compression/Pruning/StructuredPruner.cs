using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using EdgeQuant.Core.Errors;
using EdgeQuant.Core.Tensors;
using EdgeQuant.Models;

namespace EdgeQuant.Compression.Pruning;

/// <summary>
/// Structured pruning: removes KV-head groups (a key/value head and the query heads that share it), FFN channels and
/// whole blocks from a model, giving a smaller dense model with a consistent <see cref="ModelConfig"/>.
/// </summary>
/// <remarks>
/// Tensors are in the canonical (GGUF) layout, where the rows of one head are contiguous in attn_q/attn_k/attn_v
/// (llama.cpp's Q/K permutation for interleaved RoPE only reorders rows inside each head; rotate-half models are not
/// permuted at all), so a head is the row range [h·head_dim, (h+1)·head_dim). GPT-2's fused attn_qkv stacks Q, K and V
/// along the rows, each laid out the same way. attn_output columns follow the query heads, ffn_down columns the FFN
/// channels; the biases that live on pruned outputs (q/k/v, qkv, gate/up) are sliced with them, while attn_output.bias
/// and ffn_down.bias live on the residual stream and stay. Removed blocks' tensors are dropped and the later blocks
/// renumbered (blk.N).
/// </remarks>
public static class StructuredPruner
{
    private static readonly Regex BlockTensor = new(@"^blk\.(\d+)\.(.+)$", RegexOptions.CultureInvariant);

    /// <summary>The pruned model. Unchanged tensors share storage with <paramref name="model"/>: keep it open while the result is used.</summary>
    public static Model Apply(Model model, StructuredPlan plan)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(plan);
        var layout = Layout(model, plan);
        var tensors = layout.Select(Materialize).ToList();
        return new Model(PrunedConfig(model.Config, plan), tensors, model.Tokenizer, model.Provenance, model.Metadata);
    }

    /// <summary>Parameters (tensor elements) the pruned model will have, computed without building it.</summary>
    public static long ParameterCount(Model model, StructuredPlan plan)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(plan);
        return Layout(model, plan).Sum(s => s.Elements);
    }

    /// <summary>The config of the pruned model: standard widths when every kept block has the same, per-layer lists otherwise.</summary>
    public static ModelConfig PrunedConfig(ModelConfig c, StructuredPlan plan)
    {
        ArgumentNullException.ThrowIfNull(c);
        plan.Validate(c, "structured plan");
        var heads = new List<int>();
        var kv = new List<int>();
        var ff = new List<int>();
        for (int l = 0; l < plan.Layers.Count; l++)
        {
            var p = plan.Layers[l];
            if (!p.Keep) continue;
            int ratio = c.HeadsIn(l) / c.KvHeadsIn(l);
            heads.Add(p.KvGroups.Length * ratio);
            kv.Add(p.KvGroups.Length);
            ff.Add(p.Channels.Length);
        }
        bool uniform = heads.Distinct().Count() == 1 && kv.Distinct().Count() == 1 && ff.Distinct().Count() == 1;
        return c with
        {
            BlockCount = heads.Count,
            HeadCount = heads.Max(),
            HeadCountKv = kv.Max(),
            FeedForwardLength = ff.Max(),
            // Head size is a property of the heads, not of n_embd / n_head once heads are gone: keep it explicit.
            HeadDim = c.HeadDim,
            LayerHeadCounts = uniform ? null : heads.ToArray(),
            LayerHeadCountsKv = uniform ? null : kv.ToArray(),
            LayerFeedForwardLengths = uniform ? null : ff.ToArray(),
        };
    }

    /// <summary>One output tensor: its source, new name, and the source rows/columns it keeps (null = all).</summary>
    private sealed record Slice(ModelTensor Source, string Name, int[]? Rows, int[]? Columns)
    {
        public long Elements
        {
            get
            {
                var s = Source.Shape;
                if (s.Length == 1) return Rows?.Length ?? s[0];
                if (s.Length == 2) return (long)(Rows?.Length ?? s[0]) * (Columns?.Length ?? s[1]);
                return Source.ElementCount;
            }
        }
    }

    private static List<Slice> Layout(Model model, StructuredPlan plan)
    {
        var c = model.Config;
        string src = model.Provenance.SourcePath;
        plan.Validate(c, src);
        var newIndex = new int[plan.Layers.Count];
        for (int l = 0, n = 0; l < newIndex.Length; l++) newIndex[l] = plan.Layers[l].Keep ? n++ : -1;

        var slices = new List<Slice>(model.Tensors.Count);
        foreach (var t in model.Tensors)
        {
            var m = BlockTensor.Match(t.Name);
            if (!m.Success)
            {
                slices.Add(new Slice(t, t.Name, null, null));
                continue;
            }
            if (!int.TryParse(m.Groups[1].ValueSpan, out int layer) || layer < 0 || layer >= c.BlockCount)
                throw new BadInputException($"{src}: tensor '{t.Name}' names a block outside 0..{c.BlockCount - 1}");
            var p = plan.Layers[layer];
            if (!p.Keep) continue;
            string part = m.Groups[2].Value, name = $"blk.{newIndex[layer]}.{part}";
            int hd = c.HeadDim, ratio = c.HeadsIn(layer) / c.KvHeadsIn(layer);
            int heads = c.HeadsIn(layer), kvHeads = c.KvHeadsIn(layer), ff = c.FeedForwardIn(layer);
            bool fullHeads = p.KvGroups.Length == kvHeads, fullFfn = p.Channels.Length == ff;
            int[] qRows = HeadRows(p.KvGroups.SelectMany(g => Enumerable.Range(g * ratio, ratio)), hd, 0);
            int[] kvRows = HeadRows(p.KvGroups, hd, 0);
            string kind = part.EndsWith(".weight", StringComparison.Ordinal) ? part[..^7] : part.EndsWith(".bias", StringComparison.Ordinal) ? part[..^5] : part;
            bool isWeight = part.EndsWith(".weight", StringComparison.Ordinal);
            Slice s = kind switch
            {
                "attn_q" => Rows(t, name, fullHeads ? null : qRows, (long)heads * hd, src),
                "attn_k" or "attn_v" => Rows(t, name, fullHeads ? null : kvRows, (long)kvHeads * hd, src),
                "attn_qkv" => Rows(t, name, fullHeads ? null : [.. qRows, .. kvRows.Select(r => r + heads * hd), .. kvRows.Select(r => r + (heads + kvHeads) * hd)],
                    (long)(heads + 2 * kvHeads) * hd, src),
                "attn_output" when isWeight => Columns(t, name, fullHeads ? null : qRows, (long)heads * hd, src),
                "ffn_gate" or "ffn_up" => Rows(t, name, fullFfn ? null : p.Channels, ff, src),
                "ffn_down" when isWeight => Columns(t, name, fullFfn ? null : p.Channels, ff, src),
                // On the residual stream (norms, attn_output.bias, ffn_down.bias): unchanged.
                "attn_norm" or "ffn_norm" or "attn_output" or "ffn_down" => new Slice(t, name, null, null),
                _ when fullHeads && fullFfn => new Slice(t, name, null, null),
                _ => throw new BadInputException($"{src}: tensor '{t.Name}' is not one structured pruning knows how to narrow; prune layer {layer} whole or not at all"),
            };
            slices.Add(s);
        }
        return slices;
    }

    private static int[] HeadRows(IEnumerable<int> heads, int headDim, int offset) =>
        heads.SelectMany(h => Enumerable.Range(offset + h * headDim, headDim)).ToArray();

    private static Slice Rows(ModelTensor t, string name, int[]? rows, long expected, string src)
    {
        if (t.Shape.Length is < 1 or > 2 || t.Shape[0] != expected)
            throw new BadInputException($"{src}: tensor '{t.Name}' has shape [{string.Join(", ", t.Shape)}], expected {expected} rows");
        return new Slice(t, name, rows, null);
    }

    private static Slice Columns(ModelTensor t, string name, int[]? columns, long expected, string src)
    {
        if (t.Shape.Length != 2 || t.Shape[1] != expected)
            throw new BadInputException($"{src}: tensor '{t.Name}' has shape [{string.Join(", ", t.Shape)}], expected {expected} columns");
        return new Slice(t, name, null, columns);
    }

    private static ModelTensor Materialize(Slice s)
    {
        var t = s.Source;
        if (s.Rows is null && s.Columns is null)
            return s.Name == t.Name ? t : new ModelTensor { Name = s.Name, Shape = t.Shape, Type = t.Type, SourceName = t.SourceName, Storage = t.Storage, Transform = t.Transform };

        long rows = t.Shape[0], cols = t.Shape.Length == 2 ? t.Shape[1] : 1;
        var info = TensorTypes.Get(t.Type);
        int[] keepRows = s.Rows ?? Enumerable.Range(0, checked((int)rows)).ToArray();
        long[] shape = t.Shape.Length == 1 ? [keepRows.Length] : [keepRows.Length, s.Columns?.Length ?? cols];
        byte[] bytes;
        TensorType type = t.Type;
        if (info.BlockSize == 1 || s.Columns is null)
        {
            // Plain types slice element by element; quantized rows are whole blocks, so row slicing keeps them as they are.
            var raw = t.RawBytes();
            long rowBytes = TensorTypes.ByteSize(t.Type, cols) ?? throw new InternalFailureException($"{t.Name}: rows of {cols} are not whole {t.Type} blocks");
            int eb = info.BlockBytes;
            long outRowBytes = s.Columns is null ? rowBytes : (long)s.Columns.Length * eb;
            bytes = new byte[checked(keepRows.Length * outRowBytes)];
            for (int i = 0; i < keepRows.Length; i++)
            {
                var srcRow = raw.Slice(checked((int)(keepRows[i] * rowBytes)), (int)rowBytes);
                var dst = bytes.AsSpan((int)(i * outRowBytes), (int)outRowBytes);
                if (s.Columns is null) srcRow.CopyTo(dst);
                else
                    for (int j = 0; j < s.Columns.Length; j++) srcRow.Slice(s.Columns[j] * eb, eb).CopyTo(dst.Slice(j * eb, eb));
            }
        }
        else
        {
            // Quantized blocks cannot be cut inside: dequantize and keep the narrowed matrix in F32.
            var w = t.ToFloat32();
            var outW = new float[checked(keepRows.Length * s.Columns.Length)];
            for (int i = 0; i < keepRows.Length; i++)
                for (int j = 0; j < s.Columns.Length; j++) outW[i * s.Columns.Length + j] = w[keepRows[i] * cols + s.Columns[j]];
            bytes = MemoryMarshal.AsBytes(outW.AsSpan()).ToArray();
            type = TensorType.F32;
        }
        return new ModelTensor { Name = s.Name, Shape = shape, Type = type, SourceName = t.SourceName, Storage = new ArrayTensorStorage(bytes) };
    }
}
