using EdgeQuant.Core.Errors;
using EdgeQuant.Core.Kernels;

namespace EdgeQuant.Models.Engine;

/// <summary>How the query/key rows are laid out for rotary embeddings (GGUF's conventions, per architecture).</summary>
internal enum RopeStyle
{
    /// <summary>No rotary embedding (GPT-2: learned positions).</summary>
    None,

    /// <summary>Pairs (2i, 2i+1) rotate together: llama.cpp's LLAMA_ROPE_TYPE_NORM, used by GGUF Llama after the Q/K permutation.</summary>
    Interleaved,

    /// <summary>Pairs (i, i + d/2) rotate together: HF's rotate_half, llama.cpp's LLAMA_ROPE_TYPE_NEOX (Qwen2 keeps it in GGUF).</summary>
    RotateHalf,
}

/// <summary>
/// A linear layer y = x·Wᵀ + b. W [Out, In] is packed once into the GEMM's panel layout (the only copy kept), since
/// every forward pass re-reads it.
/// </summary>
internal sealed class LinearWeight(string name, PackedMatrix weight, float[]? bias, Core.Tensors.TensorType storedType = Core.Tensors.TensorType.F32)
{
    /// <summary>The weight's type in the model file (before expansion to F32): picks EngineOptions.ActivationRounding's target.</summary>
    public Core.Tensors.TensorType StoredType { get; } = storedType;

    /// <summary>Set at engine load when <see cref="EngineOptions.ActivationRounding"/> applies: the type inputs are rounded to.</summary>
    public Core.Tensors.TensorType? RoundInputTo { get; set; }

    /// <summary>Hook name: the GGUF tensor name without ".weight".</summary>
    public string Name { get; } = name;
    public int Out => Weight.N;
    public int In => Weight.K;
    public PackedMatrix Weight { get; } = weight;
    public float[]? Bias { get; } = bias;
}

internal sealed class NormWeight(float[] weight, float[]? bias)
{
    public float[] Weight { get; } = weight;
    public float[]? Bias { get; } = bias;
}

internal sealed class BlockWeights
{
    /// <summary>This layer's query heads, KV heads and FFN width (they differ between layers of a structurally pruned model).</summary>
    public required int Heads { get; init; }
    public required int KvHeads { get; init; }
    public required int FeedForward { get; init; }

    public required int QDim { get; init; }
    public required int KvDim { get; init; }

    public required NormWeight AttnNorm { get; init; }

    /// <summary>Fused q|k|v projection (GPT-2's c_attn, or any GGUF with attn_qkv); null when q, k, v are separate.</summary>
    public LinearWeight? Qkv { get; init; }
    public LinearWeight? Q { get; init; }
    public LinearWeight? K { get; init; }
    public LinearWeight? V { get; init; }
    public required LinearWeight O { get; init; }
    public required NormWeight FfnNorm { get; init; }

    /// <summary>SwiGLU gate; null for GPT-2's GELU MLP.</summary>
    public LinearWeight? Gate { get; init; }
    public required LinearWeight Up { get; init; }
    public required LinearWeight Down { get; init; }
}

/// <summary>
/// Every weight of a model, expanded to F32 once at load.
/// </summary>
/// <remarks>
/// Why F32 and not F16 converted on the fly: this engine is the reference every accuracy figure is measured with, so
/// F32 weights keep it bit-comparable with llama.cpp on F32 models, and prefill is compute-bound (a GEMM re-reads each
/// weight panel n/row-block times, so converting on the fly would redo the conversion per panel visit). F16 on the fly
/// would halve bandwidth for single-token decoding only, which no accuracy path depends on.
/// </remarks>
internal sealed class EngineWeights
{
    public required ModelConfig Config { get; init; }
    public required string Source { get; init; }
    public required RopeStyle Rope { get; init; }
    public required bool LayerNorm { get; init; }
    public required float[] TokenEmbedding { get; init; }
    public float[]? PositionEmbedding { get; init; }
    public int PositionCount { get; init; }
    public required BlockWeights[] Blocks { get; init; }
    public required NormWeight OutputNorm { get; init; }
    public required LinearWeight Output { get; init; }

    /// <summary>Every linear layer, in execution order.</summary>
    public IEnumerable<LinearWeight> Linears()
    {
        foreach (var b in Blocks)
        {
            foreach (var w in new[] { b.Qkv, b.Q, b.K, b.V, b.O, b.Gate, b.Up, b.Down })
                if (w is not null) yield return w;
        }
        yield return Output;
    }

    /// <summary>The widest layer's q, kv and FFN widths (scratch buffers are sized by them; equal to every layer's when uniform).</summary>
    public int MaxQDim => Blocks.Max(b => b.QDim);
    public int MaxKvDim => Blocks.Max(b => b.KvDim);
    public int MaxFeedForward => Blocks.Max(b => b.FeedForward);

    public static EngineWeights Load(Model model, int threads, CancellationToken ct)
    {
        var c = model.Config;
        var src = model.Provenance.SourcePath;
        ValidateConfig(c, src);
        bool gpt2 = c.Architecture == Architecture.Gpt2;
        int d = c.EmbeddingLength;

        var tokenEmbd = Read(model, "token_embd.weight", [c.VocabSize, d]);
        float[]? posEmbd = null;
        int posCount = 0;
        if (gpt2)
        {
            var t = model.Get("position_embd.weight");
            if (t.Shape.Length != 2 || t.Shape[1] != d || t.Shape[0] < 1 || t.Shape[0] > int.MaxValue)
                throw Shape(src, t, $"[n_ctx, {d}]");
            posCount = (int)t.Shape[0];
            posEmbd = t.ToFloat32();
        }

        var blocks = new BlockWeights[c.BlockCount];
        for (int l = 0; l < c.BlockCount; l++)
        {
            ct.ThrowIfCancellationRequested();
            string p = $"blk.{l}.";
            bool fused = model.Find(p + "attn_qkv.weight") is not null;
            int heads = c.HeadsIn(l), kvHeads = c.KvHeadsIn(l), ff = c.FeedForwardIn(l);
            int qDim = heads * c.HeadDim, kvDim = kvHeads * c.HeadDim;
            blocks[l] = new BlockWeights
            {
                Heads = heads,
                KvHeads = kvHeads,
                FeedForward = ff,
                QDim = qDim,
                KvDim = kvDim,
                AttnNorm = Norm(model, p + "attn_norm", d, gpt2),
                Qkv = fused ? Linear(model, threads, p + "attn_qkv", qDim + 2 * kvDim, d) : null,
                Q = fused ? null : Linear(model, threads, p + "attn_q", qDim, d),
                K = fused ? null : Linear(model, threads, p + "attn_k", kvDim, d),
                V = fused ? null : Linear(model, threads, p + "attn_v", kvDim, d),
                O = Linear(model, threads, p + "attn_output", d, qDim),
                FfnNorm = Norm(model, p + "ffn_norm", d, gpt2),
                Gate = gpt2 ? null : Linear(model, threads, p + "ffn_gate", ff, d),
                Up = Linear(model, threads, p + "ffn_up", ff, d),
                Down = Linear(model, threads, p + "ffn_down", d, ff),
            };
        }

        var outputNorm = Norm(model, "output_norm", d, gpt2);
        var outTensor = c.TiedEmbeddings ? null : model.Find("output.weight");
        var output = outTensor is null
            ? new LinearWeight("output", PackedMatrix.FromWeights(tokenEmbd, c.VocabSize, d, threads), OptionalBias(model, "output", c.VocabSize),
                model.Get("token_embd.weight").Type)
            : Linear(model, threads, "output", c.VocabSize, d);

        return new EngineWeights
        {
            Config = c,
            Source = src,
            Rope = gpt2 ? RopeStyle.None : c.Architecture == Architecture.Qwen2 ? RopeStyle.RotateHalf : RopeStyle.Interleaved,
            LayerNorm = gpt2,
            TokenEmbedding = tokenEmbd,
            PositionEmbedding = posEmbd,
            PositionCount = posCount,
            Blocks = blocks,
            OutputNorm = outputNorm,
            Output = output,
        };
    }

    private static void ValidateConfig(ModelConfig c, string src)
    {
        void Check(bool ok, string field, long value)
        {
            if (!ok) throw new BadInputException($"{src}: model config {field} = {value} is not usable by the engine");
        }
        Check(c.VocabSize > 0, "vocab_size", c.VocabSize);
        Check(c.EmbeddingLength > 0, "n_embd", c.EmbeddingLength);
        Check(c.BlockCount > 0, "n_layer", c.BlockCount);
        Check(c.HeadCount > 0, "n_head", c.HeadCount);
        // With per-layer widths the largest counts need not divide; CheckLayerWidths checks each layer instead.
        Check(c.HeadCountKv > 0 && (c.HasPerLayerWidths || c.HeadCount % c.HeadCountKv == 0), "n_head_kv", c.HeadCountKv);
        Check(c.HeadDim > 0 && (c.Architecture == Architecture.Gpt2 || c.HeadDim % 2 == 0), "head_dim", c.HeadDim);
        Check(c.FeedForwardLength > 0, "n_ff", c.FeedForwardLength);
        Check((long)c.HeadCount * c.HeadDim <= int.MaxValue / 4, "n_head*head_dim", (long)c.HeadCount * c.HeadDim);
        Models.Loading.CanonicalTensors.CheckLayerWidths(c, src);
        for (int l = 0; l < c.BlockCount; l++)
        {
            // Scratch buffers are sized from the layers themselves, so each layer's width is checked, not only HeadCount.
            Check((long)c.HeadsIn(l) * c.HeadDim <= int.MaxValue / 4, $"layer {l} n_head*head_dim", (long)c.HeadsIn(l) * c.HeadDim);
            Check((long)c.KvHeadsIn(l) * c.HeadDim <= int.MaxValue / 4, $"layer {l} n_head_kv*head_dim", (long)c.KvHeadsIn(l) * c.HeadDim);
        }
        if (c.Architecture == Architecture.Gpt2 && c.HeadCountKv != c.HeadCount)
            throw new BadInputException($"{src}: GPT-2 with n_head_kv {c.HeadCountKv} != n_head {c.HeadCount} is not supported");
        if (!(c.NormEpsilon > 0 && float.IsFinite(c.NormEpsilon)))
            throw new BadInputException($"{src}: model config norm epsilon {c.NormEpsilon} is not usable");
        if (c.Architecture != Architecture.Gpt2 && !(c.RopeTheta > 0 && float.IsFinite(c.RopeTheta)))
            throw new BadInputException($"{src}: model config rope_theta {c.RopeTheta} is not usable");
    }

    private static float[] Read(Model model, string name, long[] expected)
    {
        var t = model.Get(name);
        if (!t.Shape.SequenceEqual(expected)) throw Shape(model.Provenance.SourcePath, t, $"[{string.Join(", ", expected)}]");
        return t.ToFloat32();
    }

    private static LinearWeight Linear(Model model, int threads, string layer, int outFeatures, int inFeatures) =>
        new(layer, PackedMatrix.FromWeights(Read(model, layer + ".weight", [outFeatures, inFeatures]), outFeatures, inFeatures, threads),
            OptionalBias(model, layer, outFeatures), model.Get(layer + ".weight").Type);

    private static float[]? OptionalBias(Model model, string layer, int length) =>
        model.Find(layer + ".bias") is null ? null : Read(model, layer + ".bias", [length]);

    private static NormWeight Norm(Model model, string name, int d, bool withBias) =>
        new(Read(model, name + ".weight", [d]), withBias ? Read(model, name + ".bias", [d]) : OptionalBias(model, name, d));

    private static BadInputException Shape(string src, ModelTensor t, string expected) =>
        new($"{src}: tensor '{t.Name}' has shape [{string.Join(", ", t.Shape)}], expected {expected}");
}
