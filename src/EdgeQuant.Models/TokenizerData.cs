namespace EdgeQuant.Models;

/// <summary>
/// The tokenizer as a model file carries it, before a tokenizer object is built from it: GGUF's
/// <c>tokenizer.ggml.*</c> fields, or what was read from an HF <c>tokenizer.json</c> / llama2.c <c>tokenizer.bin</c>.
/// </summary>
public sealed record TokenizerData
{
    /// <summary>GGUF <c>tokenizer.ggml.model</c> spelling: "llama" (SentencePiece BPE), "gpt2" (byte-level BPE), …</summary>
    public required string Kind { get; init; }

    /// <summary>GGUF <c>tokenizer.ggml.pre</c> (byte-level BPE pre-tokenizer name), when known.</summary>
    public string? Pre { get; init; }

    public required IReadOnlyList<string> Tokens { get; init; }
    public float[]? Scores { get; init; }
    public int[]? TokenTypes { get; init; }
    public IReadOnlyList<string>? Merges { get; init; }
    public int? BosId { get; init; }
    public int? EosId { get; init; }
    public int? UnknownId { get; init; }
    public int? PaddingId { get; init; }
    public bool? AddBos { get; init; }
    public bool? AddEos { get; init; }
    public string? ChatTemplate { get; init; }

    /// <summary>Where it came from (a GGUF file, a tokenizer.json, a tokenizer.bin).</summary>
    public required string SourcePath { get; init; }
}
