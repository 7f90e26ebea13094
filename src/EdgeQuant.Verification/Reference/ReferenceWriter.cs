using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using EdgeQuant.Core.Errors;

namespace EdgeQuant.Verification.Reference;

/// <summary>
/// Writes a <c>.eqref</c> file (<see cref="ReferenceFormat"/>) position by position: the header and tokens first,
/// then one record per scored position in chunk order, then the checksum. The bytes go to a temporary file beside
/// the output, renamed over it by <see cref="Complete"/>; disposing without completing removes the temporary file.
/// </summary>
public sealed class ReferenceWriter : IDisposable
{
    private readonly string _path;
    private readonly string _temp;
    private readonly FileStream _stream;
    private readonly IncrementalHash _sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private readonly byte[] _record;
    private readonly int[] _order;
    private readonly long _expectedRecords;
    private long _records;
    private bool _completed;

    /// <param name="chunkTokens">The chunks' text tokens, n_ctx × n_chunks (before the BOS replacement).</param>
    public ReferenceWriter(string path, ReferenceHeader header, ReadOnlySpan<int> chunkTokens)
    {
        ArgumentNullException.ThrowIfNull(header);
        Validate(header);
        if (chunkTokens.Length != (long)header.NCtx * header.NChunks)
            throw new ArgumentException($"{chunkTokens.Length} tokens given; n_ctx {header.NCtx} × {header.NChunks} chunks needed", nameof(chunkTokens));
        Header = header;
        _path = Path.GetFullPath(path);
        var dir = Path.GetDirectoryName(_path)!;
        if (!Directory.Exists(dir)) throw new BadInputException($"{path}: folder {dir} does not exist");
        if (Directory.Exists(_path)) throw new BadInputException($"{path}: is a folder; the reference output is a file");
        _temp = Path.Combine(dir, $".{Path.GetFileName(_path)}.{Environment.ProcessId}.tmp");
        _record = new byte[header.RecordBytes];
        _order = new int[Math.Max(header.TopK, 1)];
        _expectedRecords = header.ScoredPositions;
        _stream = new FileStream(_temp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16);
        try
        {
            WriteHeader(header, chunkTokens);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public ReferenceHeader Header { get; }

    /// <summary>Records written so far.</summary>
    public long Records => _records;

    /// <summary>Bytes written so far (the checksum adds <see cref="ReferenceFormat.ChecksumBytes"/> at the end).</summary>
    public long BytesWritten => _stream.Position;

    /// <summary>Appends the record of the next scored position from its logits (and the token it scores, for top-K).</summary>
    public void Add(ReadOnlySpan<float> logits, int target)
    {
        ObjectDisposedException.ThrowIf(_completed, this);
        if (logits.Length != Header.NVocab)
            throw new ArgumentException($"{logits.Length} logits; the vocabulary has {Header.NVocab}", nameof(logits));
        if ((uint)target >= (uint)Header.NVocab) throw new ArgumentOutOfRangeException(nameof(target));
        if (_records >= _expectedRecords)
            throw new InvalidOperationException($"all {_expectedRecords} records are already written");
        foreach (var l in logits)
        {
            // A NaN or +inf logit would make every stored log-prob meaningless; fail where it happens.
            if (float.IsNaN(l) || float.IsPositiveInfinity(l))
                throw new InternalFailureException($"the reference model produced a non-finite logit ({l}) at scored position {_records}; no reference written");
        }
        if (Header.Mode == ReferenceMode.Full) LogProbEncoding.EncodeFull(logits, _record);
        else LogProbEncoding.EncodeTopK(logits, target, Header.TopK, _record, _order);
        Write(_record);
        _records++;
    }

    /// <summary>Writes the checksum and renames the file into place. Every record must have been added.</summary>
    /// <returns>The file's size in bytes.</returns>
    public long Complete()
    {
        ObjectDisposedException.ThrowIf(_completed, this);
        if (_records != _expectedRecords)
            throw new InvalidOperationException($"{_records} of {_expectedRecords} records written");
        var hash = _sha.GetHashAndReset();
        _stream.Write(hash);
        long size = _stream.Position;
        _stream.Flush(flushToDisk: true);
        _stream.Dispose();
        File.Move(_temp, _path, overwrite: true);
        _completed = true;
        return size;
    }

    public void Dispose()
    {
        _stream.Dispose();
        _sha.Dispose();
        if (!_completed)
        {
            try { File.Delete(_temp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
        _completed = true;
    }

    private void Write(ReadOnlySpan<byte> bytes)
    {
        _stream.Write(bytes);
        _sha.AppendData(bytes);
    }

    private void WriteHeader(ReferenceHeader h, ReadOnlySpan<int> tokens)
    {
        var name = Encoding.UTF8.GetBytes(h.ModelName);
        int headerBytes = ReferenceFormat.HeaderBytes(name.Length);
        var b = new byte[headerBytes];
        ReferenceFormat.Magic.CopyTo(b);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(8), ReferenceFormat.Version);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(12), (uint)headerBytes);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(16), (uint)h.Mode);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(20), (uint)h.NVocab);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(24), (uint)h.NCtx);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(28), (uint)h.NChunks);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(32), (uint)h.TopK);
        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(36), h.Bos ?? -1);
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(40), (ulong)h.TextTokens);
        h.ModelSha256.CopyTo(b, 48);
        h.TextSha256.CopyTo(b, 80);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(112), (uint)name.Length);
        name.CopyTo(b, ReferenceFormat.FixedHeaderBytes);
        Write(b);

        var t = new byte[4 * Math.Min(tokens.Length, 1 << 16)];
        for (int start = 0; start < tokens.Length; start += t.Length / 4)
        {
            int n = Math.Min(t.Length / 4, tokens.Length - start);
            for (int i = 0; i < n; i++)
            {
                int id = tokens[start + i];
                if ((uint)id >= (uint)h.NVocab)
                    throw new ArgumentException($"token {id} at chunk position {start + i} is outside the vocabulary of {h.NVocab}", nameof(tokens));
                BinaryPrimitives.WriteInt32LittleEndian(t.AsSpan(4 * i), id);
            }
            Write(t.AsSpan(0, 4 * n));
        }
    }

    private static void Validate(ReferenceHeader h)
    {
        if (h.NVocab is < 2 or > ReferenceFormat.MaxVocab) throw new ArgumentOutOfRangeException(nameof(h), $"n_vocab {h.NVocab}");
        if (h.NCtx is < 4 or > ReferenceFormat.MaxContext) throw new ArgumentOutOfRangeException(nameof(h), $"n_ctx {h.NCtx}");
        if (h.NChunks is < 1 or > ReferenceFormat.MaxChunks) throw new ArgumentOutOfRangeException(nameof(h), $"n_chunks {h.NChunks}");
        if (h.Mode == ReferenceMode.Full ? h.TopK != 0 : h.TopK < 1 || h.TopK > Math.Min(h.NVocab, ReferenceFormat.MaxTopK))
            throw new ArgumentOutOfRangeException(nameof(h), $"top_k {h.TopK} in {h.Mode} mode");
        if (h.Bos is { } bos && (uint)bos >= (uint)h.NVocab) throw new ArgumentOutOfRangeException(nameof(h), $"BOS {bos}");
        if (h.ModelSha256.Length != 32 || h.TextSha256.Length != 32) throw new ArgumentException("hashes are 32 bytes", nameof(h));
        if (Encoding.UTF8.GetByteCount(h.ModelName) > ReferenceFormat.MaxModelNameBytes)
            throw new ArgumentException($"model name longer than {ReferenceFormat.MaxModelNameBytes} bytes", nameof(h));
        if (h.TextTokens < (long)h.NCtx * h.NChunks) throw new ArgumentException("the text has fewer tokens than the chunks hold", nameof(h));
    }
}
