using System.Buffers.Binary;
using System.Security.Cryptography;
using EdgeQuant.Core.Errors;
using EdgeQuant.Formats.IO;

namespace EdgeQuant.Verification.Reference;

/// <summary>One scored position of a full reference: log p[i] = scale·q[i] + min_log_prob.</summary>
public readonly ref struct FullRecord(float scale, float minLogProb, ReadOnlySpan<byte> q)
{
    public float Scale { get; } = scale;
    public float MinLogProb { get; } = minLogProb;

    /// <summary>The uint16 codes, little-endian, two bytes per vocabulary entry.</summary>
    public ReadOnlySpan<byte> Codes { get; } = q;

    public ushort Code(int i) => BinaryPrimitives.ReadUInt16LittleEndian(Codes[(2 * i)..]);

    public float LogProb(int i) => LogProbEncoding.DecodeFull(Scale, MinLogProb, Code(i));
}

/// <summary>One scored position of a top-K reference.</summary>
public readonly ref struct TopKRecord(float targetLogProb, float logTailMass, ReadOnlySpan<byte> ids, ReadOnlySpan<byte> logProbs)
{
    /// <summary>Exact log-prob of the token this position scores.</summary>
    public float TargetLogProb { get; } = targetLogProb;

    /// <summary>ln of the probability outside the top K (−∞ when the top K hold it all).</summary>
    public float LogTailMass { get; } = logTailMass;

    public int Count => IdBytes.Length / 4;
    public ReadOnlySpan<byte> IdBytes { get; } = ids;
    public ReadOnlySpan<byte> LogProbBytes { get; } = logProbs;

    public int Id(int j) => BinaryPrimitives.ReadInt32LittleEndian(IdBytes[(4 * j)..]);
    public float LogProb(int j) => BinaryPrimitives.ReadSingleLittleEndian(LogProbBytes[(4 * j)..]);
}

/// <summary>
/// A <c>.eqref</c> file, memory-mapped and fully validated by <see cref="Open"/>: magic, version, every header
/// field against its caps and against the others, the file size the header implies, the checksum, every token id,
/// and every record's floats and ids. Any failure is a <see cref="FileFormatException"/> naming the file, the field
/// and the byte offset. After that, records are read without further checks.
/// </summary>
public sealed class ReferenceFile : IDisposable
{
    private readonly MappedFile _file;
    private readonly long _recordsOffset;
    private readonly int[] _tokens;

    private ReferenceFile(MappedFile file, ReferenceHeader header, int[] tokens, long recordsOffset)
    {
        _file = file;
        Header = header;
        _tokens = tokens;
        _recordsOffset = recordsOffset;
    }

    public string Path => _file.Path;
    public long FileBytes => _file.Length;
    public ReferenceHeader Header { get; }

    /// <summary>The chunks' text tokens, n_ctx × n_chunks (before the BOS replacement).</summary>
    public ReadOnlySpan<int> Tokens => _tokens;

    /// <summary>File bytes per scored position: what the reference costs to ship per token of evaluation.</summary>
    public double BytesPerScoredToken => (double)FileBytes / Header.ScoredPositions;

    public ReadOnlySpan<int> ChunkTokens(int chunk) => _tokens.AsSpan(checked(chunk * Header.NCtx), Header.NCtx);

    public static ReferenceFile Open(string path)
    {
        var file = MappedFile.Open(path);
        try
        {
            return Read(file);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>Reads bytes already in memory (tests, fuzzing) with a display name for errors.</summary>
    public static ReferenceFile FromBytes(byte[] bytes, string displayName)
    {
        var file = MappedFile.FromBytes(bytes, displayName);
        try
        {
            return Read(file);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>The full record of scored position <paramref name="index"/> (0-based) of chunk <paramref name="chunk"/>.</summary>
    public FullRecord Full(int chunk, int index)
    {
        if (Header.Mode != ReferenceMode.Full) throw new InvalidOperationException("a top-K reference has no full records");
        var r = Record(chunk, index);
        return new FullRecord(BinaryPrimitives.ReadSingleLittleEndian(r), BinaryPrimitives.ReadSingleLittleEndian(r[4..]),
            r.Slice(8, 2 * Header.NVocab));
    }

    public TopKRecord TopK(int chunk, int index)
    {
        if (Header.Mode != ReferenceMode.TopK) throw new InvalidOperationException("a full reference has no top-K records");
        var r = Record(chunk, index);
        int k = Header.TopK;
        return new TopKRecord(BinaryPrimitives.ReadSingleLittleEndian(r), BinaryPrimitives.ReadSingleLittleEndian(r[4..]),
            r.Slice(8, 4 * k), r.Slice(8 + 4 * k, 4 * k));
    }

    public void Dispose() => _file.Dispose();

    private ReadOnlySpan<byte> Record(int chunk, int index)
    {
        if ((uint)chunk >= (uint)Header.NChunks) throw new ArgumentOutOfRangeException(nameof(chunk));
        if ((uint)index >= (uint)Header.ScoredPerChunk) throw new ArgumentOutOfRangeException(nameof(index));
        long offset = _recordsOffset + ((long)chunk * Header.ScoredPerChunk + index) * Header.RecordBytes;
        return _file.Span(offset, (int)Header.RecordBytes, "record");
    }

    private static ReferenceFile Read(MappedFile file)
    {
        var c = new ByteCursor(file);
        if (file.Length < ReferenceFormat.FixedHeaderBytes)
            c.FailAt(0, "header", $"the file is {file.Length} bytes; a reference file starts with a {ReferenceFormat.FixedHeaderBytes}-byte header");
        if (!c.Take(8, "magic").SequenceEqual(ReferenceFormat.Magic))
            c.FailAt(0, "magic", "not an EdgeQuant reference file (expected \"EQREF\\0\\r\\n\")");
        uint version = c.ReadU32("version");
        if (version != ReferenceFormat.Version)
            c.FailAt(8, "version", version > ReferenceFormat.Version
                ? $"version {version} was written by a newer edgequant (this one reads {ReferenceFormat.Version})"
                : $"unknown version {version}");
        uint headerBytes = c.ReadU32("header_bytes");
        uint mode = c.ReadU32("mode");
        if (mode > 1) c.FailAt(16, "mode", $"{mode} is neither 0 (full) nor 1 (top-K)");
        int nVocab = ReadCount(c, "n_vocab", 2, ReferenceFormat.MaxVocab);
        int nCtx = ReadCount(c, "n_ctx", 4, ReferenceFormat.MaxContext);
        int nChunks = ReadCount(c, "n_chunks", 1, ReferenceFormat.MaxChunks);
        uint topK = c.ReadU32("top_k");
        var m = (ReferenceMode)mode;
        if (m == ReferenceMode.Full && topK != 0) c.FailAt(32, "top_k", $"{topK} in a full reference (must be 0)");
        if (m == ReferenceMode.TopK && (topK < 1 || topK > Math.Min(nVocab, ReferenceFormat.MaxTopK)))
            c.FailAt(32, "top_k", $"{topK} is outside 1..{Math.Min(nVocab, ReferenceFormat.MaxTopK)}");
        int bos = c.ReadI32("bos");
        if (bos < -1 || bos >= nVocab) c.FailAt(36, "bos", $"{bos} is neither -1 (none) nor a token id below {nVocab}");
        ulong textTokens = c.ReadU64("text_tokens");
        if (textTokens < (ulong)nCtx * (ulong)nChunks || textTokens > int.MaxValue)
            c.FailAt(40, "text_tokens", $"{textTokens} is fewer than the {nChunks} chunks × {nCtx} tokens stored, or absurd");
        var modelSha = c.Take(32, "model_sha256").ToArray();
        var textSha = c.Take(32, "text_sha256").ToArray();
        uint nameBytes = c.ReadU32("model_name_length");
        if (nameBytes > ReferenceFormat.MaxModelNameBytes)
            c.FailAt(112, "model_name_length", $"{nameBytes} exceeds {ReferenceFormat.MaxModelNameBytes}");
        string name = c.ReadUtf8(nameBytes, "model_name", ReferenceFormat.MaxModelNameBytes);
        if (headerBytes != ReferenceFormat.HeaderBytes((int)nameBytes))
            c.FailAt(12, "header_bytes", $"{headerBytes} does not match a {nameBytes}-byte model name (expected {ReferenceFormat.HeaderBytes((int)nameBytes)})");
        for (long p = c.Position; p < headerBytes; p++)
        {
            if (c.ReadU8("header padding") != 0) c.FailAt(p, "header padding", "nonzero padding byte");
        }

        long expected = ReferenceFormat.FileBytes((int)headerBytes, m, nVocab, nCtx, nChunks, (int)topK);
        if (file.Length != expected)
            c.FailAt(Math.Min(file.Length, expected), "file length",
                $"the file is {file.Length} bytes but its header (n_vocab {nVocab}, n_ctx {nCtx}, {nChunks} chunks, mode {m}) implies {expected}{(file.Length < expected ? " (truncated?)" : "")}");

        // The checksum first: a flipped bit is then reported as corruption, not as whatever field it landed in.
        long bodyBytes = expected - ReferenceFormat.ChecksumBytes;
        if (!Checksum(file, bodyBytes).AsSpan().SequenceEqual(file.Span(bodyBytes, ReferenceFormat.ChecksumBytes, "checksum")))
            c.FailAt(bodyBytes, "checksum", "SHA-256 of the contents does not match: the file is corrupt or was modified");

        // The length check above bounds this by the file's size; checked all the same.
        var tokens = new int[checked(nCtx * nChunks)];
        long tokensOffset = headerBytes;
        c.Position = tokensOffset;
        for (int i = 0; i < tokens.Length; i++)
        {
            int id = c.ReadI32("tokens");
            if ((uint)id >= (uint)nVocab)
                c.FailAt(tokensOffset + 4L * i, $"tokens[{i}]", $"token id {id} is outside the vocabulary of {nVocab}");
            tokens[i] = id;
        }

        var header = new ReferenceHeader(m, nVocab, nCtx, nChunks, (int)topK, bos < 0 ? null : bos, (long)textTokens, modelSha, textSha, name);
        long recordsOffset = c.Position;
        ValidateRecords(c, header, recordsOffset);
        return new ReferenceFile(file, header, tokens, recordsOffset);
    }

    private static int ReadCount(ByteCursor c, string field, int min, int max)
    {
        long at = c.Position;
        uint v = c.ReadU32(field);
        if (v < min || v > max) c.FailAt(at, field, $"{v} is outside {min}..{max}");
        return (int)v;
    }

    private static byte[] Checksum(MappedFile file, long length)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        const int Block = 1 << 22;
        for (long at = 0; at < length; at += Block)
            sha.AppendData(file.Span(at, (int)Math.Min(Block, length - at), "contents"));
        return sha.GetHashAndReset();
    }

    private static void ValidateRecords(ByteCursor c, ReferenceHeader h, long recordsOffset)
    {
        long count = h.ScoredPositions;
        long size = h.RecordBytes;
        for (long r = 0; r < count; r++)
        {
            long at = recordsOffset + r * size;
            c.Position = at;
            float a = c.ReadF32("record");
            float b = c.ReadF32("record");
            if (h.Mode == ReferenceMode.Full)
            {
                // scale·65535 spans at most the 16-nat window; min_log_prob is a log-probability.
                if (!float.IsFinite(a) || a < 0 || a * 65535f > ReferenceFormat.LogProbRange * 1.001f)
                    c.FailAt(at, RecordName(h, r) + " scale", $"{a} is not a scale of a ≤16-nat range");
                if (!float.IsFinite(b) || b > 0)
                    c.FailAt(at + 4, RecordName(h, r) + " min_log_prob", $"{b} is not a log-probability");
                continue;
            }
            if (!float.IsFinite(a) || a > 0) c.FailAt(at, RecordName(h, r) + " target log-prob", $"{a} is not a log-probability");
            if (float.IsNaN(b) || b > 0 || float.IsPositiveInfinity(b)) c.FailAt(at + 4, RecordName(h, r) + " tail mass", $"ln {b} is not a log-probability");
            int k = h.TopK;
            var ids = c.Take(4 * k, "record ids");
            var values = c.Take(4 * k, "record log-probs");
            float previous = 0;
            for (int j = 0; j < k; j++)
            {
                int id = BinaryPrimitives.ReadInt32LittleEndian(ids[(4 * j)..]);
                if ((uint)id >= (uint)h.NVocab) c.FailAt(at + 8 + 4L * j, RecordName(h, r) + $" id[{j}]", $"token id {id} is outside the vocabulary of {h.NVocab}");
                float v = BinaryPrimitives.ReadSingleLittleEndian(values[(4 * j)..]);
                if (float.IsNaN(v) || v > 0 || float.IsPositiveInfinity(v) || (j > 0 && v > previous))
                    c.FailAt(at + 8 + 4L * k + 4L * j, RecordName(h, r) + $" log_prob[{j}]", $"{v} is not a log-probability in descending order");
                previous = v;
            }
            if (k > 1 && HasDuplicate(ids, k)) c.FailAt(at + 8, RecordName(h, r) + " ids", "a token id appears twice in the top K");
        }
    }

    private static string RecordName(ReferenceHeader h, long r) =>
        $"record {r} (chunk {r / h.ScoredPerChunk}, position {h.FirstScored + r % h.ScoredPerChunk})";

    private static bool HasDuplicate(ReadOnlySpan<byte> ids, int k)
    {
        Span<int> sorted = k <= 256 ? stackalloc int[k] : new int[k];
        for (int j = 0; j < k; j++) sorted[j] = BinaryPrimitives.ReadInt32LittleEndian(ids[(4 * j)..]);
        sorted.Sort();
        for (int j = 1; j < k; j++) if (sorted[j] == sorted[j - 1]) return true;
        return false;
    }
}
