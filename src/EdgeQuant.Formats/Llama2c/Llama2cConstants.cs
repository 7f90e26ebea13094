namespace EdgeQuant.Formats.Llama2c;

/// <summary>Numbers of Karpathy's llama2.c legacy checkpoint (export version 0, run.c's Config) and tokenizer.bin.</summary>
public static class Llama2cConstants
{
    /// <summary>Seven int32: dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len.</summary>
    public const int HeaderBytes = 28;

    /// <summary>"ak42" read as a little-endian uint32: the magic of llama2.c's newer export versions 1 and 2.</summary>
    public const uint VersionedMagic = 0x616b3432;

    // Caps far above any llama2.c model (Llama-2 7B: dim 4096, hidden 11008, 32 layers, vocab 32000, seq 4096)
    // that keep every size product inside long and every allocation sane.
    public const int MaxDim = 1 << 16;
    public const int MaxHiddenDim = 1 << 20;
    public const int MaxLayers = 1 << 10;
    public const int MaxVocab = 1 << 22;
    public const int MaxSeqLen = 1 << 22;

    /// <summary>run.c reads tokens into a buffer of max_token_length; no real piece is longer than a few dozen bytes.</summary>
    public const int MaxTokenLength = 1 << 16;
}
