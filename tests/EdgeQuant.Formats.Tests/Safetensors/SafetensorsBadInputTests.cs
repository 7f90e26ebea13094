using System.Buffers.Binary;
using System.Text;
using EdgeQuant.Core.Errors;

namespace EdgeQuant.Formats.Tests.Safetensors;

/// <summary>Broken files: each must fail with one <see cref="FileFormatException"/> naming the file, the field or tensor, and a byte offset.</summary>
public class SafetensorsBadInputTests
{
    private const string FileName = "bad.safetensors";

    private static FileFormatException Fails(byte[] bytes)
    {
        var e = Assert.Throws<FileFormatException>(() => SafetensorsTestFiles.Read(bytes, FileName).Dispose());
        Assert.Equal(FileName, e.FilePath);
        Assert.NotNull(e.Offset);
        Assert.InRange(e.Offset!.Value, 0, bytes.Length);
        Assert.StartsWith($"{FileName}: ", e.Message);
        Assert.Contains("at byte offset", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        return e;
    }

    private static FileFormatException Fails(string header, int dataBytes) => Fails(SafetensorsTestFiles.Build(header, dataBytes));

    private static long HeaderOffsetOf(string header, string fragment) => 8 + Encoding.UTF8.GetByteCount(header[..header.IndexOf(fragment, StringComparison.Ordinal)]);

    [Fact]
    public void Header_that_is_not_json()
    {
        var e = Fails("this is not json at all", 0);
        Assert.Equal("header", e.Field);
        Assert.Equal(8, e.Offset);
        var e2 = Fails("{\"a\": {\"dtype\": \"F32\", ", 0);
        Assert.Contains("JSON", e2.Message);
    }

    [Theory]
    [InlineData(100_000_001UL)]
    [InlineData(1UL << 40)]
    [InlineData(ulong.MaxValue)]
    public void Absurd_header_size_is_refused_before_any_allocation(ulong size)
    {
        var bytes = SafetensorsTestFiles.Valid();
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, size);
        var e = Fails(bytes);
        Assert.Equal("header length", e.Field);
        Assert.Equal(0, e.Offset);
    }

    [Fact]
    public void Header_length_past_the_end_of_the_file()
    {
        var bytes = SafetensorsTestFiles.Valid();
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)bytes.Length);
        Assert.Equal("header length", Fails(bytes).Field);
    }

    [Fact]
    public void Truncated_at_every_offset()
    {
        var bytes = SafetensorsTestFiles.Valid();
        for (int cut = 0; cut < bytes.Length; cut++)
        {
            var e = Fails(bytes[..cut]);
            Assert.False(string.IsNullOrEmpty(e.Field), $"cut at {cut}");
        }
        using var whole = SafetensorsTestFiles.Read(bytes);
        Assert.Equal(3, whole.Tensors.Count);
    }

    [Fact]
    public void Offsets_past_the_end_of_the_data()
    {
        const string h = """{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"x":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}""";
        var e = Fails(h, 12);
        Assert.Equal("tensor 'x' data_offsets", e.Field);
        Assert.Equal(HeaderOffsetOf(h, "\"data_offsets\":[8"), e.Offset);
        Assert.Contains("past the end", e.Message);
    }

    [Fact]
    public void Begin_after_end()
    {
        const string h = """{"w":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}}""";
        var e = Fails(h, 8);
        Assert.Equal("tensor 'w' data_offsets", e.Field);
        Assert.Contains("after end", e.Message);
    }

    [Fact]
    public void Overlapping_and_non_monotonic_offsets()
    {
        const string h = """{"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""";
        var e = Fails(h, 12);
        Assert.Contains("overlaps", e.Message);
        Assert.Contains("tensor '", e.Field);
        // Out of order but disjoint is fine (the reference writer orders by dtype, readers must not assume order).
        using var ok = SafetensorsTestFiles.Read(SafetensorsTestFiles.Build("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""", 8));
        Assert.Equal(2, ok.Tensors.Count);
    }

    [Theory]
    [InlineData("F8_E4M3")]
    [InlineData("Q4_0")]
    [InlineData("float32")]
    [InlineData("")]
    public void Unknown_dtype(string dtype)
    {
        string h = "{\"w\":{\"dtype\":\"" + dtype + "\",\"shape\":[2],\"data_offsets\":[0,2]}}";
        var e = Fails(h, 2);
        Assert.Equal("tensor 'w' dtype", e.Field);
        Assert.Equal(HeaderOffsetOf(h, "\"dtype\""), e.Offset);
        Assert.Contains("unknown dtype", e.Message);
    }

    [Fact]
    public void Shape_and_byte_span_disagree()
    {
        const string h = """{"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}}""";
        var e = Fails(h, 24);
        Assert.Equal("tensor 'w' data_offsets", e.Field);
        Assert.Contains("needs 24 bytes", e.Message);
    }

    [Fact]
    public void Element_count_overflow_is_a_format_error()
    {
        const string h = """{"w":{"dtype":"F32","shape":[4294967296,4294967296,4],"data_offsets":[0,4]}}""";
        Assert.Contains("too many", Fails(h, 4).Message);
    }

    [Fact]
    public void Invalid_utf8_in_the_header_is_reported_at_its_byte()
    {
        var header = Encoding.UTF8.GetBytes("""{"wé":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""");
        int at = Array.IndexOf(header, (byte)0xC3);
        Assert.True(at > 0);
        header[at + 1] = 0x28; // C3 28: a lead byte followed by a non-continuation byte
        var e = Fails(SafetensorsTestFiles.Build(header, 4));
        Assert.Equal("header", e.Field);
        Assert.Equal(8 + at, e.Offset);
        Assert.Contains("UTF-8", e.Message);
    }

    [Theory]
    [InlineData("""{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}""", "tensor 'w' shape")]
    [InlineData("""{"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}""", "tensor 'w' shape")]
    [InlineData("""{"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}}""", "tensor 'w' data_offsets")]
    [InlineData("""{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}""", "tensor 'w' data_offsets")]
    [InlineData("""{"w":{"dtype":"F32","shape":[1]}}""", "tensor 'w' data_offsets")]
    [InlineData("""{"w":{"shape":[1],"data_offsets":[0,4]}}""", "tensor 'w' dtype")]
    [InlineData("""{"w":{"dtype":7,"shape":[1],"data_offsets":[0,4]}}""", "tensor 'w' dtype")]
    [InlineData("""{"w":[1,2]}""", "tensor 'w' entry")]
    [InlineData("""{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""", "tensor 'w' name")]
    [InlineData("""{"__metadata__":{"k":1}}""", "__metadata__.k")]
    [InlineData("""{"__metadata__":[1]}""", "__metadata__")]
    [InlineData("""[1,2,3]""", "header")]
    [InlineData("""{"w":{"dtype":"F32","shape":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1],"data_offsets":[0,4]}}""", "tensor 'w' shape")]
    [InlineData("""{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}} trailing""", "header")]
    [InlineData("""{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":{"y":{"z":[[[1]]]}}}}""", "header")]
    public void Lying_or_malformed_header_fields(string header, string field)
    {
        Assert.Equal(field, Fails(header, 4).Field);
    }

    [Fact]
    public void Control_characters_in_a_tensor_name_stay_out_of_the_one_line_message()
    {
        const string h = "{\"a\\nb\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,8]}}";
        var e = Fails(h, 8);
        Assert.DoesNotContain('\n', e.Message);
    }
}
