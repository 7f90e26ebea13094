namespace EdgeQuant.Models.Tokenizers;

/// <summary>
/// Per-token attributes, bit for bit llama.cpp's <c>llama_token_attr</c> (llama.h of node-llama-cpp@3.22.1), so the
/// special-token partition and piece rendering can follow llama-vocab.cpp exactly.
/// </summary>
[Flags]
public enum TokenAttributes
{
    Undefined = 0,
    Unknown = 1 << 0,
    Unused = 1 << 1,
    Normal = 1 << 2,
    Control = 1 << 3,
    UserDefined = 1 << 4,
    Byte = 1 << 5,
    Normalized = 1 << 6,
    LStrip = 1 << 7,
    RStrip = 1 << 8,
    SingleWord = 1 << 9,
}

/// <summary>GGUF <c>tokenizer.ggml.token_type</c> values (llama.h <c>llama_token_type</c>).</summary>
public enum GgufTokenType
{
    Undefined = 0,
    Normal = 1,
    Unknown = 2,
    Control = 3,
    UserDefined = 4,
    Unused = 5,
    Byte = 6,
}

/// <summary>The two tokenizer algorithms, named by their GGUF <c>tokenizer.ggml.model</c> spelling.</summary>
public enum TokenizerKind
{
    /// <summary>"llama": SentencePiece-style BPE over characters, merged by score, byte fallback to &lt;0xNN&gt;.</summary>
    SentencePiece,

    /// <summary>"gpt2": byte-level BPE (bytes mapped to printable characters), regex pre-tokenizer, merges by rank.</summary>
    ByteLevelBpe,
}

internal static class TokenTypeMapping
{
    public static TokenAttributes ToAttributes(int ggufType) => (GgufTokenType)ggufType switch
    {
        GgufTokenType.Unknown => TokenAttributes.Unknown,
        GgufTokenType.Unused => TokenAttributes.Unused,
        GgufTokenType.Normal => TokenAttributes.Normal,
        GgufTokenType.Control => TokenAttributes.Control,
        GgufTokenType.UserDefined => TokenAttributes.UserDefined,
        GgufTokenType.Byte => TokenAttributes.Byte,
        _ => TokenAttributes.Undefined,
    };

    public static GgufTokenType ToGguf(TokenAttributes a) =>
        (a & TokenAttributes.Unknown) != 0 ? GgufTokenType.Unknown
        : (a & TokenAttributes.Control) != 0 ? GgufTokenType.Control
        : (a & TokenAttributes.UserDefined) != 0 ? GgufTokenType.UserDefined
        : (a & TokenAttributes.Byte) != 0 ? GgufTokenType.Byte
        : (a & TokenAttributes.Unused) != 0 ? GgufTokenType.Unused
        : (a & TokenAttributes.Normal) != 0 ? GgufTokenType.Normal
        : GgufTokenType.Undefined;
}
