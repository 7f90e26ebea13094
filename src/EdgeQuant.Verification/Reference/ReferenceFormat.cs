namespace EdgeQuant.Verification.Reference;

/// <summary>How a reference file stores each scored position's distribution.</summary>
public enum ReferenceMode
{
    /// <summary>
    /// The whole distribution: llama-perplexity's KLD base record, per position a float scale, a float minimum
    /// log-prob and one uint16 per vocabulary entry (log p ≈ scale·q + min), covering the top 16 nats.
    /// </summary>
    Full = 0,

    /// <summary>The K most likely tokens (id, float log-prob), the target's exact log-prob and the log of the remaining mass.</summary>
    TopK = 1,
}

/// <summary>
/// The <c>.eqref</c> layout, version 1 (little-endian; every section 4-byte aligned):
/// <code>
///   0   8  magic "EQREF\0\r\n" (the CR-LF catches a text-mode copy, as PNG's signature does)
///   8   4  u32 version (1)
///  12   4  u32 header bytes H (from offset 0 to the first token; a multiple of 4)
///  16   4  u32 mode (0 full, 1 top-K)
///  20   4  u32 n_vocab
///  24   4  u32 n_ctx
///  28   4  u32 n_chunks
///  32   4  u32 top_k (0 in full mode)
///  36   4  i32 BOS id each chunk starts with (-1: none)
///  40   8  u64 tokens in the whole text
///  48  32  SHA-256 of the reference model (<see cref="ModelHash"/>)
///  80  32  SHA-256 of the text as tokenized (UTF-8, after llama-perplexity's newline trim)
/// 112   4  u32 model name length L (≤ 4096), then L bytes UTF-8, zero padding to H
///   H      i32 tokens[n_ctx × n_chunks]: each chunk's text tokens (before the BOS replacement)
///          records, chunk by chunk, position n_ctx/2 … n_ctx−2 of each chunk, each <see cref="RecordBytes"/>:
///            full:  f32 scale, f32 min_log_prob, u16 q[n_vocab] (+ one u16 of padding when n_vocab is odd)
///            top-K: f32 target log-prob, f32 ln(tail mass), u32 id[K], f32 log_prob[K] (descending)
///   end 32 SHA-256 of every byte before it
/// </code>
/// A full record is byte for byte llama-perplexity's <c>--kl-divergence-base</c> record, so the statistics read it as
/// that tool does.
/// </summary>
public static class ReferenceFormat
{
    public static ReadOnlySpan<byte> Magic => "EQREF\0\r\n"u8;

    public const uint Version = 1;

    /// <summary>Bytes before the model name.</summary>
    public const int FixedHeaderBytes = 116;

    public const int MaxModelNameBytes = 4096;

    /// <summary>Trailing SHA-256 of the body.</summary>
    public const int ChecksumBytes = 32;

    // Caps that keep a lying header from driving an allocation: well above any model or context in use (150k
    // vocabularies, 128k contexts), far below what would overflow the size arithmetic.
    public const int MaxVocab = 1 << 24;
    public const int MaxContext = 1 << 20;
    public const int MaxChunks = 1 << 24;
    public const int MaxTopK = 1 << 16;

    /// <summary>llama-perplexity keeps log-probs within 16 nats of the maximum; below that a value encodes as 0 and is ignored by the KLD.</summary>
    public const float LogProbRange = 16f;

    /// <summary>First scored position of a chunk: llama-perplexity leaves the first half as context.</summary>
    public static int FirstScored(int nCtx) => nCtx / 2;

    /// <summary>Scored positions per chunk: n_ctx/2 … n_ctx−2 (each scores the token after it).</summary>
    public static int ScoredPerChunk(int nCtx) => nCtx - 1 - nCtx / 2;

    /// <summary>Bytes of one position's record.</summary>
    public static long RecordBytes(ReferenceMode mode, int nVocab, int topK) => mode switch
    {
        // llama-perplexity's nv = 2·((n_vocab+1)/2) + 4 uint16s: two floats then the vocabulary, padded to even.
        ReferenceMode.Full => 8L + 2L * (2L * ((nVocab + 1L) / 2)),
        ReferenceMode.TopK => 8L + 8L * topK,
        _ => throw new ArgumentOutOfRangeException(nameof(mode)),
    };

    /// <summary>Header bytes for a model name of <paramref name="nameBytes"/> UTF-8 bytes.</summary>
    public static int HeaderBytes(int nameBytes) => (FixedHeaderBytes + nameBytes + 3) & ~3;

    /// <summary>The file size a header implies (checked arithmetic; the caps keep it far from overflow).</summary>
    public static long FileBytes(int headerBytes, ReferenceMode mode, int nVocab, int nCtx, int nChunks, int topK)
    {
        long tokens = checked(4L * nCtx * nChunks);
        long records = checked((long)ScoredPerChunk(nCtx) * nChunks * RecordBytes(mode, nVocab, topK));
        return checked(headerBytes + tokens + records + ChecksumBytes);
    }
}

/// <summary>What a reference file says about itself.</summary>
/// <param name="ModelSha256">32 bytes: <see cref="ModelHash"/> of the reference model.</param>
/// <param name="TextSha256">32 bytes: SHA-256 of the text's UTF-8 bytes as tokenized.</param>
/// <param name="Bos">The BOS id that replaces each chunk's first token, or null when the vocabulary adds none.</param>
/// <param name="TextTokens">Tokens in the whole text (the file keeps only the whole chunks used).</param>
public sealed record ReferenceHeader(
    ReferenceMode Mode,
    int NVocab,
    int NCtx,
    int NChunks,
    int TopK,
    int? Bos,
    long TextTokens,
    byte[] ModelSha256,
    byte[] TextSha256,
    string ModelName)
{
    public int ScoredPerChunk => ReferenceFormat.ScoredPerChunk(NCtx);
    public int FirstScored => ReferenceFormat.FirstScored(NCtx);
    public long ScoredPositions => (long)ScoredPerChunk * NChunks;
    public long RecordBytes => ReferenceFormat.RecordBytes(Mode, NVocab, TopK);
    public string ModelSha256Hex => Convert.ToHexStringLower(ModelSha256);
    public string TextSha256Hex => Convert.ToHexStringLower(TextSha256);
}
