using EdgeQuant.Core.Tensors;
using EdgeQuant.Models;
using EdgeQuant.Models.Loading;

namespace EdgeQuant.Compression.Tests.GgufQuant;

/// <summary>Realistic model shapes for the policy tests, and their tensor lists as EdgeQuant's GGUF export writes them.</summary>
internal static class PolicyModels
{
    private static ModelConfig Config(Architecture arch, int embd, int layers, int heads, int kvHeads, int ffn, int vocab, bool tied,
        int? headDim = null, int context = 2048) => new()
    {
        Architecture = arch,
        SourceArchitecture = arch.ToString(),
        VocabSize = vocab,
        EmbeddingLength = embd,
        BlockCount = layers,
        HeadCount = heads,
        HeadCountKv = kvHeads,
        FeedForwardLength = ffn,
        ContextLength = context,
        HeadDim = headDim ?? embd / heads,
        TiedEmbeddings = tied,
        AttentionBias = arch == Architecture.Qwen2,
    };

    /// <summary>Name → config. Real hyperparameters of the named models; the "odd" ones have rows that are not whole 256- or 32-blocks.</summary>
    public static readonly IReadOnlyDictionary<string, ModelConfig> All = new Dictionary<string, ModelConfig>
    {
        ["tinyllama-1.1b"] = Config(Architecture.Llama, 2048, 22, 32, 4, 5632, 32000, tied: false),
        ["smollm-135m"] = Config(Architecture.Llama, 576, 30, 9, 3, 1536, 49152, tied: true),
        ["qwen2-0.5b"] = Config(Architecture.Qwen2, 896, 24, 14, 2, 4864, 151936, tied: true),
        ["gpt2"] = Config(Architecture.Gpt2, 768, 12, 12, 12, 3072, 50257, tied: true, context: 1024),
        ["stories260k"] = Config(Architecture.Llama, 64, 5, 8, 4, 172, 512, tied: false, context: 512),
        // Mistral-7B: GQA 4, 32 layers (llama architecture).
        ["mistral-7b"] = Config(Architecture.Llama, 4096, 32, 32, 8, 14336, 32000, tied: false),
        // n_embd 320 (not a multiple of 256, a multiple of 32), FFN 864: K-quants fall back to legacy types; GQA 5.
        ["odd-320"] = Config(Architecture.Llama, 320, 9, 5, 1, 864, 1000, tied: false),
        // n_embd 200 and head size 50: rows of 200 are not whole 32-blocks, so most tensors end as F16.
        ["odd-200"] = Config(Architecture.Qwen2, 200, 17, 4, 2, 544, 300, tied: true),
        // GPT-2 with rows of 80 and FFN 320.
        ["odd-gpt2"] = Config(Architecture.Gpt2, 80, 4, 4, 4, 320, 260, tied: true, context: 64),
        // Llama-2-70B: 80 layers with GQA is LLM_TYPE_70B, whose attn_v gets more bits.
        ["llama-70b"] = Config(Architecture.Llama, 8192, 80, 64, 8, 28672, 32000, tied: false),
        // 80 layers without GQA is 65B for llama.cpp: no 70B rule.
        ["llama-65b"] = Config(Architecture.Llama, 8192, 80, 64, 64, 22016, 32000, tied: false),
    };

    /// <summary>
    /// The tensors of <paramref name="config"/> in EdgeQuant's export order (the canonical order, which is llama.cpp's
    /// converters'), shapes in ggml order, 2-D as <paramref name="type2d"/> and 1-D as F32 as the export writes them.
    /// </summary>
    public static List<(string Name, long[] Shape, TensorType SourceType)> Tensors(ModelConfig config, TensorType type2d = TensorType.F16) =>
        CanonicalTensors.Enumerate(config, includeOutput: !config.TiedEmbeddings)
            .Select(t => (t.Name, t.Shape.Reverse().ToArray(), t.Shape.Length == 1 ? TensorType.F32 : type2d))
            .ToList();
}
