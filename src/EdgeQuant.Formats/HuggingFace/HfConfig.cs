namespace EdgeQuant.Formats.HuggingFace;

/// <summary>The model families whose config.json EdgeQuant reads.</summary>
public enum HfModelFamily
{
    Llama,
    Mistral,
    Qwen2,
    Gpt2,
}

/// <summary>
/// What EdgeQuant needs from a Hugging Face <c>config.json</c>, with each architecture's spelling (GPT-2's n_embd,
/// n_layer, …) and defaults (transformers' config classes) already resolved.
/// </summary>
public sealed record HfConfig
{
    /// <summary>The class name, <c>architectures[0]</c> (LlamaForCausalLM, …).</summary>
    public required string ArchitectureName { get; init; }
    public required HfModelFamily Family { get; init; }
    public required string ModelType { get; init; }

    public required int VocabSize { get; init; }
    public required int HiddenSize { get; init; }
    public required int NumLayers { get; init; }
    public required int NumHeads { get; init; }

    /// <summary>KV heads (GQA); equals <see cref="NumHeads"/> when config.json has none.</summary>
    public required int NumKvHeads { get; init; }
    public required int IntermediateSize { get; init; }
    public required int MaxPositions { get; init; }

    /// <summary>Per-head size; hidden_size / num_attention_heads unless config.json says otherwise.</summary>
    public required int HeadDim { get; init; }

    public double RopeTheta { get; init; } = 10000;

    /// <summary>rms_norm_eps (Llama family) or layer_norm_epsilon (GPT-2).</summary>
    public required double NormEpsilon { get; init; }

    public required bool TieWordEmbeddings { get; init; }

    /// <summary>q/k/v (and for Llama's attention_bias also o) projections carry biases; always true for Qwen2.</summary>
    public required bool AttentionBias { get; init; }

    public bool MlpBias { get; init; }
    public string? HiddenAct { get; init; }
    public string? TorchDtype { get; init; }
    public int? BosTokenId { get; init; }
    public int? EosTokenId { get; init; }

    /// <summary>The rope_scaling object as raw JSON, when present and not null (not applied by EdgeQuant yet).</summary>
    public string? RopeScalingJson { get; init; }

    /// <summary>Qwen2's sliding window settings are carried through, unused.</summary>
    public bool UseSlidingWindow { get; init; }

    /// <summary>Every top-level field of the file as string/long/double/bool, or raw JSON for arrays and objects.</summary>
    public IReadOnlyDictionary<string, object> Raw { get; init; } = new Dictionary<string, object>();

    public static string ClassName(HfModelFamily family) => family switch
    {
        HfModelFamily.Llama => "LlamaForCausalLM",
        HfModelFamily.Mistral => "MistralForCausalLM",
        HfModelFamily.Qwen2 => "Qwen2ForCausalLM",
        HfModelFamily.Gpt2 => "GPT2LMHeadModel",
        _ => throw new ArgumentOutOfRangeException(nameof(family)),
    };

    public static string ModelTypeOf(HfModelFamily family) => family switch
    {
        HfModelFamily.Llama => "llama",
        HfModelFamily.Mistral => "mistral",
        HfModelFamily.Qwen2 => "qwen2",
        HfModelFamily.Gpt2 => "gpt2",
        _ => throw new ArgumentOutOfRangeException(nameof(family)),
    };
}
