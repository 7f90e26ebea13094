using System.Security.Cryptography;
using EdgeQuant.Core.Errors;
using EdgeQuant.Formats.IO;

namespace EdgeQuant.Compression.Imatrix;

/// <summary>The two importance-matrix files llama.cpp reads.</summary>
public enum ImatrixFormat
{
    /// <summary>llama-imatrix's default since 2025: a GGUF with <c>general.type = imatrix</c>, raw sums and counts per tensor.</summary>
    Gguf,

    /// <summary>The legacy <c>.dat</c> layout: per tensor the mean squared activation times a call count.</summary>
    Dat,
}

/// <summary>
/// One tensor's importance data as stored. For a GGUF-format (or collected) matrix, <see cref="Sums"/> are the raw
/// sums of squared activations, <see cref="Columns"/> per matrix, and <see cref="Counts"/> the rows (tokens) summed
/// per matrix (one per expert for a merged-expert tensor, else one). For a legacy matrix, <see cref="Sums"/> hold
/// (sum / count) · ncall and <see cref="Counts"/> is the single ncall.
/// </summary>
public sealed class ImatrixEntry
{
    private readonly float[] _sums;
    private readonly double[] _counts;

    internal ImatrixEntry(string name, float[] sums, double[] counts)
    {
        Name = name;
        _sums = sums;
        _counts = counts;
    }

    /// <summary>The weight's GGUF name, e.g. <c>blk.0.attn_q.weight</c>.</summary>
    public string Name { get; }

    public ReadOnlySpan<float> Sums => _sums;

    /// <summary>
    /// Counts as stored: exact for the GGUF's F32 values and for the legacy int32 ncall (a double holds both).
    /// </summary>
    public ReadOnlySpan<double> Counts => _counts;

    /// <summary>Values per matrix (the weight's input features); for a legacy entry, all values.</summary>
    public int Columns => _sums.Length / _counts.Length;

    /// <summary>Matrices (experts) the sums cover.</summary>
    public int Matrices => _counts.Length;

    internal float[] SumsArray => _sums;
    internal double[] CountsArray => _counts;
}

/// <summary>
/// An importance matrix as llama.cpp's tools exchange it: per weight tensor the per-input-column sums of squared
/// activations and how many rows they summed, plus the datasets and chunking it was computed with.
/// <see cref="ImportanceFor"/> gives exactly the floats llama-quantize hands the quantizers for a tensor.
/// </summary>
public sealed class ImportanceMatrix
{
    /// <summary>llama-imatrix's default <c>-c 512</c>: the chunk size assumed when a legacy file is converted to GGUF.</summary>
    public const int DefaultLegacyChunkSize = 512;

    private readonly SortedDictionary<string, ImatrixEntry> _entries;
    private byte[]? _storedBytes;
    private string? _sha256;

    private ImportanceMatrix(SortedDictionary<string, ImatrixEntry> entries, IReadOnlyList<string> datasets, int chunkCount, int chunkSize,
        ImatrixFormat kind)
    {
        _entries = entries;
        Datasets = datasets;
        ChunkCount = chunkCount;
        ChunkSize = chunkSize;
        Kind = kind;
    }

    /// <summary>Weight names in ordinal (UTF-8 byte) order, as llama-imatrix sorts them.</summary>
    public IReadOnlyCollection<string> TensorNames => _entries.Keys;

    public IReadOnlyList<string> Datasets { get; }

    /// <summary><c>imatrix.chunk_count</c> (legacy: the trailing call count; 0 when absent).</summary>
    public int ChunkCount { get; }

    /// <summary><c>imatrix.chunk_size</c>, tokens per chunk (0 for a legacy file, which does not record it).</summary>
    public int ChunkSize { get; }

    /// <summary>
    /// What the stored values mean: <see cref="ImatrixFormat.Gguf"/> raw sums and counts (also for collected
    /// matrices), or <see cref="ImatrixFormat.Dat"/> legacy scaled means with one ncall per tensor.
    /// </summary>
    public ImatrixFormat Kind { get; }

    /// <summary>The file this matrix was read from (null when collected in memory).</summary>
    public string? SourcePath { get; private init; }

    public ImatrixEntry? Entry(string tensorName) => _entries.GetValueOrDefault(tensorName);

    /// <summary>
    /// The importance llama-quantize passes to the quantizers for <paramref name="tensorName"/> (e.g.
    /// <c>blk.0.attn_q.weight</c>; for merged experts, expert after expert), or null when the matrix has no such
    /// tensor. A new array on every call.
    /// </summary>
    /// <remarks>
    /// The float operations of tools/quantize/quantize.cpp <c>load_imatrix</c>: GGUF counts are rounded with
    /// <c>lround</c> to integers, then each matrix's sums are divided by its count as a float, and a matrix with a
    /// zero (or negative) count gets all ones; legacy values are divided by their ncall when it is positive and
    /// kept as they are otherwise. A collected matrix is normalized as llama-quantize would see it after
    /// <see cref="Write"/> (its counts stored as F32).
    /// </remarks>
    public float[]? ImportanceFor(string tensorName)
    {
        if (!_entries.TryGetValue(tensorName, out var e)) return null;
        var sums = e.SumsArray;
        var result = new float[sums.Length];
        if (Kind == ImatrixFormat.Dat)
        {
            long ncall = (long)e.CountsArray[0];
            if (ncall > 0)
            {
                float n = ncall;
                for (int i = 0; i < sums.Length; i++) result[i] = sums[i] / n;
            }
            else sums.CopyTo(result, 0);
            return result;
        }
        int matrices = e.Matrices, cols = sums.Length / matrices;
        for (int j = 0; j < matrices; j++)
        {
            float count = StoredCountAsQuantizeSeesIt(e.CountsArray[j]);
            var dst = result.AsSpan(j * cols, cols);
            if (count > 0f)
            {
                var src = sums.AsSpan(j * cols, cols);
                for (int i = 0; i < cols; i++) dst[i] = src[i] / count;
            }
            else dst.Fill(1f);
        }
        return result;
    }

    /// <summary>(float)(int64)lround((float)count): the F32 count in the file, rounded as common_imatrix_load does.</summary>
    internal static float StoredCountAsQuantizeSeesIt(double count) =>
        (long)Math.Round((double)(float)count, MidpointRounding.AwayFromZero);

    /// <summary>
    /// SHA-256 (lowercase hex) of the data as stored: the bytes of the file this matrix was read from, or for a
    /// matrix built in memory the bytes <see cref="Write"/> stores in GGUF format.
    /// </summary>
    public string ContentSha256 => _sha256 ??= Convert.ToHexStringLower(SHA256.HashData(_storedBytes ?? ImatrixGguf.Serialize(this, DefaultLegacyChunkSize)));

    /// <summary>
    /// Reads an imatrix file, GGUF or legacy .dat (told apart by the GGUF magic). Anything malformed, or refused by
    /// llama-quantize (a GGUF without the imatrix metadata keys, no entries, non-F32 data, non-finite values), is a
    /// <see cref="FileFormatException"/> naming the file, the field or tensor and the byte offset.
    /// </summary>
    public static ImportanceMatrix Read(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var file = MappedFile.Open(path);
        return Read(file);
    }

    /// <summary>Reads from a mapping (or bytes wrapped by <see cref="MappedFile.FromBytes"/>, for tests).</summary>
    public static ImportanceMatrix Read(MappedFile file)
    {
        bool gguf = file.Length >= 4 && file.Span(0, 4, "magic").SequenceEqual("GGUF"u8);
        var parsed = gguf ? ImatrixGguf.Read(file) : ImatrixDat.Read(file);
        var bytes = file.Span(0, checked((int)file.Length), "file").ToArray();
        return new ImportanceMatrix(parsed.Entries, parsed.Datasets, parsed.ChunkCount, parsed.ChunkSize, gguf ? ImatrixFormat.Gguf : ImatrixFormat.Dat)
        {
            SourcePath = file.Path,
            _storedBytes = bytes,
        };
    }

    /// <summary>
    /// Builds a GGUF-kind matrix from raw per-tensor sums and counts (what <see cref="ImatrixCollector"/> produces).
    /// </summary>
    /// <param name="entries">Name, sums (matrices × columns, matrix after matrix), counts (one per matrix).</param>
    public static ImportanceMatrix FromSums(IEnumerable<(string Name, float[] Sums, long[] Counts)> entries, IReadOnlyList<string> datasets,
        int chunkCount, int chunkSize)
    {
        ArgumentNullException.ThrowIfNull(entries);
        ArgumentNullException.ThrowIfNull(datasets);
        ArgumentOutOfRangeException.ThrowIfNegative(chunkCount);
        ArgumentOutOfRangeException.ThrowIfNegative(chunkSize);
        var map = NewMap();
        foreach (var (name, sums, counts) in entries)
        {
            ArgumentException.ThrowIfNullOrEmpty(name);
            if (counts.Length == 0 || sums.Length == 0 || sums.Length % counts.Length != 0)
                throw new ArgumentException($"'{name}': {sums.Length} sums do not split into {counts.Length} matrices");
            if (counts.Any(c => c < 0)) throw new ArgumentException($"'{name}': negative count");
            if (!map.TryAdd(name, new ImatrixEntry(name, (float[])sums.Clone(), counts.Select(c => (double)c).ToArray())))
                throw new ArgumentException($"'{name}': duplicate tensor name");
        }
        return new ImportanceMatrix(map, datasets.ToArray(), chunkCount, chunkSize, ImatrixFormat.Gguf);
    }

    /// <summary>
    /// Writes the matrix to <paramref name="path"/> (a temporary file beside it, renamed at the end), in llama-imatrix's
    /// layout for <paramref name="format"/>: for GGUF, keys <c>general.type</c>, <c>imatrix.datasets</c>,
    /// <c>imatrix.chunk_count</c>, <c>imatrix.chunk_size</c> and per tensor <c>NAME.in_sum2</c> [matrices, columns]
    /// and <c>NAME.counts</c> [matrices, 1] (1-D for a single matrix, as gguf.cpp drops trailing 1s), names sorted; for .dat, save_imatrix_legacy's records. Converting keeps
    /// llama-imatrix's arithmetic: a legacy matrix becomes sums · chunk size and counts ncall · chunk size (chunk
    /// size <paramref name="legacyChunkSize"/>, llama-imatrix's -c); raw sums become (sum / count) · ncall.
    /// </summary>
    public void Write(string path, ImatrixFormat format = ImatrixFormat.Gguf) => Write(path, format, DefaultLegacyChunkSize);

    public void Write(string path, ImatrixFormat format, int legacyChunkSize)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var bytes = Serialize(format, legacyChunkSize);
        AtomicFile.Write(path, bytes);
    }

    /// <summary>The bytes <see cref="Write(string, ImatrixFormat, int)"/> stores.</summary>
    public byte[] Serialize(ImatrixFormat format = ImatrixFormat.Gguf, int legacyChunkSize = DefaultLegacyChunkSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(legacyChunkSize, 1);
        if (format == Kind && _storedBytes is not null) return (byte[])_storedBytes.Clone();
        return format switch
        {
            ImatrixFormat.Gguf => ImatrixGguf.Serialize(this, legacyChunkSize),
            ImatrixFormat.Dat => ImatrixDat.Serialize(this),
            _ => throw new ArgumentOutOfRangeException(nameof(format), format, null),
        };
    }

    internal IEnumerable<ImatrixEntry> Entries => _entries.Values;

    internal static SortedDictionary<string, ImatrixEntry> NewMap() => new(Utf8Order.Instance);

    internal sealed record Parsed(SortedDictionary<string, ImatrixEntry> Entries, IReadOnlyList<string> Datasets, int ChunkCount, int ChunkSize);

    /// <summary>std::string's operator&lt;: unsigned byte order of the UTF-8 encoding.</summary>
    internal sealed class Utf8Order : IComparer<string>
    {
        public static readonly Utf8Order Instance = new();

        public int Compare(string? x, string? y)
        {
            if (ReferenceEquals(x, y)) return 0;
            if (x is null) return -1;
            if (y is null) return 1;
            return System.Text.Encoding.UTF8.GetBytes(x).AsSpan().SequenceCompareTo(System.Text.Encoding.UTF8.GetBytes(y));
        }
    }
}

/// <summary>Output through a temporary file in the target folder, renamed over the target when complete.</summary>
internal static class AtomicFile
{
    public static void Write(string path, ReadOnlySpan<byte> bytes)
    {
        string full = Path.GetFullPath(path);
        string dir = Path.GetDirectoryName(full) ?? ".";
        if (Directory.Exists(full)) throw new BadInputException($"{path}: is a folder; the importance matrix is written to a file");
        Directory.CreateDirectory(dir);
        string temp = Path.Combine(dir, $".{Path.GetFileName(full)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var fs = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                fs.Write(bytes);
                fs.Flush(flushToDisk: false);
            }
            File.Move(temp, full, overwrite: true);
        }
        catch
        {
            try { File.Delete(temp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw;
        }
    }
}
