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

    /// <summary>
    /// Per-layer query-head counts when layers differ (a structurally pruned model); null when every layer has
    /// <see cref="HeadCount"/>. <see cref="HeadCount"/> then holds the largest. GGUF stores such a list as an array
    /// under <c>attention.head_count</c> (llama.cpp's <c>deci</c> architecture reads it per layer).
    /// </summary>
    public int[]? LayerHeadCounts { get; init; }

    /// <summary>Per-layer key/value-head counts when layers differ; null when uniform (<see cref="HeadCountKv"/>).</summary>
    public int[]? LayerHeadCountsKv { get; init; }

    /// <summary>Per-layer FFN widths when layers differ; null when uniform (<see cref="FeedForwardLength"/>).</summary>
    public int[]? LayerFeedForwardLengths { get; init; }

    /// <summary>Query heads of layer <paramref name="layer"/>.</summary>
    public int HeadsIn(int layer) => LayerHeadCounts?[layer] ?? HeadCount;

    /// <summary>Key/value heads of layer <paramref name="layer"/>.</summary>
    public int KvHeadsIn(int layer) => LayerHeadCountsKv?[layer] ?? HeadCountKv;

    /// <summary>FFN width of layer <paramref name="layer"/>.</summary>
    public int FeedForwardIn(int layer) => LayerFeedForwardLengths?[layer] ?? FeedForwardLength;

    /// <summary>True when some layer's head counts or FFN width differ from the others'.</summary>
    public bool HasPerLayerWidths => LayerHeadCounts is not null || LayerHeadCountsKv is not null || LayerFeedForwardLengths is not null;
}
