using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using EdgeQuant.Core.Errors;
using EdgeQuant.Formats.Onnx.Proto;

namespace EdgeQuant.Formats.Onnx;

/// <summary>
/// Reads the elements of an ONNX <see cref="TensorProto"/> whichever field holds them (raw_data or the typed
/// repeated field the IR spec assigns to the data type), as little-endian element bytes.
/// </summary>
public static class OnnxTensorData
{
    /// <summary>Bytes per element of a fixed-size ONNX data type; 0 for STRING and the 4-bit types.</summary>
    public static int ElementSize(TensorProto.Types.DataType type) => type switch
    {
        TensorProto.Types.DataType.Float or TensorProto.Types.DataType.Int32 or TensorProto.Types.DataType.Uint32 => 4,
        TensorProto.Types.DataType.Uint8 or TensorProto.Types.DataType.Int8 or TensorProto.Types.DataType.Bool => 1,
        TensorProto.Types.DataType.Float8E4M3Fn or TensorProto.Types.DataType.Float8E4M3Fnuz
            or TensorProto.Types.DataType.Float8E5M2 or TensorProto.Types.DataType.Float8E5M2Fnuz => 1,
        TensorProto.Types.DataType.Uint16 or TensorProto.Types.DataType.Int16 or TensorProto.Types.DataType.Float16
            or TensorProto.Types.DataType.Bfloat16 => 2,
        TensorProto.Types.DataType.Int64 or TensorProto.Types.DataType.Uint64 or TensorProto.Types.DataType.Double
            or TensorProto.Types.DataType.Complex64 => 8,
        TensorProto.Types.DataType.Complex128 => 16,
        _ => 0,
    };

    /// <summary>Number of elements the dims describe (checked; negative dims rejected).</summary>
    public static long ElementCount(TensorProto tensor, string source)
    {
        long n = 1;
        foreach (long d in tensor.Dims)
        {
            if (d < 0) throw new FileFormatException(source, $"tensor '{tensor.Name}' dims", null, $"negative dimension {d}");
            if (d != 0 && n > long.MaxValue / d)
                throw new FileFormatException(source, $"tensor '{tensor.Name}' dims", null, $"[{string.Join(",", tensor.Dims)}] overflows an element count");
            n *= d;
        }
        return n;
    }

    /// <summary>
    /// The elements as little-endian bytes (<c>count * ElementSize</c> of them). Throws
    /// <see cref="FileFormatException"/> naming <paramref name="source"/> when the data does not match the dims,
    /// the type is a string/4-bit type, or the data is external.
    /// </summary>
    public static byte[] GetElementBytes(TensorProto tensor, string source)
    {
        var type = (TensorProto.Types.DataType)tensor.DataType;
        int size = ElementSize(type);
        string field = $"tensor '{tensor.Name}'";
        if (size == 0) throw new FileFormatException(source, field, null, $"data type {type} has no fixed element size");
        if (tensor.DataLocation == TensorProto.Types.DataLocation.External)
            throw new FileFormatException(source, field, null, "external data is not supported here");
        long count = ElementCount(tensor, source);
        if (count > Array.MaxLength / size)
            throw new FileFormatException(source, field, null, $"{count} elements of {type} are too large");
        long bytes = count * size;
        if (bytes > Array.MaxLength) throw new FileFormatException(source, field, null, $"{bytes} bytes of data is too large");

        if (!tensor.RawData.IsEmpty || count == 0)
        {
            if (tensor.RawData.Length != bytes)
                throw new FileFormatException(source, $"{field} raw_data", null, $"holds {tensor.RawData.Length} bytes, dims [{string.Join(",", tensor.Dims)}] of {type} need {bytes}");
            return tensor.RawData.ToByteArray();
        }

        var result = new byte[bytes];
        var span = result.AsSpan();
        switch (type)
        {
            case TensorProto.Types.DataType.Float:
            case TensorProto.Types.DataType.Complex64:
                Expect(tensor.FloatData.Count, bytes / 4, source, field, "float_data");
                for (int i = 0; i < tensor.FloatData.Count; i++) BinaryPrimitives.WriteSingleLittleEndian(span[(i * 4)..], tensor.FloatData[i]);
                break;
            case TensorProto.Types.DataType.Double:
            case TensorProto.Types.DataType.Complex128:
                Expect(tensor.DoubleData.Count, bytes / 8, source, field, "double_data");
                for (int i = 0; i < tensor.DoubleData.Count; i++) BinaryPrimitives.WriteDoubleLittleEndian(span[(i * 8)..], tensor.DoubleData[i]);
                break;
            case TensorProto.Types.DataType.Int64:
                Expect(tensor.Int64Data.Count, count, source, field, "int64_data");
                for (int i = 0; i < tensor.Int64Data.Count; i++) BinaryPrimitives.WriteInt64LittleEndian(span[(i * 8)..], tensor.Int64Data[i]);
                break;
            case TensorProto.Types.DataType.Uint32:
            case TensorProto.Types.DataType.Uint64:
                Expect(tensor.Uint64Data.Count, count, source, field, "uint64_data");
                for (int i = 0; i < tensor.Uint64Data.Count; i++)
                {
                    if (size == 4) BinaryPrimitives.WriteUInt32LittleEndian(span[(i * 4)..], (uint)tensor.Uint64Data[i]);
                    else BinaryPrimitives.WriteUInt64LittleEndian(span[(i * 8)..], tensor.Uint64Data[i]);
                }
                break;
            default:
                // int32_data carries every other fixed-size type, one element per entry, in its low bits
                // (FLOAT16/BFLOAT16 as their bit patterns).
                Expect(tensor.Int32Data.Count, count, source, field, "int32_data");
                for (int i = 0; i < tensor.Int32Data.Count; i++)
                {
                    int v = tensor.Int32Data[i];
                    switch (size)
                    {
                        case 1: span[i] = (byte)v; break;
                        case 2: BinaryPrimitives.WriteUInt16LittleEndian(span[(i * 2)..], (ushort)v); break;
                        default: BinaryPrimitives.WriteInt32LittleEndian(span[(i * 4)..], v); break;
                    }
                }
                break;
        }
        return result;
    }

    /// <summary>The elements of a STRING tensor, decoded as UTF-8.</summary>
    public static string[] GetStrings(TensorProto tensor, string source)
    {
        if ((TensorProto.Types.DataType)tensor.DataType != TensorProto.Types.DataType.String)
            throw new FileFormatException(source, $"tensor '{tensor.Name}'", null, $"data type is {(TensorProto.Types.DataType)tensor.DataType}, not STRING");
        long count = ElementCount(tensor, source);
        Expect(tensor.StringData.Count, count, source, $"tensor '{tensor.Name}'", "string_data");
        return tensor.StringData.Select(s => Encoding.UTF8.GetString(s.Span)).ToArray();
    }

    /// <summary>A typed copy of the elements; <typeparamref name="T"/> must have the element's size.</summary>
    public static T[] GetElements<T>(TensorProto tensor, string source) where T : unmanaged
    {
        var bytes = GetElementBytes(tensor, source);
        int size = ElementSize((TensorProto.Types.DataType)tensor.DataType);
        if (size != Marshal.SizeOf<T>())
            throw new ArgumentException($"{typeof(T).Name} does not match {(TensorProto.Types.DataType)tensor.DataType}");
        return MemoryMarshal.Cast<byte, T>(bytes).ToArray();
    }

    private static void Expect(int actual, long expected, string source, string field, string name)
    {
        if (actual != expected)
            throw new FileFormatException(source, $"{field} {name}", null, $"holds {actual} entries, the dims need {expected}");
    }
}
