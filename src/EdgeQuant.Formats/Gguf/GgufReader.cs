using System.Runtime.InteropServices;
using EdgeQuant.Core.Tensors;
using EdgeQuant.Formats.IO;

namespace EdgeQuant.Formats.Gguf;

/// <summary>
/// Parses a GGUF v2/v3 header (metadata and tensor infos) over a memory-mapped file and validates every tensor's
/// place in the data section. Any problem is a <see cref="Core.Errors.FileFormatException"/> naming the file, the
/// field (metadata key or tensor name) and the byte offset; no count or length read from the file drives an
/// allocation before it has been checked against a cap and against the bytes left in the file.
/// </summary>
public static class GgufReader
{
    /// <summary>Maps and parses <paramref name="path"/>; the returned file owns the mapping.</summary>
    public static GgufFile Read(string path)
    {
        var file = MappedFile.Open(path);
        try
        {
            return Read(file, ownsFile: true);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>Parses an already mapped file (or bytes wrapped by <see cref="MappedFile.FromBytes"/>).</summary>
    public static GgufFile Read(MappedFile file, bool ownsFile = false) => new Parser(file).Parse(ownsFile);

    private sealed class Parser(MappedFile file)
    {
        private static readonly System.Text.UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);
        private readonly ByteCursor _c = new(file);
        private string PathName => file.Path;

        public GgufFile Parse(bool ownsFile)
        {
            uint magic = _c.ReadU32("header.magic");
            if (magic != GgufConstants.Magic)
                GgufThrow.Format(PathName, "header.magic", 0, $"not a GGUF file (magic 0x{magic:x8}, expected \"GGUF\")");

            long versionAt = _c.Position;
            uint version = _c.ReadU32("header.version");
            if (version == 1)
                GgufThrow.Format(PathName, "header.version", versionAt, "GGUF v1 (32-bit counts) is not supported; re-convert the model with a current llama.cpp");
            if (version is >= (1u << 16) && BinaryReverse(version) is >= GgufConstants.MinVersion and <= GgufConstants.MaxVersion)
                GgufThrow.Format(PathName, "header.version", versionAt, "big-endian GGUF is not supported");
            if (version is < GgufConstants.MinVersion or > GgufConstants.MaxVersion)
                GgufThrow.Format(PathName, "header.version", versionAt, $"unsupported GGUF version {version} (supported: 2 and 3)");

            long tensorCountAt = _c.Position;
            ulong tensorCount = _c.ReadU64("header.tensor_count");
            long kvCountAt = _c.Position;
            ulong kvCount = _c.ReadU64("header.metadata_kv_count");
            // A tensor info takes at least 8 (name length) + 4 (n_dims) + 8 (one dim) + 4 (type) + 8 (offset) bytes,
            // a key/value at least 8 (key length) + 4 (type) + 1 (smallest value).
            CheckCount(tensorCount, GgufConstants.MaxTensorCount, 32, "header.tensor_count", tensorCountAt);
            CheckCount(kvCount, GgufConstants.MaxMetadataCount, 13, "header.metadata_kv_count", kvCountAt);

            var metadata = new List<GgufKeyValue>((int)kvCount);
            var keys = new HashSet<string>(StringComparer.Ordinal);
            for (long i = 0; i < (long)kvCount; i++)
            {
                long keyAt = _c.Position;
                string key = ReadString($"metadata[{i}].key", GgufConstants.MaxKeyBytes);
                if (key.Length == 0) GgufThrow.Format(PathName, $"metadata[{i}].key", keyAt, "empty key");
                if (!keys.Add(key)) GgufThrow.Format(PathName, $"metadata key '{key}'", keyAt, "duplicate key");
                string field = $"metadata key '{key}'";
                long typeAt = _c.Position;
                uint type = _c.ReadU32(field + " type");
                if (!GgufValue.IsDefined(type)) GgufThrow.Format(PathName, field + " type", typeAt, $"unknown value type {type}");
                var value = ReadValue((GgufValueType)type, field, 0);
                metadata.Add(new GgufKeyValue(key, value, keyAt));
            }

            uint alignment = GgufConstants.DefaultAlignment;
            if (metadata.FirstOrDefault(kv => kv.Key == GgufConstants.AlignmentKey) is { } alignKv)
            {
                string field = $"metadata key '{GgufConstants.AlignmentKey}'";
                if (alignKv.Value.Value is not uint a)
                    GgufThrow.Format(PathName, field, alignKv.Offset, $"must be a uint32, found {alignKv.Value.Type}");
                else if (a == 0 || (a & (a - 1)) != 0 || a > GgufConstants.MaxAlignment)
                    GgufThrow.Format(PathName, field, alignKv.Offset, $"alignment {a} is not a power of two up to {GgufConstants.MaxAlignment}");
                else alignment = a;
            }

            var pending = new List<(string Name, long[] Ne, TensorTypeInfo Type, long Offset, long Bytes, long InfoAt, long OffsetAt)>((int)tensorCount);
            var names = new HashSet<string>(StringComparer.Ordinal);
            for (long i = 0; i < (long)tensorCount; i++)
                pending.Add(ReadTensorInfo(i, alignment, names));

            long infosEnd = _c.Position;
            long dataOffset = AlignUp(infosEnd, alignment);
            if (pending.Count > 0 && dataOffset > file.Length)
                GgufThrow.Format(PathName, "data section", infosEnd, $"the data section would start at {dataOffset}, past the end of the {file.Length}-byte file");

            var tensors = new List<GgufTensorInfo>(pending.Count);
            long previousEnd = 0;
            string? previousName = null;
            foreach (var p in pending)
            {
                string field = $"tensor '{p.Name}' offset";
                // previousEnd starts at 0 and offsets are below 2^63, so only a later tensor can fail this.
                if (p.Offset < previousEnd)
                    GgufThrow.Format(PathName, field, p.OffsetAt,
                        $"offset {p.Offset} overlaps or precedes tensor '{previousName}', which ends at {previousEnd} (offsets must increase in file order)");
                long available = file.Length - dataOffset;
                if (p.Offset > available || p.Bytes > available - p.Offset)
                    GgufThrow.Format(PathName, field, p.OffsetAt,
                        $"data [{p.Offset}, {p.Offset + p.Bytes}) of the data section at {dataOffset} runs past the end of the {file.Length}-byte file");
                tensors.Add(new GgufTensorInfo(p.Name, p.Ne, p.Type.Type, p.Offset, p.Bytes, p.InfoAt, dataOffset));
                previousEnd = p.Offset + p.Bytes;
                previousName = p.Name;
            }

            return new GgufFile(file, ownsFile, version, metadata, tensors, alignment, infosEnd, dataOffset);
        }

        private (string, long[], TensorTypeInfo, long, long, long, long) ReadTensorInfo(long index, uint alignment, HashSet<string> names)
        {
            long infoAt = _c.Position;
            string name = ReadString($"tensor[{index}].name", GgufConstants.MaxTensorNameBytes);
            if (name.Length == 0) GgufThrow.Format(PathName, $"tensor[{index}].name", infoAt, "empty tensor name");
            if (!names.Add(name)) GgufThrow.Format(PathName, $"tensor '{name}'", infoAt, "duplicate tensor name");
            string field = $"tensor '{name}'";

            long dimsAt = _c.Position;
            uint nDims = _c.ReadU32(field + " n_dims");
            if (nDims is 0 or > GgufConstants.MaxDims)
                GgufThrow.Format(PathName, field + " n_dims", dimsAt, $"{nDims} dimensions (expected 1 to {GgufConstants.MaxDims})");
            var ne = new long[nDims];
            long elements = 1;
            for (int d = 0; d < nDims; d++)
            {
                long at = _c.Position;
                ulong n = _c.ReadU64($"{field} ne[{d}]");
                if (n == 0 || n > long.MaxValue)
                    GgufThrow.Format(PathName, $"{field} ne[{d}]", at, $"dimension {n} (expected 1 to {long.MaxValue})");
                ne[d] = (long)n;
                if (elements > long.MaxValue / ne[d])
                    GgufThrow.Format(PathName, $"{field} ne[{d}]", at, "element count overflows 64 bits");
                elements *= ne[d];
            }

            long typeAt = _c.Position;
            uint typeId = _c.ReadU32(field + " type");
            if (!TensorTypes.TryFromGgmlId(typeId, out var type))
                GgufThrow.Format(PathName, field + " type", typeAt, $"unknown or unsupported ggml type {typeId}");
            if (ne[0] % type.BlockSize != 0)
                GgufThrow.Format(PathName, field + " ne[0]", dimsAt + 4,
                    $"row length {ne[0]} is not a multiple of the {type.Name} block size {type.BlockSize}");
            long bytes = TensorTypes.ByteSize(type.Type, elements) is { } b ? b
                : GgufThrow.Format<long>(PathName, field, dimsAt, $"{elements} elements of {type.Name} overflow 64-bit sizes");

            long offsetAt = _c.Position;
            ulong offset = _c.ReadU64(field + " offset");
            if (offset > long.MaxValue)
                GgufThrow.Format(PathName, field + " offset", offsetAt, $"offset {offset} is past any file");
            if (offset % alignment != 0)
                GgufThrow.Format(PathName, field + " offset", offsetAt, $"offset {offset} is not a multiple of the alignment {alignment}");
            return (name, ne, type, (long)offset, bytes, infoAt, offsetAt);
        }

        private GgufValue ReadValue(GgufValueType type, string field, int depth)
        {
            long at = _c.Position;
            switch (type)
            {
                case GgufValueType.UInt8: return GgufValue.From(_c.ReadU8(field));
                case GgufValueType.Int8: return GgufValue.From(_c.ReadI8(field));
                case GgufValueType.UInt16: return GgufValue.From(_c.ReadU16(field));
                case GgufValueType.Int16: return GgufValue.From(_c.ReadI16(field));
                case GgufValueType.UInt32: return GgufValue.From(_c.ReadU32(field));
                case GgufValueType.Int32: return GgufValue.From(_c.ReadI32(field));
                case GgufValueType.Float32: return GgufValue.From(_c.ReadF32(field));
                case GgufValueType.UInt64: return GgufValue.From(_c.ReadU64(field));
                case GgufValueType.Int64: return GgufValue.From(_c.ReadI64(field));
                case GgufValueType.Float64: return GgufValue.From(_c.ReadF64(field));
                case GgufValueType.Bool:
                    byte b = _c.ReadU8(field);
                    if (b > 1) GgufThrow.Format(PathName, field, at, $"bool byte {b} (expected 0 or 1)");
                    return GgufValue.From(b == 1);
                case GgufValueType.String:
                    return GgufValue.From(ReadString(field, GgufConstants.MaxStringBytes));
                case GgufValueType.Array:
                    return ReadArray(field, depth + 1);
                default:
                    return GgufThrow.Format<GgufValue>(PathName, field, at, $"unknown value type {(uint)type}");
            }
        }

        private GgufValue ReadArray(string field, int depth)
        {
            long typeAt = _c.Position;
            if (depth > GgufConstants.MaxArrayDepth)
                GgufThrow.Format(PathName, field, typeAt, $"arrays nested deeper than {GgufConstants.MaxArrayDepth}");
            uint et = _c.ReadU32(field + " array type");
            if (!GgufValue.IsDefined(et)) GgufThrow.Format(PathName, field + " array type", typeAt, $"unknown element type {et}");
            var elementType = (GgufValueType)et;
            long countAt = _c.Position;
            ulong count = _c.ReadU64(field + " array length");
            CheckCount(count, GgufConstants.MaxArrayLength, GgufValue.MinEncodedSize(elementType), field + " array length", countAt);
            int n = (int)count;

            int size = GgufValue.FixedSize(elementType);
            if (size > 0)
            {
                var raw = _c.Take(n * size, field);
                switch (elementType)
                {
                    case GgufValueType.UInt8: return GgufValue.Array(raw.ToArray());
                    case GgufValueType.Int8: return GgufValue.Array(MemoryMarshal.Cast<byte, sbyte>(raw).ToArray());
                    case GgufValueType.UInt16: return GgufValue.Array(MemoryMarshal.Cast<byte, ushort>(raw).ToArray());
                    case GgufValueType.Int16: return GgufValue.Array(MemoryMarshal.Cast<byte, short>(raw).ToArray());
                    case GgufValueType.UInt32: return GgufValue.Array(MemoryMarshal.Cast<byte, uint>(raw).ToArray());
                    case GgufValueType.Int32: return GgufValue.Array(MemoryMarshal.Cast<byte, int>(raw).ToArray());
                    case GgufValueType.Float32: return GgufValue.Array(MemoryMarshal.Cast<byte, float>(raw).ToArray());
                    case GgufValueType.UInt64: return GgufValue.Array(MemoryMarshal.Cast<byte, ulong>(raw).ToArray());
                    case GgufValueType.Int64: return GgufValue.Array(MemoryMarshal.Cast<byte, long>(raw).ToArray());
                    case GgufValueType.Float64: return GgufValue.Array(MemoryMarshal.Cast<byte, double>(raw).ToArray());
                    case GgufValueType.Bool:
                        var bools = new bool[n];
                        for (int i = 0; i < n; i++)
                        {
                            if (raw[i] > 1) GgufThrow.Format(PathName, $"{field}[{i}]", _c.Position - n + i, $"bool byte {raw[i]} (expected 0 or 1)");
                            bools[i] = raw[i] == 1;
                        }
                        return GgufValue.Array(bools);
                }
            }
            if (elementType == GgufValueType.String)
            {
                var strings = new string[n];
                for (int i = 0; i < n; i++) strings[i] = ReadString(field, GgufConstants.MaxStringBytes, i);
                return GgufValue.Array(strings);
            }
            var arrays = new GgufValue[n];
            for (int i = 0; i < n; i++) arrays[i] = ReadArray($"{field}[{i}]", depth + 1);
            return GgufValue.ArrayOfArrays(arrays);
        }

        /// <summary>
        /// Reads a length-prefixed UTF-8 string. <paramref name="index"/> ≥ 0 means element <paramref name="index"/> of
        /// the array <paramref name="field"/>; the field name is only formatted when there is an error, because
        /// vocabularies hold hundreds of thousands of strings.
        /// </summary>
        private string ReadString(string field, long maxBytes, long index = -1)
        {
            long at = _c.Position;
            if (_c.Remaining < 8)
                GgufThrow.Format(PathName, Name(field, index) + " length", at, $"needs 8 bytes but only {_c.Remaining} remain (truncated?)");
            ulong length = System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(_c.Take(8, field));
            if (length > (ulong)maxBytes)
                GgufThrow.Format(PathName, Name(field, index) + " length", at, $"string length {length} exceeds the limit of {maxBytes} bytes");
            if ((long)length > _c.Remaining)
                GgufThrow.Format(PathName, Name(field, index) + " length", at, $"string length {length} runs past the end of the file ({_c.Remaining} bytes remain)");
            long start = _c.Position;
            var bytes = _c.Take((int)length, field);
            try
            {
                return StrictUtf8.GetString(bytes);
            }
            catch (System.Text.DecoderFallbackException e)
            {
                return GgufThrow.Format<string>(PathName, Name(field, index), start + Math.Max(0, e.Index), "invalid UTF-8");
            }
        }

        private static string Name(string field, long index) => index < 0 ? field : $"{field}[{index}]";

        private void CheckCount(ulong count, long cap, int minBytesEach, string field, long at)
        {
            if (count > (ulong)cap)
                GgufThrow.Format(PathName, field, at, $"count {count} exceeds the limit of {cap}");
            if (minBytesEach > 0 && (long)count * minBytesEach > _c.Remaining)
                GgufThrow.Format(PathName, field, at, $"count {count} needs at least {(long)count * minBytesEach} bytes but only {_c.Remaining} remain");
        }

        private static uint BinaryReverse(uint v) => System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(v);
    }

    /// <summary><paramref name="value"/> rounded up to a multiple of the power-of-two <paramref name="alignment"/>, checked.</summary>
    internal static long AlignUp(long value, long alignment) => checked((value + alignment - 1) & ~(alignment - 1));
}
