using System.Runtime.InteropServices;
using EdgeQuant.Core.Tensors;

namespace EdgeQuant.Models.Tests.Engine;

/// <summary>Shape of a random-weight test model built in memory (no file, no loader involved).</summary>
public sealed record TestShape(
    Architecture Arch = Architecture.Llama,
    int Vocab = 97,
    int HeadCount = 4,
    int HeadCountKv = 2,
    int HeadDim = 16,
    int FeedForward = 45,
    int Blocks = 2,
    bool Tied = false,
    bool QkvBias = false,
    int Positions = 64,
    float RopeTheta = 10000f,
    float Epsilon = 1e-5f,
    int[]? LayerHeads = null,
    int[]? LayerKvHeads = null,
    int[]? LayerFeedForward = null)
{
    public int Embedding => HeadCount * HeadDim;

    public int HeadsIn(int l) => LayerHeads?[l] ?? HeadCount;
    public int KvHeadsIn(int l) => LayerKvHeads?[l] ?? HeadCountKv;
    public int FeedForwardIn(int l) => LayerFeedForward?[l] ?? FeedForward;
}

/// <summary>Random-weight models in GGUF canonical naming, F32 in memory, for engine tests.</summary>
public static class TestModels
{
    public static Model Build(TestShape s, int seed = 1)
    {
        var rng = new Random(seed);
        var tensors = new List<ModelTensor>();
        int d = s.Embedding;
        bool gpt2 = s.Arch == Architecture.Gpt2;

        // Scales keep activations O(1) through the blocks so that logits are neither saturated nor vanishing.
        void Add(string name, long[] shape, float scale, float center = 0f)
        {
            long count = shape.Aggregate(1L, (a, b) => a * b);
            var values = new float[count];
            for (long i = 0; i < count; i++) values[i] = center + scale * (float)(rng.NextDouble() * 2 - 1);
            tensors.Add(new ModelTensor
            {
                Name = name, Shape = shape, Type = TensorType.F32, SourceName = name,
                Storage = new ArrayTensorStorage(MemoryMarshal.AsBytes(values.AsSpan()).ToArray()),
            });
        }
        float W(int fanIn) => 1.7f / MathF.Sqrt(fanIn);

        Add("token_embd.weight", [s.Vocab, d], 1f);
        if (gpt2) Add("position_embd.weight", [s.Positions, d], 0.5f);
        for (int l = 0; l < s.Blocks; l++)
        {
            string p = $"blk.{l}.";
            int q = s.HeadsIn(l) * s.HeadDim, kv = s.KvHeadsIn(l) * s.HeadDim, ff = s.FeedForwardIn(l);
            Add(p + "attn_norm.weight", [d], 0.2f, 1f);
            if (gpt2)
            {
                Add(p + "attn_norm.bias", [d], 0.1f);
                Add(p + "attn_qkv.weight", [q + 2 * kv, d], W(d));
                Add(p + "attn_qkv.bias", [q + 2 * kv], 0.1f);
            }
            else
            {
                Add(p + "attn_q.weight", [q, d], W(d));
                Add(p + "attn_k.weight", [kv, d], W(d));
                Add(p + "attn_v.weight", [kv, d], W(d));
                if (s.QkvBias)
                {
                    Add(p + "attn_q.bias", [q], 0.2f);
                    Add(p + "attn_k.bias", [kv], 0.2f);
                    Add(p + "attn_v.bias", [kv], 0.2f);
                }
            }
            Add(p + "attn_output.weight", [d, q], W(q));
            if (gpt2) Add(p + "attn_output.bias", [d], 0.1f);
            Add(p + "ffn_norm.weight", [d], 0.2f, 1f);
            if (gpt2)
            {
                Add(p + "ffn_norm.bias", [d], 0.1f);
                Add(p + "ffn_up.weight", [ff, d], W(d));
                Add(p + "ffn_up.bias", [ff], 0.1f);
                Add(p + "ffn_down.weight", [d, ff], W(ff));
                Add(p + "ffn_down.bias", [d], 0.1f);
            }
            else
            {
                Add(p + "ffn_gate.weight", [ff, d], W(d));
                Add(p + "ffn_up.weight", [ff, d], W(d));
                Add(p + "ffn_down.weight", [d, ff], W(ff));
            }
        }
        Add("output_norm.weight", [d], 0.2f, 1f);
        if (gpt2) Add("output_norm.bias", [d], 0.1f);
        if (!s.Tied) Add("output.weight", [s.Vocab, d], W(d));

        var config = new ModelConfig
        {
            Architecture = s.Arch,
            SourceArchitecture = s.Arch.ToString().ToLowerInvariant(),
            VocabSize = s.Vocab,
            EmbeddingLength = d,
            BlockCount = s.Blocks,
            HeadCount = s.HeadCount,
            HeadCountKv = s.HeadCountKv,
            FeedForwardLength = s.FeedForward,
            LayerHeadCounts = s.LayerHeads,
            LayerHeadCountsKv = s.LayerKvHeads,
            LayerFeedForwardLengths = s.LayerFeedForward,
            ContextLength = s.Positions,
            HeadDim = s.HeadDim,
            RopeTheta = s.RopeTheta,
            NormEpsilon = s.Epsilon,
            TiedEmbeddings = s.Tied,
            AttentionBias = s.QkvBias,
        };
        return new Model(config, tensors, null, new Provenance($"test:{s}", ModelFormat.Gguf));
    }

    public static int[] RandomTokens(int count, int vocab, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => rng.Next(vocab)).ToArray();
    }

    /// <summary>‖a − b‖₂ / ‖b‖₂ over the whole array.</summary>
    public static double RelativeL2(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        if (a.Length != b.Length) throw new ArgumentException($"lengths {a.Length} and {b.Length} differ");
        double num = 0, den = 0;
        for (int i = 0; i < a.Length; i++)
        {
            double e = (double)a[i] - b[i];
            num += e * e;
            den += (double)b[i] * b[i];
        }
        return Math.Sqrt(num / den);
    }
}
