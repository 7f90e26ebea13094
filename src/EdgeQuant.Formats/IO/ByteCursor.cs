using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Text;
using EdgeQuant.Core.Errors;

namespace EdgeQuant.Formats.IO;

/// <summary>
/// A forward, bounds-checked little-endian reader over a <see cref="MappedFile"/>. Every read names the field it is
/// reading, so that a short or lying file yields "file: field at byte offset N: problem" and never an
/// <see cref="IndexOutOfRangeException"/>.
/// </summary>
public sealed class ByteCursor
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    public ByteCursor(MappedFile file, long position = 0)
    {
        File = file;
        Position = position;
    }

    public MappedFile File { get; }

    public long Position { get; set; }

    public long Remaining => File.Length - Position;

    public ReadOnlySpan<byte> Take(int length, string field)
    {
        if (length < 0) Fail(field, $"negative length {length}");
        if (length > Remaining)
            Fail(field, $"needs {length} bytes but only {Remaining} remain (file is {File.Length} bytes; truncated?)");
        var span = File.Span(Position, length, field);
        Position += length;
        return span;
    }

    public byte ReadU8(string field) => Take(1, field)[0];
    public sbyte ReadI8(string field) => (sbyte)Take(1, field)[0];
    public ushort ReadU16(string field) => BinaryPrimitives.ReadUInt16LittleEndian(Take(2, field));
    public short ReadI16(string field) => BinaryPrimitives.ReadInt16LittleEndian(Take(2, field));
    public uint ReadU32(string field) => BinaryPrimitives.ReadUInt32LittleEndian(Take(4, field));
    public int ReadI32(string field) => BinaryPrimitives.ReadInt32LittleEndian(Take(4, field));
    public ulong ReadU64(string field) => BinaryPrimitives.ReadUInt64LittleEndian(Take(8, field));
    public long ReadI64(string field) => BinaryPrimitives.ReadInt64LittleEndian(Take(8, field));
    public float ReadF32(string field) => BinaryPrimitives.ReadSingleLittleEndian(Take(4, field));
    public double ReadF64(string field) => BinaryPrimitives.ReadDoubleLittleEndian(Take(8, field));

    /// <summary>Reads a strict UTF-8 string of <paramref name="byteLength"/> bytes; invalid UTF-8 is a format error at its offset.</summary>
    public string ReadUtf8(long byteLength, string field, long maxBytes)
    {
        long start = Position;
        if (byteLength < 0 || byteLength > maxBytes)
            Fail(field, $"string length {byteLength} exceeds the limit of {maxBytes} bytes");
        var bytes = Take((int)byteLength, field);
        return DecodeUtf8(bytes, field, start);
    }

    public string DecodeUtf8(ReadOnlySpan<byte> bytes, string field, long offset)
    {
        try
        {
            return StrictUtf8.GetString(bytes);
        }
        catch (DecoderFallbackException e)
        {
            long at = offset + Math.Max(0, e.Index);
            throw new FileFormatException(File.Path, field, at, "invalid UTF-8");
        }
    }

    /// <summary>Throws a <see cref="FileFormatException"/> at the current position.</summary>
    [DoesNotReturn]
    public void Fail(string field, string problem) => throw new FileFormatException(File.Path, field, Position, problem);

    [DoesNotReturn]
    public void FailAt(long offset, string field, string problem) => throw new FileFormatException(File.Path, field, offset, problem);
}
