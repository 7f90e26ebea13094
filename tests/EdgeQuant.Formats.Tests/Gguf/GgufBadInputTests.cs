using System.Buffers.Binary;
using System.Text;
using EdgeQuant.Core.Errors;
using EdgeQuant.Core.Tensors;
using EdgeQuant.Formats.Gguf;
using EdgeQuant.Formats.IO;
using EdgeQuant.Testing;

namespace EdgeQuant.Formats.Tests.Gguf;

/// <summary>
/// A corpus of broken files, each made from a valid small GGUF by one targeted change. Every one must fail with a
/// <see cref="FileFormatException"/> whose message names the file and a byte offset (and, where it applies, the key
/// or tensor), never with another exception type.
/// </summary>
public class GgufBadInputTests
{
    private const string Name = "broken-model.gguf";

    /// <summary>Where the fields of the seed file are, found from the parsed seed itself.</summary>
    private sealed class Layout
    {
        public Layout(byte[] bytes)
        {
            Bytes = bytes;
            using var f = GgufReader.Read(MappedFile.FromBytes(bytes, "seed.gguf"), ownsFile: true);
            Keys = f.Metadata.ToDictionary(kv => kv.Key, kv => kv.Offset);
            foreach (var t in f.Tensors)
            {
                long at = t.InfoOffset;
                long nameLen = BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan((int)at));
                long dims = at + 8 + nameLen;
                long type = dims + 4 + 8 * t.Ne.Count;
                Tensors[t.Name] = (at, dims, type, type + 4, t.Offset);
            }
            TensorNames = f.Tensors.Select(t => t.Name).ToArray();
            DataEnd = f.Tensors.Count == 0 ? f.DataOffset : f.Tensors[^1].AbsoluteOffset + f.Tensors[^1].ByteLength;
            Alignment = f.Alignment;
        }

        public byte[] Bytes { get; }
        public Dictionary<string, long> Keys { get; }
        public Dictionary<string, (long Info, long Dims, long Type, long Offset, long Value)> Tensors { get; } = new();
        public string[] TensorNames { get; }
        public long DataEnd { get; }
        public uint Alignment { get; }

        /// <summary>Offset of the value of key <paramref name="key"/> (after its length, bytes and type).</summary>
        public long ValueAt(string key) => Keys[key] + 8 + Encoding.UTF8.GetByteCount(key) + 4;
        public long TypeAt(string key) => Keys[key] + 8 + Encoding.UTF8.GetByteCount(key);

        public byte[] With(long at, ReadOnlySpan<byte> patch)
        {
            var copy = (byte[])Bytes.Clone();
            patch.CopyTo(copy.AsSpan((int)at));
            return copy;
        }

        public byte[] WithU32(long at, uint v) { Span<byte> b = stackalloc byte[4]; BinaryPrimitives.WriteUInt32LittleEndian(b, v); return With(at, b); }
        public byte[] WithU64(long at, ulong v) { Span<byte> b = stackalloc byte[8]; BinaryPrimitives.WriteUInt64LittleEndian(b, v); return With(at, b); }
    }

    private static readonly Layout Seed = new(GgufSamples.Small());

    private static FileFormatException AssertBad(byte[] bytes, params string[] mustMention)
    {
        var e = Assert.ThrowsAny<BadInputException>(() =>
        {
            using var f = GgufReader.Read(MappedFile.FromBytes(bytes, Name), ownsFile: true);
            foreach (var t in f.Tensors) _ = f.TensorData(t).Length;
        });
        var ffe = Assert.IsType<FileFormatException>(e);
        Assert.Contains(Name, e.Message);
        Assert.Contains("byte offset", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        foreach (var m in mustMention) Assert.Contains(m, e.Message);
        return ffe;
    }

    [Fact]
    public void Truncation_at_every_offset_fails_cleanly()
    {
        var bytes = Seed.Bytes;
        for (int n = 0; n < bytes.Length; n++)
        {
            var cut = bytes.AsSpan(0, n).ToArray();
            if (n >= Seed.DataEnd)
            {
                // Only the zero padding after the last tensor is gone: still a complete file.
                using var f = GgufReader.Read(MappedFile.FromBytes(cut, Name), ownsFile: true);
                Assert.Equal(Seed.TensorNames.Length, f.Tensors.Count);
                continue;
            }
            AssertBad(cut);
        }
    }

    [Fact]
    public void Truncated_real_file_names_the_path()
    {
        using var dir = new TempDir();
        string path = dir.File("cut.gguf");
        File.WriteAllBytes(path, Seed.Bytes.AsSpan(0, 100).ToArray());
        var e = Assert.Throws<FileFormatException>(() => GgufReader.Read(path).Dispose());
        Assert.Equal(path, e.FilePath);
        Assert.Contains(path, e.Message);
        Assert.NotNull(e.Offset);
    }

    [Theory]
    [InlineData(0u, "header.magic")]
    [InlineData(0x46554746u, "header.magic")]
    public void Wrong_magic(uint magic, string field) => AssertBad(Seed.WithU32(0, magic), field, "not a GGUF file");

    [Theory]
    [InlineData(0u, "unsupported GGUF version 0")]
    [InlineData(1u, "v1")]
    [InlineData(4u, "unsupported GGUF version 4")]
    [InlineData(0x03000000u, "big-endian")]
    [InlineData(uint.MaxValue, "unsupported GGUF version")]
    public void Unsupported_version(uint version, string problem) => AssertBad(Seed.WithU32(4, version), "header.version", problem);

    [Theory]
    [InlineData(8L, "header.tensor_count")]
    [InlineData(16L, "header.metadata_kv_count")]
    public void Absurd_and_lying_counts(long at, string field)
    {
        foreach (ulong count in new ulong[] { ulong.MaxValue, 1UL << 40, (1UL << 20) + 1, 100_000, 5, 6 })
        {
            var bytes = Seed.WithU64(at, count);
            if (at == 8 && count == 5) continue; // covered below: a fifth tensor "appears" from the data bytes
            var e = Assert.ThrowsAny<BadInputException>(() => GgufReader.Read(MappedFile.FromBytes(bytes, Name), ownsFile: true).Dispose());
            Assert.Contains(Name, e.Message);
            Assert.Contains("byte offset", e.Message);
        }
        AssertBad(Seed.WithU64(at, ulong.MaxValue), field, "exceeds the limit");
    }

    [Fact]
    public void Lying_key_length()
    {
        long at = Seed.Keys["general.architecture"];
        AssertBad(Seed.WithU64(at, 1UL << 40), "metadata[0].key length", "exceeds the limit");
        AssertBad(Seed.WithU64(at, 60_000), "metadata[0].key length", "runs past the end");
        AssertBad(Seed.WithU64(at, ulong.MaxValue), "metadata[0].key length");
        // One byte too long: the key swallows the type's first byte and the rest is misread, but still cleanly.
        AssertBad(Seed.WithU64(at, (ulong)"general.architecture".Length + 1));
    }

    [Fact]
    public void Lying_string_value_length()
    {
        long at = Seed.ValueAt("general.architecture");
        AssertBad(Seed.WithU64(at, 1UL << 62), "general.architecture", "exceeds the limit");
        AssertBad(Seed.WithU64(at, (ulong)Seed.Bytes.Length), "general.architecture", "runs past the end");
    }

    [Fact]
    public void Lying_array_length()
    {
        long countAt = Seed.ValueAt("tokenizer.ggml.tokens") + 4;
        AssertBad(Seed.WithU64(countAt, ulong.MaxValue), "tokenizer.ggml.tokens", "exceeds the limit");
        AssertBad(Seed.WithU64(countAt, 1UL << 25), "tokenizer.ggml.tokens", "remain");
        AssertBad(Seed.WithU64(countAt, 1000));
        long scoresAt = Seed.ValueAt("tokenizer.ggml.scores") + 4;
        AssertBad(Seed.WithU64(scoresAt, 1UL << 24), "tokenizer.ggml.scores", "remain");
    }

    [Fact]
    public void Unknown_value_types()
    {
        AssertBad(Seed.WithU32(Seed.TypeAt("llama.block_count"), 13), "llama.block_count", "unknown value type 13");
        AssertBad(Seed.WithU32(Seed.ValueAt("tokenizer.ggml.tokens"), 0xFFFFFFFF), "tokenizer.ggml.tokens", "unknown element type");
    }

    [Fact]
    public void Invalid_utf8_in_a_key_and_in_a_string_value()
    {
        long keyBytes = Seed.Keys["general.architecture"] + 8;
        var e = AssertBad(Seed.With(keyBytes + 3, [0xFF]), "metadata[0].key", "invalid UTF-8");
        Assert.Equal(keyBytes + 3, e.Offset);
        long value = Seed.ValueAt("general.architecture") + 8;
        e = AssertBad(Seed.With(value + 1, [0xC3, 0x28]), "general.architecture", "invalid UTF-8");
        Assert.Equal(value + 1, e.Offset);
        long firstToken = Seed.ValueAt("tokenizer.ggml.tokens") + 12 + 8;
        AssertBad(Seed.With(firstToken, [0xED, 0xA0, 0x80]), "'tokenizer.ggml.tokens'[0]", "invalid UTF-8"); // a UTF-16 surrogate
        long tensorName = Seed.Tensors["a.weight"].Info + 8;
        AssertBad(Seed.With(tensorName, [0x80]), "tensor[0].name", "invalid UTF-8");
    }

    [Fact]
    public void Tensor_offsets_past_the_end()
    {
        var last = Seed.Tensors[Seed.TensorNames[^1]];
        AssertBad(Seed.WithU64(last.Offset, 1UL << 40), $"tensor '{Seed.TensorNames[^1]}' offset", "past the end");
        AssertBad(Seed.WithU64(last.Offset, (ulong)last.Value + Seed.Alignment), "past the end");
        AssertBad(Seed.WithU64(last.Offset, ulong.MaxValue & ~31UL), "offset");
        var first = Seed.Tensors["a.weight"];
        AssertBad(Seed.WithU64(first.Offset, (ulong)Seed.Bytes.Length & ~31UL));
    }

    [Fact]
    public void Non_monotonic_overlapping_and_misaligned_offsets()
    {
        var a = Seed.Tensors["a.weight"];
        var b = Seed.Tensors["b.weight"];
        var c = Seed.Tensors["c.weight"];
        // b placed where a is: overlap.
        AssertBad(Seed.WithU64(b.Offset, (ulong)a.Value), "tensor 'b.weight' offset", "overlaps");
        // a and b swapped: not increasing.
        var swapped = Seed.WithU64(a.Offset, (ulong)b.Value);
        BinaryPrimitives.WriteUInt64LittleEndian(swapped.AsSpan((int)b.Offset), (ulong)a.Value);
        AssertBad(swapped, "tensor 'b.weight' offset");
        // c moved back into b's bytes.
        AssertBad(Seed.WithU64(c.Offset, (ulong)b.Value), "tensor 'c.weight' offset", "overlaps");
        AssertBad(Seed.WithU64(b.Offset, (ulong)b.Value + 4), "tensor 'b.weight' offset", "not a multiple of the alignment 32");
        AssertBad(Seed.WithU64(b.Offset, (ulong)b.Value + 1), "alignment");
    }

    [Fact]
    public void Unknown_ggml_types()
    {
        var t = Seed.Tensors["a.weight"];
        foreach (uint type in new uint[] { 4, 5, 99, 1000, 1001, uint.MaxValue })
            AssertBad(Seed.WithU32(t.Type, type), "tensor 'a.weight' type", $"ggml type {type}");
    }

    [Fact]
    public void Quantized_type_with_a_row_that_is_not_whole_blocks()
    {
        // a.weight is F32 [3, 5] (ne = [5, 3]); as Q8_0 its row of 5 is not a whole 32-element block.
        AssertBad(Seed.WithU32(Seed.Tensors["a.weight"].Type, (uint)TensorType.Q8_0), "tensor 'a.weight' ne[0]", "block size");
    }

    [Fact]
    public void Too_many_and_zero_dims()
    {
        var t = Seed.Tensors["a.weight"];
        AssertBad(Seed.WithU32(t.Dims, 5), "tensor 'a.weight' n_dims", "5 dimensions");
        AssertBad(Seed.WithU32(t.Dims, 0), "tensor 'a.weight' n_dims", "0 dimensions");
        AssertBad(Seed.WithU32(t.Dims, uint.MaxValue), "n_dims");
        AssertBad(Seed.WithU64(t.Dims + 4, 0), "tensor 'a.weight' ne[0]", "dimension 0");
        AssertBad(Seed.WithU64(t.Dims + 12, 0), "tensor 'a.weight' ne[1]");
        AssertBad(Seed.WithU64(t.Dims + 4, ulong.MaxValue), "tensor 'a.weight' ne[0]");
        AssertBad(Seed.WithU64(t.Dims + 4, 1UL << 63), "tensor 'a.weight' ne[0]");
        var big = Seed.WithU64(t.Dims + 4, 1L << 40);
        BinaryPrimitives.WriteUInt64LittleEndian(big.AsSpan((int)t.Dims + 12), 1UL << 40);
        AssertBad(big, "tensor 'a.weight' ne[1]", "overflows");
        AssertBad(Seed.WithU64(t.Dims + 4, 1UL << 40), "tensor 'a.weight' offset", "past the end");
    }

    [Fact]
    public void Lying_tensor_name_length()
    {
        var t = Seed.Tensors["b.weight"];
        AssertBad(Seed.WithU64(t.Info, 1UL << 50), "tensor[1].name length", "exceeds the limit");
        AssertBad(Seed.WithU64(t.Info, 0), "tensor[1].name", "empty");
    }

    [Fact]
    public void Bad_general_alignment()
    {
        var md = new List<KeyValuePair<string, GgufValue>> { new("general.alignment", 64u) };
        var seed = new Layout(GgufSamples.ToBytes(md, GgufSamples.SmallTensors()));
        long at = seed.ValueAt("general.alignment");
        AssertBad(seed.WithU32(at, 0), "general.alignment", "power of two");
        AssertBad(seed.WithU32(at, 48), "general.alignment", "power of two");
        AssertBad(seed.WithU32(at, 1u << 31), "general.alignment");
        AssertBad(seed.WithU32(seed.TypeAt("general.alignment"), (uint)GgufValueType.Int32), "general.alignment", "uint32");
        // A smaller alignment than the file was written with is legal but shifts the data section: the offsets of
        // this file were laid out for 64 and the data start moves, so tensors run off the end or stay valid, never crash.
        var eight = seed.WithU32(at, 8);
        try { GgufReader.Read(MappedFile.FromBytes(eight, Name), ownsFile: true).Dispose(); }
        catch (FileFormatException e) { Assert.Contains("byte offset", e.Message); }
    }

    [Fact]
    public void Bool_bytes_other_than_0_and_1()
    {
        var md = new List<KeyValuePair<string, GgufValue>> { new("flag", true), new("flags", GgufValue.Array(new[] { false, true })) };
        var seed = new Layout(GgufSamples.ToBytes(md, []));
        AssertBad(seed.With(seed.ValueAt("flag"), [2]), "flag", "bool byte 2");
        AssertBad(seed.With(seed.ValueAt("flags") + 12 + 1, [0x80]), "'flags'[1]", "bool byte 128");
    }

    [Fact]
    public void Duplicate_keys_and_tensor_names()
    {
        // Rename the second key to the first's spelling (same length) and the second tensor likewise.
        var md = new List<KeyValuePair<string, GgufValue>> { new("key.one", 1u), new("key.two", 2u) };
        var seed = new Layout(GgufSamples.ToBytes(md, GgufSamples.SmallTensors()));
        AssertBad(seed.With(seed.Keys["key.two"] + 8, "key.one"u8), "metadata key 'key.one'", "duplicate key");
        AssertBad(seed.With(seed.Tensors["b.weight"].Info + 8, "a"u8), "tensor 'a.weight'", "duplicate tensor name");
    }

    [Fact]
    public void Deeply_nested_arrays_stop_at_the_depth_cap()
    {
        // Built by hand: the writer would accept it, but a depth of 200 must not recurse 200 times into the reader.
        using var ms = new MemoryStream();
        var w = new BinaryWriter(ms);
        w.Write(GgufConstants.Magic); w.Write(3u); w.Write(0UL); w.Write(1UL);
        w.Write(4UL); w.Write("deep"u8); w.Write((uint)GgufValueType.Array);
        for (int i = 0; i < 200; i++) { w.Write((uint)GgufValueType.Array); w.Write(1UL); }
        w.Write((uint)GgufValueType.UInt8); w.Write(0UL);
        w.Flush();
        AssertBad(ms.ToArray(), "deep", "nested deeper");
    }

    [Fact]
    public void A_lie_repeated_inside_a_nested_array_is_caught()
    {
        using var ms = new MemoryStream();
        var w = new BinaryWriter(ms);
        w.Write(GgufConstants.Magic); w.Write(3u); w.Write(0UL); w.Write(1UL);
        w.Write(4UL); w.Write("nest"u8); w.Write((uint)GgufValueType.Array);
        w.Write((uint)GgufValueType.Array); w.Write(2UL);
        w.Write((uint)GgufValueType.String); w.Write(1UL); w.Write(3UL); w.Write("abc"u8);
        w.Write((uint)GgufValueType.Float64); w.Write(1UL << 30);
        w.Flush();
        AssertBad(ms.ToArray(), "'nest'[1] array length");
    }

    [Fact]
    public void Empty_and_tiny_files()
    {
        AssertBad([]);
        AssertBad("GGUF"u8.ToArray(), "header.version");
        AssertBad("GGML"u8.ToArray(), "header.magic");
        using var dir = new TempDir();
        string path = dir.File("empty.gguf");
        File.WriteAllBytes(path, []);
        var e = Assert.Throws<FileFormatException>(() => GgufReader.Read(path).Dispose());
        Assert.Contains(path, e.Message);
    }
}
