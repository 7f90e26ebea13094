using EdgeQuant.Core.Tensors;
using EdgeQuant.Models;

namespace EdgeQuant.Cli.Tests.Infrastructure;

/// <summary>Hand-made in-memory models, so CLI tests do not depend on any loader.</summary>
public static class TestModels
{
    public const string FakePath = "tiny-test-model.gguf";

    public static ModelConfig TinyConfig { get; } = new()
    {
        Architecture = Architecture.Llama,
        SourceArchitecture = "llama",
        VocabSize = 40,
        EmbeddingLength = 16,
        BlockCount = 1,
        HeadCount = 4,
        HeadCountKv = 2,
        FeedForwardLength = 24,
        ContextLength = 128,
        HeadDim = 4,
        RopeTheta = 10000f,
        NormEpsilon = 1e-5f,
    };

    /// <summary>
    /// A one-block Llama with F32, F16, BF16 and I32 tensors, one tensor larger than a statistics chunk, one with
    /// exact zeros and one holding a NaN, filled from a seeded generator.
    /// </summary>
    public static Model Tiny(int seed = 1234)
    {
        var rng = new Random(seed);
        var c = TinyConfig;
        var tensors = new List<ModelTensor>
        {
            F32("token_embd.weight", [c.VocabSize, c.EmbeddingLength], rng),
            F32("blk.0.attn_norm.weight", [c.EmbeddingLength], rng, zeroEvery: 4),
            F16("blk.0.attn_q.weight", [c.EmbeddingLength, c.EmbeddingLength], rng),
            Bf16("blk.0.attn_k.weight", [c.HeadCountKv * c.HeadDim, c.EmbeddingLength], rng),
            F32("blk.0.ffn_up.weight", [300, 300], rng, scale: 0.02f, offset: 0.5f), // 90,000 elements: two chunks
            F32("blk.0.ffn_down.weight", [c.EmbeddingLength, c.FeedForwardLength], rng, nanAt: 7),
            I32("blk.0.index", [5]),
            F32("output_norm.weight", [c.EmbeddingLength], rng),
        };
        var tokenizer = new TokenizerData
        {
            Kind = "llama",
            Tokens = Enumerable.Range(0, c.VocabSize).Select(i => $"tok{i}").ToList(),
            BosId = 1,
            EosId = 2,
            SourcePath = FakePath,
        };
        return new Model(c, tensors, tokenizer, new Provenance(FakePath, ModelFormat.Gguf));
    }

    public static Func<string, string?, Model> Loader(Func<Model> make) => (_, _) => make();

    private static float[] Values(long n, Random rng, float scale, float offset, int zeroEvery, int nanAt)
    {
        var v = new float[n];
        for (var i = 0; i < n; i++)
        {
            v[i] = offset + scale * (float)(rng.NextDouble() * 2 - 1);
            if (zeroEvery > 0 && i % zeroEvery == 0) v[i] = 0f;
        }
        if (nanAt >= 0) v[nanAt] = float.NaN;
        return v;
    }

    private static ModelTensor F32(string name, long[] shape, Random rng, float scale = 1f, float offset = 0f, int zeroEvery = 0, int nanAt = -1)
    {
        var v = Values(shape.Aggregate(1L, (a, b) => a * b), rng, scale, offset, zeroEvery, nanAt);
        var bytes = new byte[v.Length * 4];
        Buffer.BlockCopy(v, 0, bytes, 0, bytes.Length);
        return Make(name, shape, TensorType.F32, bytes);
    }

    private static ModelTensor F16(string name, long[] shape, Random rng)
    {
        var v = Values(shape.Aggregate(1L, (a, b) => a * b), rng, 1f, 0f, 0, -1);
        var bytes = new byte[v.Length * 2];
        for (var i = 0; i < v.Length; i++) BitConverter.TryWriteBytes(bytes.AsSpan(i * 2), (Half)v[i]);
        return Make(name, shape, TensorType.F16, bytes);
    }

    private static ModelTensor Bf16(string name, long[] shape, Random rng)
    {
        var v = Values(shape.Aggregate(1L, (a, b) => a * b), rng, 1f, 0f, 0, -1);
        var bytes = new byte[v.Length * 2];
        for (var i = 0; i < v.Length; i++)
            BitConverter.TryWriteBytes(bytes.AsSpan(i * 2), (ushort)(BitConverter.SingleToUInt32Bits(v[i]) >> 16));
        return Make(name, shape, TensorType.BF16, bytes);
    }

    private static ModelTensor I32(string name, long[] shape)
    {
        var bytes = new byte[shape.Aggregate(1L, (a, b) => a * b) * 4];
        return Make(name, shape, TensorType.I32, bytes);
    }

    private static ModelTensor Make(string name, long[] shape, TensorType type, byte[] bytes) => new()
    {
        Name = name,
        Shape = shape,
        Type = type,
        SourceName = name,
        Storage = new ArrayTensorStorage(bytes),
    };
}
