namespace EdgeQuant.Models.Tokenizers;

/// <summary>
/// Everything a <see cref="Tokenizer"/> is built from, whatever the source (GGUF metadata, TokenizerData, tokenizer.json).
/// Null means "not stated by the source": the llama.cpp default for the tokenizer kind then applies.
/// </summary>
public sealed class TokenizerSpec
{
    public required TokenizerKind Kind { get; init; }

    /// <summary>GGUF <c>tokenizer.ggml.pre</c> (byte-level BPE only).</summary>
    public string? Pre { get; set; }

    /// <summary>Explicit pre-tokenizer rules (from a tokenizer.json with regexes llama.cpp has no name for).</summary>
    public IReadOnlyList<string>? PrePatterns { get; set; }

    public required IReadOnlyList<string> Tokens { get; init; }
    public float[]? Scores { get; set; }

    /// <summary>GGUF token types (<see cref="GgufTokenType"/>), one per token.</summary>
    public int[]? TokenTypes { get; set; }

    /// <summary>Extra attributes (LStrip/RStrip) per token id, from tokenizer.json added tokens.</summary>
    public Dictionary<int, TokenAttributes>? ExtraAttributes { get; set; }

    /// <summary>Byte-level BPE merges, "left right", in rank order.</summary>
    public IReadOnlyList<string>? Merges { get; set; }

    public int? BosId { get; set; }
    public int? EosId { get; set; }
    public int? UnknownId { get; set; }
    public int? PaddingId { get; set; }
    public bool? AddBos { get; set; }
    public bool? AddEos { get; set; }
    public bool? AddSpacePrefix { get; set; }
    public bool? IgnoreMerges { get; set; }
    public string? ChatTemplate { get; set; }

    /// <summary>GGUF <c>general.name</c>: llama.cpp keys a per-model special-token rule (Phi-3's rstrip) on it.</summary>
    public string? ModelName { get; set; }

    public required string SourcePath { get; init; }
}
