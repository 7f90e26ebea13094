using System.Text.Encodings.Web;
using System.Text.Json;
using EdgeQuant.Core.Errors;
using EdgeQuant.Core.Tensors;

namespace EdgeQuant.Formats.Safetensors;

/// <summary>A tensor to be written: name, element type and row-major shape.</summary>
public sealed record SafetensorsTensorSpec(string Name, TensorType Type, long[] Shape)
{
    public long ByteLength => TensorTypes.ByteSize(Type, Shape.Aggregate(1L, (a, b) => checked(a * b)))
        ?? throw new ArgumentException($"tensor '{Name}': {Type} cannot hold shape [{string.Join(", ", Shape)}]");
}

/// <summary>
/// Writes a safetensors file the way huggingface/safetensors does: tensors ordered by dtype (widest first) then name,
/// the header's keys in that order after <c>__metadata__</c>, compact JSON padded with spaces so the data starts on an
/// 8-byte boundary. All tensors are declared up front (the header needs every offset); their bytes may then be
/// written in any order and in pieces, so a caller can stream one tensor at a time. The file appears under its name
/// only at <see cref="Commit"/> (temp file + rename).
/// </summary>
public sealed class SafetensorsWriter : IDisposable
{
    private readonly string _path;
    private readonly string _tempPath;
    private readonly FileStream _stream;
    private readonly Dictionary<string, Slot> _slots;
    private readonly long _dataOffset;
    private bool _committed;

    private sealed class Slot(SafetensorsTensorSpec spec, long begin)
    {
        public SafetensorsTensorSpec Spec { get; } = spec;
        public long Begin { get; } = begin;
        public long Length { get; } = spec.ByteLength;
        public long Written { get; set; }
    }

    public SafetensorsWriter(string path, IEnumerable<SafetensorsTensorSpec> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        _path = path;
        var ordered = tensors.OrderByDescending(t => DtypeRank(t.Type)).ThenBy(t => t.Name, StringComparer.Ordinal).ToList();
        _slots = new Dictionary<string, Slot>(StringComparer.Ordinal);
        long offset = 0;
        foreach (var t in ordered)
        {
            if (TensorTypes.Get(t.Type).SafetensorsName is null)
                throw new ArgumentException($"tensor '{t.Name}': safetensors has no dtype for {t.Type}");
            if (t.Name == SafetensorsConstants.MetadataKey) throw new ArgumentException($"'{t.Name}' is reserved for metadata");
            var slot = new Slot(t, offset);
            if (!_slots.TryAdd(t.Name, slot)) throw new ArgumentException($"tensor '{t.Name}' is declared twice");
            offset = checked(offset + slot.Length);
        }
        Order = ordered;

        byte[] header = BuildHeader(ordered, _slots, metadata);
        _dataOffset = SafetensorsConstants.HeaderLengthBytes + header.Length;
        var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        Directory.CreateDirectory(dir);
        _tempPath = Path.Combine(dir, $".{Path.GetFileName(path)}.{Guid.NewGuid():N}.tmp");
        _stream = new FileStream(_tempPath, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16);
        Span<byte> len = stackalloc byte[8];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)header.Length);
        _stream.Write(len);
        _stream.Write(header);
        _stream.SetLength(_dataOffset + offset);
    }

    /// <summary>Tensors in the order their bytes lie in the file (writing in this order avoids seeks).</summary>
    public IReadOnlyList<SafetensorsTensorSpec> Order { get; }

    /// <summary>Writes all of a tensor's bytes.</summary>
    public void WriteTensor(string name, ReadOnlySpan<byte> bytes) => WriteTensor(name, bytes, 0);

    /// <summary>Writes a piece of a tensor's bytes starting <paramref name="offsetInTensor"/> bytes into it; pieces must not overlap.</summary>
    public void WriteTensor(string name, ReadOnlySpan<byte> bytes, long offsetInTensor)
    {
        ObjectDisposedException.ThrowIf(_committed, this);
        if (!_slots.TryGetValue(name, out var slot)) throw new ArgumentException($"tensor '{name}' was not declared");
        if (offsetInTensor < 0 || offsetInTensor > slot.Length - bytes.Length)
            throw new ArgumentOutOfRangeException(nameof(offsetInTensor), $"tensor '{name}': bytes [{offsetInTensor}, {offsetInTensor + bytes.Length}) outside its {slot.Length} bytes");
        long at = _dataOffset + slot.Begin + offsetInTensor;
        if (_stream.Position != at) _stream.Position = at;
        _stream.Write(bytes);
        slot.Written += bytes.Length;
    }

    /// <summary>Checks that every tensor was written in full, flushes, and moves the file into place.</summary>
    public void Commit()
    {
        foreach (var s in _slots.Values)
            if (s.Written != s.Length)
                throw new InternalFailureException($"{_path}: tensor '{s.Spec.Name}' got {s.Written} of its {s.Length} bytes");
        _stream.Flush(flushToDisk: false);
        _stream.Dispose();
        File.Move(_tempPath, _path, overwrite: true);
        _committed = true;
    }

    public void Dispose()
    {
        if (_committed) return;
        _stream.Dispose();
        try { File.Delete(_tempPath); } catch (IOException) { }
        _committed = true;
    }

    /// <summary>Writes a whole file from tensors already in memory.</summary>
    public static void Write(string path, IEnumerable<(SafetensorsTensorSpec Spec, byte[] Data)> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var list = tensors.ToList();
        using var w = new SafetensorsWriter(path, list.Select(t => t.Spec), metadata);
        foreach (var (spec, data) in w.Order.Join(list, o => o.Name, l => l.Spec.Name, (_, l) => l))
            w.WriteTensor(spec.Name, data);
        w.Commit();
    }

    private static byte[] BuildHeader(List<SafetensorsTensorSpec> ordered, Dictionary<string, Slot> slots, IReadOnlyDictionary<string, string>? metadata)
    {
        using var ms = new MemoryStream();
        // serde_json writes non-ASCII as raw UTF-8; the relaxed encoder keeps names readable the same way.
        using (var json = new Utf8JsonWriter(ms, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            json.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                json.WriteStartObject(SafetensorsConstants.MetadataKey);
                foreach (var (k, v) in metadata.OrderBy(p => p.Key, StringComparer.Ordinal)) json.WriteString(k, v);
                json.WriteEndObject();
            }
            foreach (var t in ordered)
            {
                var slot = slots[t.Name];
                json.WriteStartObject(t.Name);
                json.WriteString("dtype", TensorTypes.Get(t.Type).SafetensorsName);
                json.WriteStartArray("shape");
                foreach (var d in t.Shape) json.WriteNumberValue(d);
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(slot.Begin);
                json.WriteNumberValue(slot.Begin + slot.Length);
                json.WriteEndArray();
                json.WriteEndObject();
            }
            json.WriteEndObject();
        }
        int pad = (int)((SafetensorsConstants.HeaderAlignment - ms.Length % SafetensorsConstants.HeaderAlignment) % SafetensorsConstants.HeaderAlignment);
        for (int i = 0; i < pad; i++) ms.WriteByte((byte)' ');
        if (ms.Length > SafetensorsConstants.MaxHeaderBytes)
            throw new BadInputException($"safetensors header of {ms.Length} bytes exceeds the {SafetensorsConstants.MaxHeaderBytes}-byte limit readers enforce");
        return ms.ToArray();
    }

    /// <summary>Position of the dtype in safetensors' Dtype enum; files are laid out widest-first by it, as the reference writer does.</summary>
    private static int DtypeRank(TensorType t) => t switch
    {
        TensorType.Bool => 0,
        TensorType.U8 => 4,
        TensorType.I8 => 5,
        TensorType.I16 => 9,
        TensorType.F16 => 11,
        TensorType.BF16 => 12,
        TensorType.I32 => 13,
        TensorType.F32 => 15,
        TensorType.F64 => 16,
        TensorType.I64 => 17,
        _ => -1,
    };
}
