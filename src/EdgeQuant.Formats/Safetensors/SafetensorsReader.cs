using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using System.Text.Unicode;
using EdgeQuant.Core.Errors;
using EdgeQuant.Core.Tensors;
using EdgeQuant.Formats.IO;

namespace EdgeQuant.Formats.Safetensors;

/// <summary>One tensor entry of a safetensors header, with its offsets already checked against the file.</summary>
/// <param name="Name">Key in the header.</param>
/// <param name="Type">Element type.</param>
/// <param name="Dtype">The dtype string as written (F32, BF16, …).</param>
/// <param name="Shape">Row-major shape, outermost first (PyTorch order).</param>
/// <param name="DataBegin">data_offsets[0], relative to the start of the data section.</param>
/// <param name="DataEnd">data_offsets[1], relative to the start of the data section.</param>
/// <param name="FileOffset">Absolute byte offset of the tensor's first byte in the file.</param>
/// <param name="HeaderOffset">Absolute byte offset of the tensor's key in the header (for error messages).</param>
public sealed record SafetensorsTensorInfo(string Name, TensorType Type, string Dtype, long[] Shape, long DataBegin, long DataEnd, long FileOffset, long HeaderOffset)
{
    public long ByteLength => DataEnd - DataBegin;
    public long ElementCount => Shape.Aggregate(1L, (a, b) => a * b);
}

/// <summary>An open safetensors file: its header and memory-mapped tensor bytes. Spans stay valid until disposal.</summary>
public sealed class SafetensorsFile : IDisposable
{
    private readonly Dictionary<string, SafetensorsTensorInfo> _byName;

    internal SafetensorsFile(MappedFile file, long dataOffset, List<SafetensorsTensorInfo> tensors, Dictionary<string, string> metadata)
    {
        File = file;
        DataOffset = dataOffset;
        Tensors = tensors;
        Metadata = metadata;
        _byName = tensors.ToDictionary(t => t.Name, StringComparer.Ordinal);
    }

    public MappedFile File { get; }
    public string Path => File.Path;

    /// <summary>Absolute offset of the data section (8 + header length).</summary>
    public long DataOffset { get; }

    /// <summary>Tensors in header order.</summary>
    public IReadOnlyList<SafetensorsTensorInfo> Tensors { get; }

    /// <summary>The <c>__metadata__</c> string map (empty when absent).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    public SafetensorsTensorInfo? Find(string name) => _byName.GetValueOrDefault(name);

    public SafetensorsTensorInfo Get(string name) =>
        _byName.TryGetValue(name, out var t) ? t : throw new BadInputException($"{Path}: tensor '{name}' is not in this file");

    /// <summary>The tensor's bytes as a span over the mapping (no copy).</summary>
    public ReadOnlySpan<byte> GetBytes(SafetensorsTensorInfo tensor)
    {
        if (tensor.ByteLength > int.MaxValue)
            SafetensorsThrow.Tensor(Path, tensor.Name, "data", tensor.FileOffset, $"{tensor.ByteLength} bytes is more than one span can address (2 GiB)");
        return File.Span(tensor.FileOffset, (int)tensor.ByteLength, $"tensor '{tensor.Name}' data");
    }

    public void Dispose() => File.Dispose();
}

/// <summary>
/// Reads safetensors files: an 8-byte little-endian header length, a UTF-8 JSON header, then the raw tensor bytes.
/// Every header field is checked (size cap, strict UTF-8, known dtype, shape×dtype = byte span, offsets inside the
/// data section, no overlaps) before any tensor byte is touched.
/// </summary>
public static class SafetensorsReader
{
    public static SafetensorsFile Open(string path) => Read(MappedFile.Open(path));

    /// <summary>Parses the header of <paramref name="file"/>; takes ownership of it (it is disposed on failure).</summary>
    public static SafetensorsFile Read(MappedFile file)
    {
        try
        {
            return ReadCore(file);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    private static SafetensorsFile ReadCore(MappedFile file)
    {
        var path = file.Path;
        if (file.Length < SafetensorsConstants.HeaderLengthBytes)
            SafetensorsThrow.At(path, "header length", 0, $"file is {file.Length} bytes, shorter than the 8-byte header length");
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(file.Span(0, 8, "header length"));
        if (headerLength > SafetensorsConstants.MaxHeaderBytes)
            SafetensorsThrow.At(path, "header length", 0, $"{headerLength} bytes exceeds the limit of {SafetensorsConstants.MaxHeaderBytes} bytes");
        long jsonOffset = SafetensorsConstants.HeaderLengthBytes;
        if ((long)headerLength > file.Length - jsonOffset)
            SafetensorsThrow.At(path, "header length", 0, $"header of {headerLength} bytes runs past the end of the {file.Length}-byte file (truncated?)");
        if (headerLength < 2)
            SafetensorsThrow.At(path, "header", jsonOffset, $"header of {headerLength} bytes cannot hold a JSON object");

        var json = file.Span(jsonOffset, (int)headerLength, "header");
        long dataOffset = jsonOffset + (long)headerLength;
        long dataLength = file.Length - dataOffset;
        var (tensors, metadata) = ParseHeader(json, path, jsonOffset, dataLength);
        // end <= dataLength for every tensor, so dataOffset + begin cannot overflow.
        return new SafetensorsFile(file, dataOffset, tensors.Select(t => t with { FileOffset = dataOffset + t.DataBegin }).ToList(), metadata);
    }

    /// <summary>
    /// Parses and validates a header. <paramref name="jsonOffset"/> is where the JSON starts in the file (for error
    /// offsets); <paramref name="dataLength"/> is the size of the data section the offsets must fit in.
    /// </summary>
    public static (List<SafetensorsTensorInfo> Tensors, Dictionary<string, string> Metadata) ParseHeader(
        ReadOnlySpan<byte> json, string path, long jsonOffset, long dataLength)
    {
        if (!Utf8.IsValid(json))
            SafetensorsThrow.At(path, "header", jsonOffset + FirstInvalidUtf8(json), "invalid UTF-8 in the JSON header");
        int first = 0;
        while (first < json.Length && json[first] is (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n') first++;
        if (first >= json.Length || json[first] != (byte)'{')
            SafetensorsThrow.At(path, "header", jsonOffset + first, "the header is not a JSON object (expected '{')");

        var tensors = new List<SafetensorsTensorInfo>();
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        var names = new HashSet<string>(StringComparer.Ordinal);
        bool sawMetadata = false;
        var reader = new Utf8JsonReader(json, new JsonReaderOptions
        {
            MaxDepth = SafetensorsConstants.MaxJsonDepth,
            CommentHandling = JsonCommentHandling.Disallow,
            AllowTrailingCommas = false,
        });
        try
        {
            Next(ref reader, path, jsonOffset, "header");
            if (reader.TokenType != JsonTokenType.StartObject)
                SafetensorsThrow.At(path, "header", jsonOffset + reader.TokenStartIndex, "the header is not a JSON object");
            while (true)
            {
                Next(ref reader, path, jsonOffset, "header");
                if (reader.TokenType == JsonTokenType.EndObject) break;
                long keyOffset = jsonOffset + reader.TokenStartIndex;
                string key = reader.GetString()!;
                if (key == SafetensorsConstants.MetadataKey)
                {
                    if (sawMetadata) SafetensorsThrow.At(path, SafetensorsConstants.MetadataKey, keyOffset, "appears twice");
                    sawMetadata = true;
                    Next(ref reader, path, jsonOffset, SafetensorsConstants.MetadataKey);
                    ParseMetadata(ref reader, path, jsonOffset, metadata);
                    continue;
                }
                if (!names.Add(key)) SafetensorsThrow.Tensor(path, key, "name", keyOffset, "appears twice in the header");
                Next(ref reader, path, jsonOffset, $"tensor '{key}'");
                tensors.Add(ParseTensor(ref reader, path, jsonOffset, key, keyOffset, dataLength));
            }
            if (reader.Read())
                SafetensorsThrow.At(path, "header", jsonOffset + reader.TokenStartIndex, "unexpected content after the JSON object");
        }
        catch (JsonException e)
        {
            SafetensorsThrow.At(path, "header", jsonOffset + reader.BytesConsumed, $"not valid JSON: {FirstSentence(e.Message)}");
        }
        catch (InvalidOperationException e)
        {
            // Utf8JsonReader.GetString throws this for escapes that decode to invalid UTF-16 (lone surrogates).
            SafetensorsThrow.At(path, "header", jsonOffset + reader.TokenStartIndex, $"invalid string in the JSON header: {FirstSentence(e.Message)}");
        }

        CheckOverlaps(tensors, path);
        return (tensors, metadata);
    }

    private static SafetensorsTensorInfo ParseTensor(ref Utf8JsonReader reader, string path, long jsonOffset, string name, long keyOffset, long dataLength)
    {
        if (reader.TokenType != JsonTokenType.StartObject)
            SafetensorsThrow.Tensor(path, name, "entry", jsonOffset + reader.TokenStartIndex, "is not a JSON object");
        string? dtype = null;
        long dtypeOffset = keyOffset;
        List<long>? shape = null;
        long[]? offsets = null;
        long offsetsOffset = keyOffset;
        while (true)
        {
            Next(ref reader, path, jsonOffset, $"tensor '{name}'");
            if (reader.TokenType == JsonTokenType.EndObject) break;
            long fieldOffset = jsonOffset + reader.TokenStartIndex;
            string field = reader.GetString()!;
            Next(ref reader, path, jsonOffset, $"tensor '{name}' {field}");
            switch (field)
            {
                case "dtype":
                    if (dtype is not null) SafetensorsThrow.Tensor(path, name, "dtype", fieldOffset, "appears twice");
                    if (reader.TokenType != JsonTokenType.String) SafetensorsThrow.Tensor(path, name, "dtype", fieldOffset, "is not a string");
                    dtype = reader.GetString()!;
                    dtypeOffset = fieldOffset;
                    break;
                case "shape":
                    if (shape is not null) SafetensorsThrow.Tensor(path, name, "shape", fieldOffset, "appears twice");
                    shape = ReadIntArray(ref reader, path, jsonOffset, name, "shape", fieldOffset, SafetensorsConstants.MaxRank);
                    break;
                case "data_offsets":
                    if (offsets is not null) SafetensorsThrow.Tensor(path, name, "data_offsets", fieldOffset, "appears twice");
                    var list = ReadIntArray(ref reader, path, jsonOffset, name, "data_offsets", fieldOffset, 2);
                    if (list.Count != 2) SafetensorsThrow.Tensor(path, name, "data_offsets", fieldOffset, $"has {list.Count} numbers, expected 2 [begin, end]");
                    offsets = [list[0], list[1]];
                    offsetsOffset = fieldOffset;
                    break;
                default:
                    // The reference implementation ignores fields it does not know; so do we.
                    reader.Skip();
                    break;
            }
        }
        if (dtype is null) SafetensorsThrow.Tensor(path, name, "dtype", keyOffset, "is missing");
        if (shape is null) SafetensorsThrow.Tensor(path, name, "shape", keyOffset, "is missing");
        if (offsets is null) SafetensorsThrow.Tensor(path, name, "data_offsets", keyOffset, "is missing");
        if (!TensorTypes.TryFromSafetensors(dtype, out var info))
            SafetensorsThrow.Tensor(path, name, "dtype", dtypeOffset, $"unknown dtype '{Printable(dtype)}' (known: {string.Join(", ", TensorTypes.All.Where(t => t.SafetensorsName is not null).Select(t => t.SafetensorsName))})");

        long elements = 1;
        foreach (var d in shape)
        {
            try { elements = checked(elements * d); }
            catch (OverflowException) { SafetensorsThrow.Tensor(path, name, "shape", keyOffset, $"[{string.Join(", ", shape)}] has too many elements"); }
        }
        long begin = offsets[0], end = offsets[1];
        if (begin > end)
            SafetensorsThrow.Tensor(path, name, "data_offsets", offsetsOffset, $"begin {begin} is after end {end}");
        if (end > dataLength)
            SafetensorsThrow.Tensor(path, name, "data_offsets", offsetsOffset, $"end {end} is past the end of the {dataLength}-byte data section (truncated?)");
        long? expected = TensorTypes.ByteSize(info.Type, elements);
        if (expected != end - begin)
            SafetensorsThrow.Tensor(path, name, "data_offsets", offsetsOffset,
                $"spans {end - begin} bytes but {dtype} [{string.Join(", ", shape)}] needs {(expected is { } e ? e.ToString() : "too many")} bytes");
        return new SafetensorsTensorInfo(name, info.Type, dtype, shape.ToArray(), begin, end, 0, keyOffset);
    }

    private static List<long> ReadIntArray(ref Utf8JsonReader reader, string path, long jsonOffset, string tensor, string field, long fieldOffset, int maxCount)
    {
        if (reader.TokenType != JsonTokenType.StartArray)
            SafetensorsThrow.Tensor(path, tensor, field, fieldOffset, "is not an array");
        var values = new List<long>();
        while (true)
        {
            Next(ref reader, path, jsonOffset, $"tensor '{tensor}' {field}");
            if (reader.TokenType == JsonTokenType.EndArray) return values;
            if (values.Count == maxCount)
                SafetensorsThrow.Tensor(path, tensor, field, jsonOffset + reader.TokenStartIndex, $"has more than {maxCount} entries");
            long v = -1;
            if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt64(out v) || v < 0)
                SafetensorsThrow.Tensor(path, tensor, field, jsonOffset + reader.TokenStartIndex, "holds something other than a non-negative integer");
            values.Add(v);
        }
    }

    private static void ParseMetadata(ref Utf8JsonReader reader, string path, long jsonOffset, Dictionary<string, string> metadata)
    {
        const string Field = SafetensorsConstants.MetadataKey;
        if (reader.TokenType == JsonTokenType.Null) return;
        if (reader.TokenType != JsonTokenType.StartObject)
            SafetensorsThrow.At(path, Field, jsonOffset + reader.TokenStartIndex, "is not a JSON object");
        while (true)
        {
            Next(ref reader, path, jsonOffset, Field);
            if (reader.TokenType == JsonTokenType.EndObject) return;
            long keyOffset = jsonOffset + reader.TokenStartIndex;
            string key = reader.GetString()!;
            Next(ref reader, path, jsonOffset, Field);
            if (reader.TokenType != JsonTokenType.String)
                SafetensorsThrow.At(path, $"{Field}.{Printable(key)}", jsonOffset + reader.TokenStartIndex, "is not a string (metadata values must be strings)");
            if (!metadata.TryAdd(key, reader.GetString()!))
                SafetensorsThrow.At(path, $"{Field}.{Printable(key)}", keyOffset, "appears twice");
        }
    }

    private static void CheckOverlaps(List<SafetensorsTensorInfo> tensors, string path)
    {
        // Empty tensors occupy no bytes, so they cannot overlap anything.
        var sorted = tensors.Where(t => t.DataEnd > t.DataBegin).OrderBy(t => t.DataBegin).ToList();
        for (int i = 1; i < sorted.Count; i++)
        {
            var prev = sorted[i - 1];
            var cur = sorted[i];
            if (cur.DataBegin < prev.DataEnd)
                SafetensorsThrow.Tensor(path, cur.Name, "data_offsets", cur.HeaderOffset,
                    $"[{cur.DataBegin}, {cur.DataEnd}) overlaps tensor '{prev.Name}' [{prev.DataBegin}, {prev.DataEnd})");
        }
    }

    private static void Next(ref Utf8JsonReader reader, string path, long jsonOffset, string field)
    {
        if (!reader.Read()) SafetensorsThrow.At(path, field, jsonOffset + reader.BytesConsumed, "the JSON header ends early");
    }

    private static long FirstInvalidUtf8(ReadOnlySpan<byte> bytes)
    {
        int i = 0;
        while (i < bytes.Length)
        {
            if (Rune.DecodeFromUtf8(bytes[i..], out _, out int used) != OperationStatus.Done) return i;
            i += used;
        }
        return i;
    }

    private static string FirstSentence(string message)
    {
        int cut = message.IndexOf(" LineNumber", StringComparison.Ordinal);
        return (cut > 0 ? message[..cut] : message).Trim();
    }

    /// <summary>Names from a hostile file go into one-line messages: keep them short and free of control characters.</summary>
    internal static string Printable(string s)
    {
        var sb = new StringBuilder(Math.Min(s.Length, 80));
        foreach (char c in s.Length > 80 ? s[..80] : s) sb.Append(char.IsControl(c) ? '?' : c);
        if (s.Length > 80) sb.Append('…');
        return sb.ToString();
    }
}
