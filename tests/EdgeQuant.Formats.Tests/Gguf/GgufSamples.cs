using EdgeQuant.Core.Tensors;
using EdgeQuant.Formats.Gguf;

namespace EdgeQuant.Formats.Tests.Gguf;

/// <summary>Small valid GGUF files built in memory with the project's writer, as seeds for round-trip and bad-input tests.</summary>
internal static class GgufSamples
{
    public static byte[] ToBytes(IEnumerable<KeyValuePair<string, GgufValue>> metadata, IEnumerable<GgufTensorToWrite> tensors, uint version = 3)
    {
        using var ms = new MemoryStream();
        GgufWriter.Write(ms, "memory.gguf", metadata, tensors, version);
        return ms.ToArray();
    }

    /// <summary>Every value type once, plus arrays of each type and nested arrays.</summary>
    public static List<KeyValuePair<string, GgufValue>> AllValueTypes() =>
    [
        new("general.architecture", "llama"),
        new("general.name", "all types ✓ ünïcödé"),
        new("t.u8", GgufValue.From((byte)250)),
        new("t.i8", GgufValue.From((sbyte)-7)),
        new("t.u16", GgufValue.From((ushort)65000)),
        new("t.i16", GgufValue.From((short)-32000)),
        new("t.u32", GgufValue.From(4_000_000_000u)),
        new("t.i32", GgufValue.From(-2_000_000_000)),
        new("t.f32", GgufValue.From(3.25f)),
        new("t.f32nan", GgufValue.From(BitConverter.Int32BitsToSingle(0x7fc01234))),
        new("t.bool.true", GgufValue.From(true)),
        new("t.bool.false", GgufValue.From(false)),
        new("t.string.empty", GgufValue.From("")),
        new("t.u64", GgufValue.From(ulong.MaxValue - 3)),
        new("t.i64", GgufValue.From(long.MinValue + 5)),
        new("t.f64", GgufValue.From(-1e300)),
        new("a.u8", GgufValue.Array(new byte[] { 0, 1, 255 })),
        new("a.i8", GgufValue.Array(new sbyte[] { -128, 0, 127 })),
        new("a.u16", GgufValue.Array(new ushort[] { 1, 65535 })),
        new("a.i16", GgufValue.Array(new short[] { -1, 2 })),
        new("a.u32", GgufValue.Array(new uint[] { 7, 8, 9 })),
        new("a.i32", GgufValue.Array(new[] { -1, 0, 1 })),
        new("a.f32", GgufValue.Array(new[] { 0.5f, -0f, float.PositiveInfinity })),
        new("a.bool", GgufValue.Array(new[] { true, false, true })),
        new("a.string", GgufValue.Array(new[] { "a", "", "ß→∑", "<0x0A>" })),
        new("a.u64", GgufValue.Array(new ulong[] { 0, ulong.MaxValue })),
        new("a.i64", GgufValue.Array(new long[] { long.MinValue, long.MaxValue })),
        new("a.f64", GgufValue.Array(new[] { Math.PI, double.NegativeInfinity })),
        new("a.empty", GgufValue.Array(Array.Empty<uint>())),
        new("a.nested", GgufValue.ArrayOfArrays([
            GgufValue.Array(new[] { 1, 2 }),
            GgufValue.Array(new[] { "x", "y", "z" }),
            GgufValue.ArrayOfArrays([GgufValue.Array(new[] { 1.5 }), GgufValue.Array(Array.Empty<bool>())]),
        ])),
    ];

    /// <summary>A few tensors of plain and quantized types with odd sizes, so the padding between them matters.</summary>
    public static List<GgufTensorToWrite> SmallTensors(int seed = 1)
    {
        var rng = new Random(seed);
        float[] Floats(int n) => Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        byte[] Bytes(int n) { var b = new byte[n]; rng.NextBytes(b); return b; }
        var a = Floats(3 * 5);
        var b = Floats(7);
        var c = Floats(2 * 3 * 4 * 2);
        var q8 = Bytes(2 * 34);
        // Valid f16 scale so the block dequantizes to finite numbers.
        BitConverter.TryWriteBytes(q8.AsSpan(0, 2), (Half)0.01f);
        BitConverter.TryWriteBytes(q8.AsSpan(34, 2), (Half)0.02f);
        return
        [
            GgufTensorToWrite.FromFloats("a.weight", TensorType.F32, [3, 5], () => a),
            GgufTensorToWrite.FromFloats("b.weight", TensorType.F16, [7], () => b),
            GgufTensorToWrite.FromFloats("c.weight", TensorType.BF16, [2, 3, 4, 2], () => c),
            GgufTensorToWrite.FromBytes("q.weight", TensorType.Q8_0, [2, 32], q8),
        ];
    }

    /// <summary>A small complete file: some metadata (tokens included) and four tensors.</summary>
    public static byte[] Small(uint alignment = 32)
    {
        var md = new List<KeyValuePair<string, GgufValue>>
        {
            new("general.architecture", "llama"),
            new("llama.block_count", 1u),
            new("tokenizer.ggml.tokens", GgufValue.Array(new[] { "<unk>", "a", "b" })),
            new("tokenizer.ggml.scores", GgufValue.Array(new[] { 0f, -1f, -2f })),
        };
        if (alignment != 32) md.Add(new("general.alignment", alignment));
        return ToBytes(md, SmallTensors());
    }
}
