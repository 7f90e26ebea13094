using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using EdgeQuant.Core.Errors;
using EdgeQuant.Core.Tensors;

namespace EdgeQuant.Formats.Gguf;

/// <summary>
/// A tensor to be written: name, type, row-major shape and a data source that is asked for its bytes only when the
/// writer reaches the tensor, so a whole model is never held twice. The source must produce exactly
/// <see cref="ByteLength"/> bytes of <see cref="Type"/> (already quantized for block types).
/// </summary>
public sealed class GgufTensorToWrite
{
    private readonly Action<Stream> _writeData;

    private GgufTensorToWrite(string name, TensorType type, long[] shape, Action<Stream> writeData)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(shape);
        if (shape.Length is 0 or > GgufConstants.MaxDims)
            throw new ArgumentException($"tensor '{name}': {shape.Length} dimensions (expected 1 to {GgufConstants.MaxDims})", nameof(shape));
        foreach (long d in shape)
            if (d <= 0) throw new ArgumentException($"tensor '{name}': dimension {d} in [{string.Join(", ", shape)}] is not positive", nameof(shape));
        var info = TensorTypes.Get(type);
        if (type is TensorType.U8 or TensorType.Bool)
            throw new ArgumentException($"tensor '{name}': GGUF has no {info.Name} type", nameof(type));
        long rowLength = shape[^1];
        if (rowLength % info.BlockSize != 0)
            throw new ArgumentException($"tensor '{name}': row length {rowLength} is not a multiple of the {info.Name} block size {info.BlockSize}", nameof(shape));
        long elements = 1;
        foreach (long d in shape) elements = checked(elements * d);
        Name = name;
        Type = type;
        Shape = (long[])shape.Clone();
        ByteLength = TensorTypes.ByteSize(type, elements) ?? throw new ArgumentException($"tensor '{name}': size overflows", nameof(shape));
        _writeData = writeData;
    }

    public string Name { get; }
    public TensorType Type { get; }

    /// <summary>Row-major shape, outermost first (a linear weight is [out, in]); GGUF stores it reversed as ne.</summary>
    public long[] Shape { get; }

    /// <summary>ggml order: <see cref="Shape"/> reversed.</summary>
    public long[] Ne => Shape.Reverse().ToArray();

    public long ByteLength { get; }

    /// <summary>Stored bytes (any type, including already-quantized blocks) held in memory.</summary>
    public static GgufTensorToWrite FromBytes(string name, TensorType type, long[] shape, ReadOnlyMemory<byte> bytes) =>
        new(name, type, shape, s => s.Write(bytes.Span));

    /// <summary>Stored bytes produced on demand (called once, when the writer reaches the tensor).</summary>
    public static GgufTensorToWrite FromBytes(string name, TensorType type, long[] shape, Func<ReadOnlyMemory<byte>> provider) =>
        new(name, type, shape, s => s.Write(provider().Span));

    /// <summary>F32 values produced on demand and stored as <paramref name="storeAs"/> (F32, F16 or BF16).</summary>
    public static GgufTensorToWrite FromFloats(string name, TensorType storeAs, long[] shape, Func<ReadOnlyMemory<float>> provider)
    {
        if (storeAs is not (TensorType.F32 or TensorType.F16 or TensorType.BF16))
            throw new ArgumentException($"tensor '{name}': FromFloats stores F32, F16 or BF16, not {storeAs}; quantize first and use FromBytes", nameof(storeAs));
        return new(name, storeAs, shape, s => WriteFloats(s, storeAs, provider().Span));
    }

    /// <summary>A callback that streams the stored bytes into the output itself (for tensors produced in pieces).</summary>
    public static GgufTensorToWrite FromStream(string name, TensorType type, long[] shape, Action<Stream> writeData) =>
        new(name, type, shape, writeData ?? throw new ArgumentNullException(nameof(writeData)));

    internal void WriteData(Stream destination) => _writeData(destination);

    private static void WriteFloats(Stream s, TensorType type, ReadOnlySpan<float> values)
    {
        if (type == TensorType.F32)
        {
            s.Write(MemoryMarshal.AsBytes(values));
            return;
        }
        // Converted in chunks so a large tensor needs no second full-size buffer.
        const int Chunk = 1 << 16;
        var buffer = ArrayPool<byte>.Shared.Rent(Chunk * 2);
        try
        {
            for (int i = 0; i < values.Length; i += Chunk)
            {
                var part = values.Slice(i, Math.Min(Chunk, values.Length - i));
                var dst = buffer.AsSpan(0, part.Length * 2);
                if (type == TensorType.F16) HalfConversions.F32ToF16(part, dst);
                else HalfConversions.F32ToBF16(part, dst);
                s.Write(dst);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}

/// <summary>
/// Writes GGUF v3 (or v2) files the way ggml's <c>gguf.cpp</c> and gguf-py lay them out: header, metadata in the
/// given order, tensor infos in the given order, zero padding to the alignment, then each tensor's data followed by
/// zero padding to the alignment (the last one too). Offsets are assigned contiguously in that order, so a file
/// written by those tools, read and written again with the same metadata and tensors, comes out byte for byte.
/// The output goes to a temporary file beside the target, renamed over it when complete.
/// </summary>
public static class GgufWriter
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <param name="path">The output file (replaced atomically).</param>
    /// <param name="metadata">Key/values in the order they are to appear.</param>
    /// <param name="tensors">Tensors in the order they are to appear; their data sources are called in this order.</param>
    /// <param name="version">2 or 3.</param>
    /// <param name="padEmptyDataSection">
    /// Whether a file without tensors still ends with padding to the alignment. ggml's <c>gguf.cpp</c> pads,
    /// gguf-py (which made llama.cpp's vocab-only files) does not; <see cref="Rewrite"/> keeps what the source did.
    /// </param>
    /// <param name="beforeRename">
    /// Called with the complete, closed temporary file before it is renamed into place (e.g. to patch a value only known
    /// once the tensors are written); an exception from it removes the temporary like any other failure.
    /// </param>
    public static void Write(string path, IEnumerable<KeyValuePair<string, GgufValue>> metadata, IEnumerable<GgufTensorToWrite> tensors,
        uint version = GgufConstants.WriteVersion, bool padEmptyDataSection = true, Action<string>? beforeRename = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string full = Path.GetFullPath(path);
        string dir = Path.GetDirectoryName(full) ?? ".";
        Directory.CreateDirectory(dir);
        string temp = Path.Combine(dir, $".{Path.GetFileName(full)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var fs = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
            {
                Write(fs, path, metadata, tensors, version, padEmptyDataSection);
                fs.Flush(flushToDisk: false);
            }
            beforeRename?.Invoke(temp);
            File.Move(temp, full, overwrite: true);
        }
        catch
        {
            try { File.Delete(temp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw;
        }
    }

    /// <summary>Writes to a stream; <paramref name="displayName"/> names the output in errors.</summary>
    public static void Write(Stream output, string displayName, IEnumerable<KeyValuePair<string, GgufValue>> metadata,
        IEnumerable<GgufTensorToWrite> tensors, uint version = GgufConstants.WriteVersion, bool padEmptyDataSection = true)
    {
        if (version is < GgufConstants.MinVersion or > GgufConstants.MaxVersion)
            throw new ArgumentOutOfRangeException(nameof(version), version, "GGUF version must be 2 or 3");
        var kvs = metadata.ToList();
        var list = tensors.ToList();

        uint alignment = GgufConstants.DefaultAlignment;
        var keys = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (key, value) in kvs)
        {
            if (string.IsNullOrEmpty(key)) GgufThrow.Write(displayName, "metadata", "empty key");
            ArgumentNullException.ThrowIfNull(value, key);
            if (!keys.Add(key)) GgufThrow.Write(displayName, $"metadata key '{key}'", "duplicate key");
            if (key == GgufConstants.AlignmentKey)
            {
                if (value.Value is not uint a || a == 0 || (a & (a - 1)) != 0 || a > GgufConstants.MaxAlignment)
                    GgufThrow.Write(displayName, $"metadata key '{key}'", $"must be a power-of-two uint32 up to {GgufConstants.MaxAlignment}, got {value.Type} {value}");
                else alignment = a;
            }
        }
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var t in list)
            if (!names.Add(t.Name)) GgufThrow.Write(displayName, $"tensor '{t.Name}'", "duplicate tensor name");

        var w = new Out(output, displayName);
        w.U32(GgufConstants.Magic);
        w.U32(version);
        w.U64((ulong)list.Count);
        w.U64((ulong)kvs.Count);
        foreach (var (key, value) in kvs)
        {
            w.String(key, $"metadata key '{key}'");
            w.U32((uint)value.Type);
            w.Value(value, $"metadata key '{key}'");
        }

        long offset = 0;
        foreach (var t in list)
        {
            w.String(t.Name, $"tensor '{t.Name}'");
            w.U32((uint)t.Shape.Length);
            foreach (long d in t.Ne) w.U64((ulong)d);
            w.U32((uint)t.Type);
            w.U64((ulong)offset);
            offset = checked(offset + GgufReader.AlignUp(t.ByteLength, alignment));
        }
        if (list.Count > 0 || padEmptyDataSection) w.Pad(alignment);

        foreach (var t in list)
        {
            long before = w.Position;
            var counting = new CountingStream(w);
            t.WriteData(counting);
            long written = w.Position - before;
            if (written != t.ByteLength) GgufThrow.WrongByteCount(displayName, t.Name, t.ByteLength, written);
            w.Pad(alignment);
        }
        w.Flush();
    }

    /// <summary>Writes <paramref name="source"/>'s metadata and tensors (data copied from its mapping) to <paramref name="path"/>.</summary>
    public static void Rewrite(GgufFile source, string path, uint? version = null) =>
        Write(path, source.Metadata.Select(kv => KeyValuePair.Create(kv.Key, kv.Value)), TensorsOf(source),
            version ?? source.Version, padEmptyDataSection: source.Tensors.Count > 0 || source.File.Length > source.InfosEnd);

    /// <summary><paramref name="source"/>'s tensors as writer inputs whose data is copied from its mapping when written.</summary>
    public static IEnumerable<GgufTensorToWrite> TensorsOf(GgufFile source) =>
        source.Tensors.Select(t => GgufTensorToWrite.FromStream(t.Name, t.Type, t.Shape, s => s.Write(source.TensorData(t))));

    /// <summary>Buffered little-endian output that tracks its position (the target stream need not be seekable).</summary>
    private sealed class Out(Stream stream, string displayName)
    {
        private readonly byte[] _buf = new byte[1 << 16];
        private int _used;

        public long Position { get; private set; }

        public void Bytes(ReadOnlySpan<byte> data)
        {
            if (data.Length > _buf.Length - _used)
            {
                Flush();
                if (data.Length >= _buf.Length)
                {
                    stream.Write(data);
                    Position += data.Length;
                    return;
                }
            }
            data.CopyTo(_buf.AsSpan(_used));
            _used += data.Length;
            Position += data.Length;
        }

        public void Flush()
        {
            if (_used > 0) stream.Write(_buf, 0, _used);
            _used = 0;
        }

        public void U8(byte v) => Bytes([v]);
        public void U32(uint v) { Span<byte> b = stackalloc byte[4]; BinaryPrimitives.WriteUInt32LittleEndian(b, v); Bytes(b); }
        public void U64(ulong v) { Span<byte> b = stackalloc byte[8]; BinaryPrimitives.WriteUInt64LittleEndian(b, v); Bytes(b); }

        public void Pad(uint alignment)
        {
            long pad = GgufReader.AlignUp(Position, alignment) - Position;
            Span<byte> zeros = stackalloc byte[64];
            zeros.Clear();
            while (pad > 0)
            {
                int n = (int)Math.Min(pad, zeros.Length);
                Bytes(zeros[..n]);
                pad -= n;
            }
        }

        /// <summary>
        /// A length-prefixed UTF-8 string, encoded straight into the buffer. <paramref name="index"/> ≥ 0 names element
        /// <paramref name="index"/> of array <paramref name="field"/>; the name is only formatted for an error, because
        /// a vocabulary has hundreds of thousands of strings.
        /// </summary>
        public void String(string s, string field, long index = -1)
        {
            int count;
            try { count = StrictUtf8.GetByteCount(s); }
            catch (EncoderFallbackException)
            {
                throw new BadInputException($"{displayName}: {(index < 0 ? field : $"{field}[{index}]")}: string is not valid Unicode (lone surrogate)");
            }
            U64((ulong)count);
            if (count > _buf.Length - _used) Flush();
            if (count <= _buf.Length)
            {
                StrictUtf8.GetBytes(s, _buf.AsSpan(_used));
                _used += count;
                Position += count;
            }
            else
            {
                Bytes(StrictUtf8.GetBytes(s));
            }
        }

        public void Value(GgufValue v, string field)
        {
            switch (v.Value)
            {
                case byte x: U8(x); break;
                case sbyte x: U8((byte)x); break;
                case ushort x: { Span<byte> b = stackalloc byte[2]; BinaryPrimitives.WriteUInt16LittleEndian(b, x); Bytes(b); break; }
                case short x: { Span<byte> b = stackalloc byte[2]; BinaryPrimitives.WriteInt16LittleEndian(b, x); Bytes(b); break; }
                case uint x: U32(x); break;
                case int x: U32((uint)x); break;
                case float x: U32(BitConverter.SingleToUInt32Bits(x)); break;
                case bool x: U8(x ? (byte)1 : (byte)0); break;
                case string x: String(x, field); break;
                case ulong x: U64(x); break;
                case long x: U64((ulong)x); break;
                case double x: U64(BitConverter.DoubleToUInt64Bits(x)); break;
                case Array a: ArrayValue(v, a, field); break;
                default: throw new InvalidOperationException($"{field}: unexpected CLR value {v.Value.GetType()}");
            }
        }

        private void ArrayValue(GgufValue v, Array a, string field)
        {
            U32((uint)v.ElementType);
            U64((ulong)a.Length);
            switch (a)
            {
                case string[] s:
                    for (int i = 0; i < s.Length; i++) String(s[i], field, i);
                    break;
                case GgufValue[] inner:
                    for (int i = 0; i < inner.Length; i++) ArrayValue(inner[i], (Array)inner[i].Value, $"{field}[{i}]");
                    break;
                case bool[] b:
                    foreach (bool x in b) U8(x ? (byte)1 : (byte)0);
                    break;
                case byte[] x: Bytes(x); break;
                case sbyte[] x: Bytes(MemoryMarshal.AsBytes(x.AsSpan())); break;
                case ushort[] x: Bytes(MemoryMarshal.AsBytes(x.AsSpan())); break;
                case short[] x: Bytes(MemoryMarshal.AsBytes(x.AsSpan())); break;
                case uint[] x: Bytes(MemoryMarshal.AsBytes(x.AsSpan())); break;
                case int[] x: Bytes(MemoryMarshal.AsBytes(x.AsSpan())); break;
                case float[] x: Bytes(MemoryMarshal.AsBytes(x.AsSpan())); break;
                case ulong[] x: Bytes(MemoryMarshal.AsBytes(x.AsSpan())); break;
                case long[] x: Bytes(MemoryMarshal.AsBytes(x.AsSpan())); break;
                case double[] x: Bytes(MemoryMarshal.AsBytes(x.AsSpan())); break;
                default: throw new InvalidOperationException($"{field}: unexpected array {a.GetType()}");
            }
        }
    }

    /// <summary>The stream handed to tensor data sources: forwards into the buffered output, write-only.</summary>
    private sealed class CountingStream(Out output) : Stream
    {
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => output.Bytes(buffer.AsSpan(offset, count));
        public override void Write(ReadOnlySpan<byte> buffer) => output.Bytes(buffer);
        public override void WriteByte(byte value) => output.U8(value);
    }
}
