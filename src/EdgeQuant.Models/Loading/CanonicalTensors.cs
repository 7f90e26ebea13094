using EdgeQuant.Core.Errors;

namespace EdgeQuant.Models.Loading;

/// <summary>
/// The canonical tensor set of each architecture: llama.cpp's GGUF names with row-major shapes ([out, in] for
/// weights), in the order llama.cpp's converters write them. Loaders check shapes against it; writers enumerate it.
/// </summary>
public static class CanonicalTensors
{
    /// <summary>
    /// Checks a config's per-layer widths (<see cref="ModelConfig.LayerHeadCounts"/> and its siblings): one positive
    /// entry per block, query heads a multiple of KV heads in every layer, Llama family only (llama.cpp runs such a model
    /// as its <c>deci</c> architecture; qwen2 and gpt2 have no per-layer form). Shapes then follow layer by layer.
    /// </summary>
    /// <exception cref="BadInputException">Naming <paramref name="source"/>, the field and the layer.</exception>
    public static void CheckLayerWidths(ModelConfig c, string source)
    {
        if (!c.HasPerLayerWidths) return;
        if (c.Architecture != Architecture.Llama)
            throw new BadInputException(
                $"{source}: per-layer head counts or FFN widths are supported for the Llama family only, not {c.Architecture} (llama.cpp runs them as 'deci')");
        void Length(int[]? a, string field)
        {
            if (a is not null && a.Length != c.BlockCount)
                throw new BadInputException($"{source}: model config {field} has {a.Length} entries for {c.BlockCount} layers");
        }
        Length(c.LayerHeadCounts, "per-layer n_head");
        Length(c.LayerHeadCountsKv, "per-layer n_head_kv");
        Length(c.LayerFeedForwardLengths, "per-layer n_ff");
        for (int l = 0; l < c.BlockCount; l++)
        {
            int h = c.HeadsIn(l), kv = c.KvHeadsIn(l), f = c.FeedForwardIn(l);
            string? problem = h <= 0 ? $"n_head {h}" : kv <= 0 ? $"n_head_kv {kv}" : h % kv != 0 ? $"n_head {h} is not a multiple of n_head_kv {kv}"
                : f <= 0 ? $"n_ff {f}" : null;
            if (problem is not null)
                throw new BadInputException($"{source}: model config layer {l}: {problem} is not usable (every layer needs attention heads and an FFN)");
        }
    }

    /// <summary>Every tensor a model of this config has. <paramref name="includeOutput"/>: whether a separate output matrix is listed.</summary>
    public static IEnumerable<(string Name, long[] Shape)> Enumerate(ModelConfig c, bool includeOutput)
    {
        long e = c.EmbeddingLength, v = c.VocabSize;
        yield return ("token_embd.weight", [v, e]);
        if (c.Architecture == Architecture.Gpt2) yield return ("position_embd.weight", [c.ContextLength, e]);
        yield return ("output_norm.weight", [e]);
        if (c.Architecture == Architecture.Gpt2) yield return ("output_norm.bias", [e]);
        if (includeOutput) yield return ("output.weight", [v, e]);
        for (int i = 0; i < c.BlockCount; i++)
        {
            var p = $"blk.{i}.";
            long f = c.FeedForwardIn(i);
            if (c.Architecture == Architecture.Gpt2)
            {
                yield return (p + "attn_norm.weight", [e]);
                yield return (p + "attn_norm.bias", [e]);
                yield return (p + "attn_qkv.weight", [3 * e, e]);
                yield return (p + "attn_qkv.bias", [3 * e]);
                yield return (p + "attn_output.weight", [e, e]);
                yield return (p + "attn_output.bias", [e]);
                yield return (p + "ffn_norm.weight", [e]);
                yield return (p + "ffn_norm.bias", [e]);
                yield return (p + "ffn_up.weight", [f, e]);
                yield return (p + "ffn_up.bias", [f]);
                yield return (p + "ffn_down.weight", [e, f]);
                yield return (p + "ffn_down.bias", [e]);
                continue;
            }
            long q = (long)c.HeadsIn(i) * c.HeadDim, kv = (long)c.KvHeadsIn(i) * c.HeadDim;
            yield return (p + "attn_norm.weight", [e]);
            yield return (p + "attn_q.weight", [q, e]);
            if (c.AttentionBias) yield return (p + "attn_q.bias", [q]);
            yield return (p + "attn_k.weight", [kv, e]);
            if (c.AttentionBias) yield return (p + "attn_k.bias", [kv]);
            yield return (p + "attn_v.weight", [kv, e]);
            if (c.AttentionBias) yield return (p + "attn_v.bias", [kv]);
            yield return (p + "attn_output.weight", [e, q]);
            // Llama's attention_bias also gives o_proj a bias; Qwen2 has q/k/v biases only.
            if (c.AttentionBias && c.Architecture == Architecture.Llama) yield return (p + "attn_output.bias", [e]);
            yield return (p + "ffn_norm.weight", [e]);
            yield return (p + "ffn_gate.weight", [f, e]);
            yield return (p + "ffn_up.weight", [f, e]);
            yield return (p + "ffn_down.weight", [e, f]);
        }
    }

    /// <summary>The shape a tensor of this name must have, or null when the architecture has no such tensor.</summary>
    public static long[]? ExpectedShape(ModelConfig c, string name)
    {
        if (!name.StartsWith("blk.", StringComparison.Ordinal))
            return name switch
            {
                "token_embd.weight" or "output.weight" => [c.VocabSize, c.EmbeddingLength],
                "output_norm.weight" => [c.EmbeddingLength],
                "output_norm.bias" when c.Architecture == Architecture.Gpt2 => [c.EmbeddingLength],
                "position_embd.weight" when c.Architecture == Architecture.Gpt2 => [c.ContextLength, c.EmbeddingLength],
                _ => null,
            };
        int dot = name.IndexOf('.', 4);
        if (dot < 0 || !int.TryParse(name.AsSpan(4, dot - 4), out int layer) || layer < 0 || layer >= c.BlockCount) return null;
        string part = name[(dot + 1)..];
        long e = c.EmbeddingLength, f = c.FeedForwardIn(layer);
        if (c.Architecture == Architecture.Gpt2)
            return part switch
            {
                "attn_norm.weight" or "attn_norm.bias" or "ffn_norm.weight" or "ffn_norm.bias" or "attn_output.bias" or "ffn_down.bias" => [e],
                "attn_qkv.weight" => [3 * e, e],
                "attn_qkv.bias" => [3 * e],
                "attn_output.weight" => [e, e],
                "ffn_up.weight" => [f, e],
                "ffn_up.bias" => [f],
                "ffn_down.weight" => [e, f],
                _ => null,
            };
        long q = (long)c.HeadsIn(layer) * c.HeadDim, kv = (long)c.KvHeadsIn(layer) * c.HeadDim;
        return part switch
        {
            "attn_norm.weight" or "ffn_norm.weight" or "attn_output.bias" or "ffn_down.bias" => [e],
            "attn_q.weight" => [q, e],
            "attn_q.bias" => [q],
            "attn_k.weight" or "attn_v.weight" => [kv, e],
            "attn_k.bias" or "attn_v.bias" => [kv],
            "attn_output.weight" => [e, q],
            "ffn_gate.weight" or "ffn_up.weight" => [f, e],
            "ffn_gate.bias" or "ffn_up.bias" => [f],
            "ffn_down.weight" => [e, f],
            _ => null,
        };
    }
}
