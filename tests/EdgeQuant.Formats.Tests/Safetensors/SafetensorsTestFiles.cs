using System.Buffers.Binary;
using System.Text;
using EdgeQuant.Core.Tensors;
using EdgeQuant.Formats.Safetensors;

namespace EdgeQuant.Formats.Tests.Safetensors;

/// <summary>Builds safetensors bytes by hand (header JSON as text), independently of <see cref="SafetensorsWriter"/>.</summary>
internal static class SafetensorsTestFiles
{
    public static byte[] Build(string headerJson, int dataBytes, byte fill = 0xAB)
    {
        var header = Encoding.UTF8.GetBytes(headerJson);
        return Build(header, dataBytes, fill);
    }

    public static byte[] Build(byte[] header, int dataBytes, byte fill = 0xAB)
    {
        var bytes = new byte[8 + header.Length + dataBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)header.Length);
        header.CopyTo(bytes, 8);
        for (int i = 0; i < dataBytes; i++) bytes[8 + header.Length + i] = (byte)(fill + i);
        return bytes;
    }

    /// <summary>A valid three-tensor file: F32 [2,3] at [0,24), F16 [4] at [24,32), I64 [1] at [32,40).</summary>
    public const string ValidHeader =
        """{"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"h":{"dtype":"F16","shape":[4],"data_offsets":[24,32]},"n":{"dtype":"I64","shape":[1],"data_offsets":[32,40]}}""";

    public static byte[] Valid() => Build(ValidHeader, 40);

    public static SafetensorsFile Read(byte[] bytes, string name = "test.safetensors") =>
        SafetensorsReader.Read(IO.MappedFile.FromBytes(bytes, name));

    public static byte[] RandomBytes(Random rng, TensorType type, long elements)
    {
        var bytes = new byte[TensorTypes.ByteSize(type, elements)!.Value];
        rng.NextBytes(bytes);
        if (type == TensorType.Bool)
            for (int i = 0; i < bytes.Length; i++) bytes[i] &= 1;
        return bytes;
    }
}
