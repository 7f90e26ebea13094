using EdgeQuant.Core.Errors;
using EdgeQuant.Models.Engine;
using Xunit.Abstractions;

namespace EdgeQuant.Models.Tests.Engine;

/// <summary>
/// Layers of different widths (what structured pruning leaves): each layer's own query heads, KV heads and FFN width,
/// a KV cache per layer sized by its KV heads. Checked against the naive double-precision transformer, which reads the
/// widths per layer with no code shared with the engine.
/// </summary>
public class PerLayerWidthTests(ITestOutputHelper output)
{
    /// <summary>As ReferenceEngineTests.VsNaive: F32 rounding is ~1e-6, a wrong head/group mapping is ~1e-2.</summary>
    private const double VsNaive = 2e-5;

    private const double SameEngine = 1e-5;

    // Layer 0 is narrower than the config's largest (llama.cpp derives defaults from layer 0), GQA ratios differ
    // between layers (2, 2, 1, 4), and the FFN widths include an odd one.
    private static readonly TestShape Pruned = new(HeadCount: 4, HeadCountKv: 2, HeadDim: 16, FeedForward: 96, Blocks: 4,
        LayerHeads: [2, 4, 1, 4], LayerKvHeads: [1, 2, 1, 1], LayerFeedForward: [40, 96, 17, 64]);

    [Fact]
    public void Full_sequence_and_kv_cache_steps_match_the_naive_reference()
    {
        using var model = TestModels.Build(Pruned, seed: 21);
        Assert.True(model.Config.HasPerLayerWidths);
        var tokens = TestModels.RandomTokens(27, Pruned.Vocab, seed: 22);
        var expected = NaiveTransformer.Logits(model, tokens);
        var engine = ReferenceEngine.Load(model, new EngineOptions { Threads = 2, MaxBatch = 8 });

        var full = engine.CreateSession(32).DecodeAll(tokens);
        double errFull = TestModels.RelativeL2(full, expected);

        // Micro-batches of 8 (MaxBatch), then single tokens through the cache.
        var session = engine.CreateSession(32);
        var stepped = new float[full.Length];
        session.DecodeAll(tokens.AsSpan(0, 20)).CopyTo(stepped, 0);
        for (int i = 20; i < tokens.Length; i++) session.DecodeLast([tokens[i]]).CopyTo(stepped, i * Pruned.Vocab);
        double errStepped = TestModels.RelativeL2(stepped, expected);
        output.WriteLine($"per-layer widths vs naive double: full {errFull:E2}, prefill + steps {errStepped:E2}");
        Assert.True(errFull <= VsNaive, $"full: relative L2 {errFull:E2} > {VsNaive:E0}");
        Assert.True(errStepped <= VsNaive, $"stepped: relative L2 {errStepped:E2} > {VsNaive:E0}");
        Assert.True(TestModels.RelativeL2(stepped, full) <= SameEngine);
    }

    [Fact]
    public void The_kv_cache_holds_each_layers_own_kv_heads()
    {
        using var model = TestModels.Build(Pruned);
        var session = ReferenceEngine.Load(model).CreateSession(10);
        long kvHeads = Pruned.LayerKvHeads!.Sum();
        Assert.Equal(2 * kvHeads * 10 * Pruned.HeadDim * sizeof(float), session.KvCacheBytes);
    }

    [Fact]
    public void Inconsistent_per_layer_widths_are_refused()
    {
        using var good = TestModels.Build(Pruned);
        void Refused(ModelConfig config, string expected)
        {
            using var bad = new Model(config, good.Tensors, null, good.Provenance);
            var e = Assert.Throws<BadInputException>(() => ReferenceEngine.Load(bad));
            Assert.Contains(expected, e.Message);
        }
        Refused(good.Config with { LayerHeadCounts = [2, 4, 1] }, "3 entries for 4 layers");
        Refused(good.Config with { LayerHeadCountsKv = [1, 3, 1, 1] }, "layer 1: n_head 4 is not a multiple of n_head_kv 3");
        Refused(good.Config with { LayerFeedForwardLengths = [40, 0, 17, 64] }, "layer 1: n_ff 0");
        // Widths that contradict the tensors: the tensor is named with the shape the config implies.
        Refused(good.Config with { LayerFeedForwardLengths = [40, 96, 18, 64] }, "blk.2.ffn_gate.weight");
        Refused(good.Config with { Architecture = Architecture.Qwen2 }, "Llama family only");
    }
}
