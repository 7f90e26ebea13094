namespace EdgeQuant.Models;

/// <summary>The model families the engine and exporters know. Mistral, SmolLM and TinyLlama are <see cref="Llama"/>.</summary>
public enum Architecture
{
    Llama,
    Qwen2,
    Gpt2,
}

public enum ModelFormat
{
    HuggingFace,
    Gguf,
    Llama2c,
}

/// <summary>Hyperparameters, whatever the source format. Field names follow llama.cpp's (n_embd, n_ff, …) in spirit.</summary>
public sealed record ModelConfig
{
    public required Architecture Architecture { get; init; }

    /// <summary>The architecture string of the source (HF <c>architectures[0]</c>, GGUF <c>general.architecture</c>, "llama2.c").</summary>
    public required string SourceArchitecture { get; init; }

    public required int VocabSize { get; init; }
    public required int EmbeddingLength { get; init; }
    public required int BlockCount { get; init; }
    public required int HeadCount { get; init; }
    public required int HeadCountKv { get; init; }
    public required int FeedForwardLength { get; init; }
    public required int ContextLength { get; init; }

    /// <summary>Per-head dimension; usually EmbeddingLength / HeadCount, explicit in some configs.</summary>
    public required int HeadDim { get; init; }

    public float RopeTheta { get; init; } = 10000f;

    /// <summary>RMSNorm epsilon (Llama family) or LayerNorm epsilon (GPT-2).</summary>
    public float NormEpsilon { get; init; } = 1e-5f;

    /// <summary>The output projection shares the token embedding matrix.</summary>
    public bool TiedEmbeddings { get; init; }

    /// <summary>q/k/v projections carry biases (Qwen2).</summary>
    public bool AttentionBias { get; init; }
}
