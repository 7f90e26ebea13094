using System.Runtime.InteropServices;
using EdgeQuant.Core.Tensors;
using EdgeQuant.Models;

namespace EdgeQuant.Export.Tests;

/// <summary>What one layer keeps: KV heads, query heads (of kept KV groups) and FFN channels, as indices of the source.</summary>
internal sealed record LayerSlice(int[] KvHeads, int[] QueryHeads, int[] Channels);

/// <summary>
/// Test-only structured slicer: cuts whole heads and FFN channels out of a Llama model in GGUF canonical layout (Q/K
/// rows interleaved within each head, so a head's rows stay one contiguous block) and returns a model whose config has
/// per-layer widths. Kept query heads must be laid out so that new head i still reads new KV head i / (heads / kv):
/// each kept KV group keeps the same number of query heads, in order.
/// </summary>
internal static class PerLayerSlicer
{
    public static Model Slice(Model source, IReadOnlyList<LayerSlice> layers)
    {
        var c = source.Config;
        Assert.Equal(c.BlockCount, layers.Count);
        int hd = c.HeadDim, d = c.EmbeddingLength, group = c.HeadCount / c.HeadCountKv;
        var tensors = new List<ModelTensor>();
        foreach (var t in source.Tensors)
        {
            if (!t.Name.StartsWith("blk.", StringComparison.Ordinal))
            {
                tensors.Add(F32(t.Name, t.Shape, t.ToFloat32()));
                continue;
            }
            int l = int.Parse(t.Name.AsSpan(4, t.Name.IndexOf('.', 4) - 4));
            var s = layers[l];
            string part = t.Name[(t.Name.IndexOf('.', 4) + 1)..];
            var data = t.ToFloat32();
            var heads = s.QueryHeads;
            int[] qRows = [.. heads.SelectMany(h => Enumerable.Range(h * hd, hd))];
            int[] kvRows = [.. s.KvHeads.SelectMany(g => Enumerable.Range(g * hd, hd))];
            tensors.Add(part switch
            {
                "attn_q.weight" => F32(t.Name, [qRows.Length, d], Rows(data, d, qRows)),
                "attn_k.weight" or "attn_v.weight" => F32(t.Name, [kvRows.Length, d], Rows(data, d, kvRows)),
                "attn_q.bias" => F32(t.Name, [qRows.Length], Rows(data, 1, qRows)),
                "attn_k.bias" or "attn_v.bias" => F32(t.Name, [kvRows.Length], Rows(data, 1, kvRows)),
                "attn_output.weight" => F32(t.Name, [d, qRows.Length], Columns(data, d, (int)t.Shape[1], qRows)),
                "ffn_gate.weight" or "ffn_up.weight" => F32(t.Name, [s.Channels.Length, d], Rows(data, d, s.Channels)),
                "ffn_down.weight" => F32(t.Name, [d, s.Channels.Length], Columns(data, d, (int)t.Shape[1], s.Channels)),
                _ => F32(t.Name, t.Shape, data),
            });
        }
        for (int l = 0; l < layers.Count; l++)
        {
            var s = layers[l];
            int r = s.QueryHeads.Length / s.KvHeads.Length;
            Assert.Equal(s.QueryHeads.Length, r * s.KvHeads.Length);
            // The GQA mapping survives the cut: new query head i belongs to new KV head i / r in the source too.
            for (int i = 0; i < s.QueryHeads.Length; i++) Assert.Equal(s.KvHeads[i / r], s.QueryHeads[i] / group);
        }
        var config = c with
        {
            HeadCount = layers.Max(s => s.QueryHeads.Length),
            HeadCountKv = layers.Max(s => s.KvHeads.Length),
            FeedForwardLength = layers.Max(s => s.Channels.Length),
            LayerHeadCounts = [.. layers.Select(s => s.QueryHeads.Length)],
            LayerHeadCountsKv = [.. layers.Select(s => s.KvHeads.Length)],
            LayerFeedForwardLengths = [.. layers.Select(s => s.Channels.Length)],
        };
        return new Model(config, tensors, source.Tokenizer, source.Provenance with { SourcePath = source.Provenance.SourcePath + "#sliced" });
    }

    private static float[] Rows(float[] data, int cols, int[] rows)
    {
        var dst = new float[rows.Length * cols];
        for (int i = 0; i < rows.Length; i++) data.AsSpan(rows[i] * cols, cols).CopyTo(dst.AsSpan(i * cols, cols));
        return dst;
    }

    private static float[] Columns(float[] data, int rowCount, int cols, int[] keep)
    {
        var dst = new float[rowCount * keep.Length];
        for (int r = 0; r < rowCount; r++)
            for (int j = 0; j < keep.Length; j++) dst[r * keep.Length + j] = data[r * cols + keep[j]];
        return dst;
    }

    private static ModelTensor F32(string name, long[] shape, float[] values) => new()
    {
        Name = name,
        SourceName = name,
        Shape = shape,
        Type = TensorType.F32,
        Storage = new ArrayTensorStorage(MemoryMarshal.AsBytes(values.AsSpan()).ToArray()),
    };
}
