using EdgeQuant.Core.Errors;
using EdgeQuant.Models;

namespace EdgeQuant.Fixtures;

public enum FixtureArch
{
    Llama,
    Qwen2,
    Gpt2,
}

[Flags]
public enum FixtureFormats
{
    HuggingFace = 1,
    Gguf = 2,
    Both = HuggingFace | Gguf,
}

public enum FixtureDtype
{
    F32,
    F16,
}

/// <summary>
/// The shape and content of a random-weight fixture model. Any Llama-family or GPT-2 shape is allowed; the same
/// spec and seed always give the same bytes.
/// </summary>
public sealed record FixtureSpec
{
    public FixtureArch Arch { get; init; } = FixtureArch.Llama;
    public int Layers { get; init; } = 2;
    public int Embd { get; init; } = 64;
    public int Heads { get; init; } = 4;
    public int KvHeads { get; init; } = 2;
    public int Ffn { get; init; } = 172;
    public int Vocab { get; init; } = 512;

    /// <summary>Per-head size; null means Embd / Heads. A different value needs an explicit head_dim (Llama family only).</summary>
    public int? HeadDim { get; init; }

    public int ContextLength { get; init; } = 256;

    /// <summary>A separate output matrix (lm_head) instead of tied embeddings.</summary>
    public bool Untied { get; init; }

    /// <summary>q/k/v biases on a Llama-architecture model (also o_proj, as Llama's attention_bias does). Qwen2 always has q/k/v biases.</summary>
    public bool AttentionBias { get; init; }

    public FixtureDtype Dtype { get; init; } = FixtureDtype.F32;
    public ulong Seed { get; init; } = 1;
    public float RopeTheta { get; init; } = 10000f;
    public float NormEpsilon { get; init; } = 1e-5f;
    public string Name { get; init; } = "edgequant-fixture";

    public int EffectiveHeadDim => HeadDim ?? Embd / Heads;
    public bool HasAttentionBias => Arch == FixtureArch.Qwen2 || (Arch == FixtureArch.Llama && AttentionBias);

    public static IReadOnlyList<string> PresetNames { get; } = ["demo", "tiny", "smollm-135m", "tinyllama-1.1b"];

    /// <summary>A named shape. smollm-135m and tinyllama-1.1b are those models' real hyperparameters (random weights).</summary>
    public static FixtureSpec Preset(FixtureArch arch, string preset)
    {
        var s = preset switch
        {
            // FFN 172 is deliberately not a multiple of 32, like stories260K: it exercises quantizer fallbacks.
            "demo" => new FixtureSpec { Layers = 2, Embd = 64, Heads = 4, KvHeads = 2, Ffn = 172, Vocab = 512, ContextLength = 256, Name = "fixture-demo" },
            "tiny" => new FixtureSpec { Layers = 1, Embd = 16, Heads = 2, KvHeads = 1, Ffn = 24, Vocab = 300, ContextLength = 64, Name = "fixture-tiny" },
            "smollm-135m" => new FixtureSpec { Layers = 30, Embd = 576, Heads = 9, KvHeads = 3, Ffn = 1536, Vocab = 49152, ContextLength = 2048, Name = "fixture-smollm-135m" },
            "tinyllama-1.1b" => new FixtureSpec { Layers = 22, Embd = 2048, Heads = 32, KvHeads = 4, Ffn = 5632, Vocab = 32000, ContextLength = 2048, Untied = true, Name = "fixture-tinyllama-1.1b" },
            _ => throw new BadInputException($"--preset: '{preset}' is not one of {string.Join(", ", PresetNames)}"),
        };
        s = s with { Arch = arch };
        // GPT-2 has no grouped-query attention and a 4x MLP by convention.
        if (arch == FixtureArch.Gpt2) s = s with { KvHeads = s.Heads, Ffn = preset is "demo" or "tiny" ? 4 * s.Embd : s.Ffn };
        return s;
    }

    public void Validate()
    {
        static void Require(bool ok, string option, string problem)
        {
            if (!ok) throw new BadInputException($"{option}: {problem}");
        }
        Require(Layers is >= 1 and <= 1024, "--layers", $"{Layers} is outside 1..1024");
        Require(Embd is >= 2 and <= 65536, "--embd", $"{Embd} is outside 2..65536");
        Require(Heads >= 1 && Heads <= Embd, "--heads", $"{Heads} is outside 1..{Embd}");
        Require(KvHeads >= 1 && Heads % KvHeads == 0, "--kv-heads", $"{KvHeads} must divide --heads {Heads}");
        Require(Ffn is >= 1 and <= 1 << 20, "--ffn", $"{Ffn} is outside 1..{1 << 20}");
        Require(ContextLength is >= 1 and <= 1 << 20, "--context", $"{ContextLength} is outside 1..{1 << 20}");
        Require(HeadDim is null || HeadDim is >= 2 and <= 4096, "--head-dim", $"{HeadDim} is outside 2..4096");
        Require(HeadDim is not null || Embd % Heads == 0, "--heads", $"{Heads} does not divide --embd {Embd} (give --head-dim)");
        Require(Vocab is >= 1 and <= 1 << 20, "--vocab", $"{Vocab} is outside 1..{1 << 20}");
        if (Arch == FixtureArch.Gpt2)
        {
            Require(KvHeads == Heads, "--kv-heads", "GPT-2 has no grouped-query attention (kv heads must equal heads)");
            Require(HeadDim is null || HeadDim == Embd / Heads, "--head-dim", "GPT-2's head size is n_embd / n_head");
            Require(Vocab >= FixtureTokenizer.MinByteLevelVocab, "--vocab", $"a byte-level vocabulary needs at least {FixtureTokenizer.MinByteLevelVocab} tokens");
        }
        else
        {
            Require(EffectiveHeadDim % 2 == 0, "--head-dim", $"RoPE needs an even head size, not {EffectiveHeadDim}");
            Require(Vocab >= FixtureTokenizer.MinSentencePieceVocab, "--vocab", $"a byte-fallback vocabulary needs at least {FixtureTokenizer.MinSentencePieceVocab} tokens (<unk>, <s>, </s> and 256 bytes)");
        }
    }

    public ModelConfig ToModelConfig() => new()
    {
        Architecture = Arch switch { FixtureArch.Qwen2 => Architecture.Qwen2, FixtureArch.Gpt2 => Architecture.Gpt2, _ => Architecture.Llama },
        SourceArchitecture = Arch switch { FixtureArch.Qwen2 => "Qwen2ForCausalLM", FixtureArch.Gpt2 => "GPT2LMHeadModel", _ => "LlamaForCausalLM" },
        VocabSize = Vocab,
        EmbeddingLength = Embd,
        BlockCount = Layers,
        HeadCount = Heads,
        HeadCountKv = KvHeads,
        FeedForwardLength = Ffn,
        ContextLength = ContextLength,
        HeadDim = EffectiveHeadDim,
        RopeTheta = RopeTheta,
        NormEpsilon = NormEpsilon,
        TiedEmbeddings = !Untied,
        AttentionBias = HasAttentionBias,
    };
}
