using EdgeQuant.Core.Errors;
using EdgeQuant.Core.Tensors;
using EdgeQuant.Formats.IO;

namespace EdgeQuant.Formats.Gguf;

/// <summary>One metadata entry in file order. <see cref="Offset"/> is where its key starts, for error messages.</summary>
public sealed record GgufKeyValue(string Key, GgufValue Value, long Offset);

/// <summary>One tensor as the GGUF header describes it.</summary>
public sealed class GgufTensorInfo
{
    internal GgufTensorInfo(string name, long[] ne, TensorType type, long offset, long byteLength, long infoOffset, long dataOffset)
    {
        Name = name;
        Ne = ne;
        Type = type;
        Offset = offset;
        ByteLength = byteLength;
        InfoOffset = infoOffset;
        AbsoluteOffset = dataOffset + offset;
    }

    public string Name { get; }

    /// <summary>ggml dimensions, innermost (contiguous) first: a [out, in] weight has ne = [in, out].</summary>
    public IReadOnlyList<long> Ne { get; }

    /// <summary>Row-major shape (outermost first): <see cref="Ne"/> reversed.</summary>
    public long[] Shape => Ne.Reverse().ToArray();

    public TensorType Type { get; }

    /// <summary>Offset of the data relative to the start of the data section, as stored in the file.</summary>
    public long Offset { get; }

    /// <summary>Offset of the data from the start of the file.</summary>
    public long AbsoluteOffset { get; }

    public long ByteLength { get; }

    /// <summary>Where this tensor's info record starts in the file.</summary>
    public long InfoOffset { get; }

    public long ElementCount => Ne.Aggregate(1L, (a, b) => a * b);

    public override string ToString() => $"{Name} {Type} [{string.Join(", ", Shape)}] @ {AbsoluteOffset}";
}

/// <summary>
/// A parsed GGUF file: version, metadata in file order, tensor infos, alignment and the data section. Tensor data is
/// handed out as spans over the memory-mapped file; dispose the <see cref="GgufFile"/> (or whoever owns the
/// <see cref="MappedFile"/>) when done.
/// </summary>
public sealed class GgufFile : IDisposable
{
    private readonly Dictionary<string, GgufKeyValue> _byKey;
    private readonly Dictionary<string, GgufTensorInfo> _byName;
    private readonly bool _ownsFile;
    private int _disposed;

    internal GgufFile(MappedFile file, bool ownsFile, uint version, IReadOnlyList<GgufKeyValue> metadata,
        IReadOnlyList<GgufTensorInfo> tensors, uint alignment, long infosEnd, long dataOffset)
    {
        InfosEnd = infosEnd;
        File = file;
        _ownsFile = ownsFile;
        Version = version;
        Metadata = metadata;
        Tensors = tensors;
        Alignment = alignment;
        DataOffset = dataOffset;
        _byKey = metadata.ToDictionary(kv => kv.Key, StringComparer.Ordinal);
        _byName = tensors.ToDictionary(t => t.Name, StringComparer.Ordinal);
    }

    public MappedFile File { get; }

    public string Path => File.Path;

    public uint Version { get; }

    public IReadOnlyList<GgufKeyValue> Metadata { get; }

    public IReadOnlyList<GgufTensorInfo> Tensors { get; }

    /// <summary>From <c>general.alignment</c>, or 32.</summary>
    public uint Alignment { get; }

    /// <summary>Where the tensor infos end (the header's last byte + 1), before the padding to the data section.</summary>
    public long InfosEnd { get; }

    /// <summary>Where the data section starts (the end of the tensor infos, padded to <see cref="Alignment"/>).</summary>
    public long DataOffset { get; }

    /// <summary><c>general.architecture</c>, when present and a string.</summary>
    public string? Architecture => Find(GgufConstants.ArchitectureKey)?.AsString();

    public GgufValue? Find(string key) => _byKey.TryGetValue(key, out var kv) ? kv.Value : null;

    public GgufKeyValue? FindEntry(string key) => _byKey.GetValueOrDefault(key);

    public bool ContainsKey(string key) => _byKey.ContainsKey(key);

    public GgufTensorInfo? FindTensor(string name) => _byName.GetValueOrDefault(name);

    /// <summary>The stored bytes of a tensor: a span over the mapped file, not a copy.</summary>
    public ReadOnlySpan<byte> TensorData(GgufTensorInfo tensor)
    {
        if (tensor.ByteLength > int.MaxValue)
            throw new BadInputException($"{Path}: tensor '{tensor.Name}' at byte offset {tensor.AbsoluteOffset}: {tensor.ByteLength} bytes is more than one span can hold (2 GiB)");
        return File.Span(tensor.AbsoluteOffset, (int)tensor.ByteLength, $"tensor '{tensor.Name}' data");
    }

    public ReadOnlySpan<byte> TensorData(string name) =>
        TensorData(FindTensor(name) ?? throw new BadInputException($"{Path}: tensor '{name}' is missing"));

    /// <summary>Releases the mapping when this file owns it; safe to call more than once (a Model may own it too).</summary>
    public void Dispose()
    {
        if (_ownsFile && Interlocked.Exchange(ref _disposed, 1) == 0) File.Dispose();
    }
}
