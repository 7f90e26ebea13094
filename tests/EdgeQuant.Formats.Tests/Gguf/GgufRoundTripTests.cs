using System.Buffers.Binary;
using EdgeQuant.Core.Tensors;
using EdgeQuant.Formats.Gguf;
using EdgeQuant.Formats.IO;
using EdgeQuant.Testing;

namespace EdgeQuant.Formats.Tests.Gguf;

public class GgufRoundTripTests
{
    private static GgufFile Parse(byte[] bytes, string name = "sample.gguf") => GgufReader.Read(MappedFile.FromBytes(bytes, name), ownsFile: true);

    [Fact]
    public void Every_value_type_including_nested_arrays_round_trips()
    {
        var md = GgufSamples.AllValueTypes();
        var bytes = GgufSamples.ToBytes(md, []);
        using var f = Parse(bytes);
        Assert.Equal(3u, f.Version);
        Assert.Equal(md.Select(kv => kv.Key), f.Metadata.Select(kv => kv.Key));
        foreach (var (key, value) in md)
        {
            var read = f.Find(key)!;
            Assert.True(value.Equals(read), $"{key}: wrote {value}, read {read}");
            Assert.Equal(value.Type, read.Type);
        }
        Assert.Equal(0x7fc01234, BitConverter.SingleToInt32Bits((float)f.Find("t.f32nan")!.Value));
        var nested = f.Find("a.nested")!.AsArray<GgufValue>()!;
        Assert.Equal(new[] { "x", "y", "z" }, nested[1].AsArray<string>());
        Assert.Equal(1.5, nested[2].AsArray<GgufValue>()![0].AsArray<double>()![0]);
    }

    [Fact]
    public void Write_read_write_is_byte_identical()
    {
        var md = GgufSamples.AllValueTypes();
        var first = GgufSamples.ToBytes(md, GgufSamples.SmallTensors());
        using var f = Parse(first);
        var second = GgufSamples.ToBytes(f.Metadata.Select(kv => KeyValuePair.Create(kv.Key, kv.Value)),
            f.Tensors.Select(t => GgufTensorToWrite.FromBytes(t.Name, t.Type, t.Shape, f.TensorData(t).ToArray())));
        Assert.Equal(first, second);
    }

    [Fact]
    public void Rewrite_to_a_file_is_byte_identical_and_leaves_no_temp_file()
    {
        using var dir = new TempDir();
        var first = GgufSamples.Small();
        string a = dir.File("a.gguf"), b = dir.File("b.gguf");
        File.WriteAllBytes(a, first);
        using (var f = GgufReader.Read(a)) GgufWriter.Rewrite(f, b);
        Assert.Equal(first, File.ReadAllBytes(b));
        Assert.Equal(new[] { "a.gguf", "b.gguf" }, Directory.GetFiles(dir.Path).Select(Path.GetFileName).Order());
    }

    [Fact]
    public void Tensor_infos_and_data_read_back()
    {
        var tensors = GgufSamples.SmallTensors();
        var bytes = GgufSamples.ToBytes([], tensors);
        using var f = Parse(bytes);
        Assert.Equal(tensors.Select(t => t.Name), f.Tensors.Select(t => t.Name));
        foreach (var t in tensors)
        {
            var info = f.FindTensor(t.Name)!;
            Assert.Equal(t.Type, info.Type);
            Assert.Equal(t.Shape, info.Shape);
            Assert.Equal(t.Shape.Reverse(), info.Ne);
            Assert.Equal(t.ByteLength, info.ByteLength);
            using var ms = new MemoryStream();
            GgufWriter.Write(ms, "x", [], [t]);
            // The data of a lone tensor starts right after the aligned header of that one-tensor file.
            using var single = Parse(ms.ToArray());
            Assert.Equal(single.TensorData(single.Tensors[0]).ToArray(), f.TensorData(info).ToArray());
        }
        var c = f.FindTensor("c.weight")!;
        Assert.Equal(new long[] { 2, 4, 3, 2 }, c.Ne);
    }

    [Fact]
    public void F16_and_BF16_tensors_hold_the_converted_values()
    {
        float[] values = [1f, -2.5f, 0.333333f, 65504f, 1e-3f, 3.0e38f];
        var bytes = GgufSamples.ToBytes([], [
            GgufTensorToWrite.FromFloats("h", TensorType.F16, [6], () => values),
            GgufTensorToWrite.FromFloats("b", TensorType.BF16, [6], () => values),
        ]);
        using var f = Parse(bytes);
        var h = f.TensorData("h");
        var b = f.TensorData("b");
        for (int i = 0; i < values.Length; i++)
        {
            Assert.Equal((float)(Half)values[i], (float)BinaryPrimitives.ReadHalfLittleEndian(h[(2 * i)..]));
            Assert.Equal(HalfConversions.F32ToBF16(values[i]), BinaryPrimitives.ReadUInt16LittleEndian(b[(2 * i)..]));
        }
    }

    [Theory]
    [InlineData(1u)]
    [InlineData(8u)]
    [InlineData(32u)]
    [InlineData(64u)]
    [InlineData(4096u)]
    public void Alignment_from_general_alignment_is_honoured(uint alignment)
    {
        var bytes = GgufSamples.Small(alignment);
        using var f = Parse(bytes);
        Assert.Equal(alignment, f.Alignment);
        Assert.Equal(0, f.DataOffset % alignment);
        long expected = 0;
        foreach (var t in f.Tensors)
        {
            Assert.Equal(0, t.Offset % alignment);
            Assert.Equal(expected, t.Offset);
            expected += (t.ByteLength + alignment - 1) / alignment * alignment;
        }
        Assert.Equal(f.DataOffset + expected, bytes.Length);
        // Padding is zeros, between the header and the data and after every tensor.
        long infosEnd = f.DataOffset;
        while (infosEnd > 0 && bytes[infosEnd - 1] == 0) infosEnd--;
        Assert.True(f.DataOffset - infosEnd < alignment + 8);
    }

    [Fact]
    public void Version_2_is_read_and_kept_on_rewrite()
    {
        var v2 = GgufSamples.ToBytes(GgufSamples.AllValueTypes(), GgufSamples.SmallTensors(), version: 2);
        using var f = Parse(v2);
        Assert.Equal(2u, f.Version);
        using var ms = new MemoryStream();
        GgufWriter.Write(ms, "x", f.Metadata.Select(kv => KeyValuePair.Create(kv.Key, kv.Value)),
            f.Tensors.Select(t => GgufTensorToWrite.FromBytes(t.Name, t.Type, t.Shape, f.TensorData(t).ToArray())), f.Version);
        Assert.Equal(v2, ms.ToArray());
    }

    [Fact]
    public void Writer_rejects_a_data_source_that_writes_the_wrong_number_of_bytes()
    {
        var t = GgufTensorToWrite.FromBytes("x", TensorType.F32, [4], new byte[12]);
        using var ms = new MemoryStream();
        var e = Assert.Throws<Core.Errors.InternalFailureException>(() => GgufWriter.Write(ms, "out.gguf", [], [t]));
        Assert.Contains("'x'", e.Message);
    }

    [Fact]
    public void Writer_rejects_duplicate_keys_and_bad_alignment()
    {
        using var ms = new MemoryStream();
        Assert.Throws<Core.Errors.BadInputException>(() => GgufWriter.Write(ms, "o", [new("k", 1u), new("k", 2u)], []));
        Assert.Throws<Core.Errors.BadInputException>(() => GgufWriter.Write(ms, "o", [new("general.alignment", 48u)], []));
        Assert.Throws<Core.Errors.BadInputException>(() => GgufWriter.Write(ms, "o", [new("general.alignment", 64)], []));
        Assert.Throws<ArgumentException>(() => GgufTensorToWrite.FromBytes("q", TensorType.Q4_0, [2, 48], new byte[0]));
    }
}
