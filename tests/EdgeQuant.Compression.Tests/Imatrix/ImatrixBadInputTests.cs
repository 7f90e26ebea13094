using System.Buffers.Binary;
using System.Text;
using EdgeQuant.Compression.Imatrix;
using EdgeQuant.Core.Errors;
using EdgeQuant.Core.Tensors;
using EdgeQuant.Formats.Gguf;
using EdgeQuant.Formats.IO;
using EdgeQuant.Testing;

namespace EdgeQuant.Compression.Tests.Imatrix;

/// <summary>Malformed and lying imatrix files: each refused with one FileFormatException naming file, field and offset.</summary>
public sealed class ImatrixBadInputTests
{
    private static FileFormatException Refused(byte[] bytes, string name = "bad.imatrix")
    {
        var e = Assert.ThrowsAny<BadInputException>(() => ImportanceMatrix.Read(MappedFile.FromBytes(bytes, name)));
        var f = Assert.IsType<FileFormatException>(e);
        Assert.StartsWith(name + ": ", f.Message);
        Assert.DoesNotContain('\n', f.Message);
        Assert.Equal(ExitCodes.BadInput, f.ExitCode);
        return f;
    }

    [Fact]
    public void Every_truncation_of_a_gguf_imatrix_is_refused()
    {
        var bytes = ImatrixFormatTests.Sample().Serialize();
        for (int n = 0; n < bytes.Length; n++)
        {
            // The writer pads the last tensor to the alignment; the reader does not require that padding.
            if (n >= bytes.Length - 31 && ReadsFine(bytes[..n])) continue;
            Refused(bytes[..n]);
        }
    }

    private static bool ReadsFine(byte[] bytes)
    {
        try
        {
            ImportanceMatrix.Read(MappedFile.FromBytes(bytes, "x"));
            return true;
        }
        catch (BadInputException)
        {
            return false;
        }
    }

    [Fact]
    public void Every_truncation_of_a_dat_imatrix_is_refused_except_at_the_optional_trailer()
    {
        var m = ImatrixFormatTests.Sample();
        var bytes = m.Serialize(ImatrixFormat.Dat);
        int dataset = Encoding.UTF8.GetByteCount(m.Datasets[^1]);
        int endOfEntries = bytes.Length - dataset - 8;
        for (int n = 0; n < bytes.Length; n++)
        {
            if (n == endOfEntries || n == endOfEntries + 4)
            {
                // Older files end after the entries, or after the chunk count.
                Assert.Equal(m.TensorNames, ImportanceMatrix.Read(MappedFile.FromBytes(bytes[..n], "x")).TensorNames);
                continue;
            }
            Refused(bytes[..n]);
        }
    }

    [Fact]
    public void Lying_dat_counts_are_refused_at_their_offset()
    {
        var good = ImatrixFormatTests.Dat([("a.weight", 2, [1f, 2f, 3f])], chunkCount: 1, dataset: "t.txt");
        // Layout: n_entries @0, name_len @4, name @8 (8 bytes), ncall @16, nval @20, values @24.
        byte[] With(int offset, int value)
        {
            var b = (byte[])good.Clone();
            BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(offset), value);
            return b;
        }
        var e = Refused(With(0, 1_000_000));
        Assert.Equal("n_entries", e.Field);
        Assert.Equal(0, e.Offset);
        Assert.Equal(0, Refused(With(0, 0)).Offset);
        e = Refused(With(4, -5));
        Assert.Equal(4, e.Offset);
        Assert.Contains("name length", e.Field);
        e = Refused(With(4, int.MaxValue));
        Assert.Equal(4, e.Offset);
        e = Refused(With(16, -1));
        Assert.Equal(16, e.Offset);
        Assert.Contains("ncall", e.Field);
        e = Refused(With(20, 1 << 28));
        Assert.Equal(20, e.Offset);
        Assert.Contains("'a.weight' nval", e.Field);
        e = Refused(With(20, 0));
        Assert.Equal(20, e.Offset);
        e = Refused(With(28, BitConverter.SingleToInt32Bits(float.NaN)));
        Assert.Equal(28, e.Offset);
        Assert.Contains("value 1", e.Field);
        e = Refused(With(24, BitConverter.SingleToInt32Bits(-1f)));
        Assert.Equal(24, e.Offset);
        e = Refused(With(36, -3));
        Assert.Equal("chunk_count", e.Field);
        e = Refused(With(40, 99));
        Assert.Equal(40, e.Offset);
        Refused([.. good, 0]);
        var dup = ImatrixFormatTests.Dat([("a.weight", 1, [1f]), ("a.weight", 1, [2f])], 1, "t");
        Assert.Contains("duplicate", Refused(dup).Message);
        var nul = ImatrixFormatTests.Dat([("a\0b", 1, [1f])], 1, "t");
        Assert.Equal(8, Refused(nul).Offset);
        var badUtf8 = (byte[])good.Clone();
        badUtf8[9] = 0xFF;
        Assert.Equal(9, Refused(badUtf8).Offset);
    }

    [Fact]
    public void Gguf_shapes_counts_and_metadata_that_do_not_add_up_are_refused()
    {
        using var dir = new TempDir();
        FileFormatException Case(string file, Action<string> write)
        {
            var p = dir.File(file);
            write(p);
            var e = Assert.Throws<FileFormatException>(() => ImportanceMatrix.Read(p));
            Assert.StartsWith(p + ": ", e.Message);
            Assert.Contains("byte offset", e.Message);
            return e;
        }
        float[] six = [1, 2, 3, 4, 5, 6];

        // 6 sums cannot be split over 4 counts.
        var e = Case("indivisible.gguf", p => ImatrixFormatTests.WriteGguf(p, ("w.weight", six, [1, 6], [1, 1, 1, 1], [4, 1])));
        Assert.Equal("tensor 'w.weight.counts'", e.Field);
        // in_sum2 says 2 matrices of 3, the counts say 3.
        e = Case("shape.gguf", p => ImatrixFormatTests.WriteGguf(p, ("w.weight", six, [2, 3], [1, 1, 1], [3, 1])));
        Assert.Equal("tensor 'w.weight.in_sum2'", e.Field);
        Assert.Contains("[2, 3]", e.Message);
        // Counts that cannot be row counts, sums that cannot be sums of squares.
        e = Case("negcount.gguf", p => ImatrixFormatTests.WriteGguf(p, ("w.weight", six, [1, 6], [-4], [1, 1])));
        Assert.Equal("tensor 'w.weight.counts' element 0", e.Field);
        using (var g = GgufReader.Read(dir.File("negcount.gguf")))
            Assert.Equal(g.FindTensor("w.weight.counts")!.AbsoluteOffset, e.Offset);
        Case("nancount.gguf", p => ImatrixFormatTests.WriteGguf(p, ("w.weight", six, [1, 6], [float.NaN], [1, 1])));
        e = Case("infsum.gguf", p => ImatrixFormatTests.WriteGguf(p, ("w.weight", [1, 2, float.PositiveInfinity, 4, 5, 6], [1, 6], [3], [1, 1])));
        Assert.Equal("tensor 'w.weight.in_sum2' element 2", e.Field);
        using (var g = GgufReader.Read(dir.File("infsum.gguf")))
            Assert.Equal(g.FindTensor("w.weight.in_sum2")!.AbsoluteOffset + 8, e.Offset);
        // A sum without its counts, counts without their sums.
        e = Case("nocounts.gguf", p => GgufWriter.Write(p, Meta(), [GgufTensorToWrite.FromFloats("w.weight.in_sum2", TensorType.F32, [1, 6], () => six)]));
        Assert.Contains("no 'w.weight.counts'", e.Message);
        e = Case("nosums.gguf", p => GgufWriter.Write(p, Meta(),
        [
            GgufTensorToWrite.FromFloats("w.weight.in_sum2", TensorType.F32, [1, 6], () => six),
            GgufTensorToWrite.FromFloats("w.weight.counts", TensorType.F32, [1, 1], () => new float[] { 2 }),
            GgufTensorToWrite.FromFloats("v.weight.counts", TensorType.F32, [1, 1], () => new float[] { 2 }),
        ]));
        Assert.Contains("no 'v.weight.in_sum2'", e.Message);
        // llama.cpp reads F32 only.
        e = Case("f16.gguf", p => GgufWriter.Write(p, Meta(),
        [
            GgufTensorToWrite.FromFloats("w.weight.in_sum2", TensorType.F16, [1, 6], () => six),
            GgufTensorToWrite.FromFloats("w.weight.counts", TensorType.F32, [1, 1], () => new float[] { 2 }),
        ]));
        Assert.Contains("must be F32", e.Message);
        // llama-quantize refuses a GGUF imatrix without its metadata; a model GGUF is named as such.
        e = Case("nometa.gguf", p => ImatrixFormatTests.WriteGguf(p, false, ("w.weight", six, [1, 6], [3], [1, 1])));
        Assert.Contains("missing imatrix metadata", e.Message);
        e = Case("model.gguf", p => GgufWriter.Write(p, [new("general.type", "model"), new("general.architecture", "llama")],
            [GgufTensorToWrite.FromFloats("token_embd.weight", TensorType.F32, [2, 3], () => six)]));
        Assert.Contains("general.type 'model'", e.Message);
        e = Case("wrongtype.gguf", p => GgufWriter.Write(p,
            [new("imatrix.datasets", GgufValue.Array(["t"])), new("imatrix.chunk_count", 1), new("imatrix.chunk_size", 512u)],
            [GgufTensorToWrite.FromFloats("w.weight.in_sum2", TensorType.F32, [1, 6], () => six), GgufTensorToWrite.FromFloats("w.weight.counts", TensorType.F32, [1, 1], () => new float[] { 2 })]));
        Assert.Equal("metadata key 'imatrix.chunk_count'", e.Field);
        Assert.Contains("uint32", e.Message);
        // No imatrix tensors at all: llama-quantize would silently quantize without one.
        e = Case("empty.gguf", p => GgufWriter.Write(p, Meta(), [GgufTensorToWrite.FromFloats("other", TensorType.F32, [2], () => new float[] { 1, 2 })]));
        Assert.Contains("empty", e.Message);
    }

    [Fact]
    public void A_missing_file_or_an_empty_one_is_bad_input()
    {
        using var dir = new TempDir();
        Assert.ThrowsAny<BadInputException>(() => ImportanceMatrix.Read(dir.File("nope.gguf")));
        var empty = dir.File("empty.dat");
        File.WriteAllBytes(empty, []);
        Assert.IsType<FileFormatException>(Assert.ThrowsAny<BadInputException>(() => ImportanceMatrix.Read(empty)));
    }

    private static List<KeyValuePair<string, GgufValue>> Meta() =>
    [
        new("general.type", "imatrix"),
        new("imatrix.datasets", GgufValue.Array(["t.txt"])),
        new("imatrix.chunk_count", 1u),
        new("imatrix.chunk_size", 512u),
    ];
}
