using System.Runtime.InteropServices;
using EdgeQuant.Compression.Pruning;
using EdgeQuant.Core.Errors;
using EdgeQuant.Core.Tensors;
using EdgeQuant.Fixtures;
using EdgeQuant.Models;
using EdgeQuant.Models.Engine;
using EdgeQuant.Testing;
using Xunit.Abstractions;

namespace EdgeQuant.Compression.Tests.Pruning;

/// <summary>
/// Structured pruning on random fixtures: the pruned (smaller) model must compute exactly what the original computes
/// with the removed units silenced, i.e. their attn_output / ffn_down columns zeroed, or for a removed block its
/// attn_output and ffn_down (weights and biases) zeroed, so that the block adds nothing to the residual stream.
/// </summary>
public class StructuredPruningTests(ITestOutputHelper output)
{
    // Only the summation order of the narrowed products differs (fewer terms); measured ~1e-7.
    private const double Tolerance = 1e-5;

    public static TheoryData<string, FixtureSpec> Fixtures => new()
    {
        { "llama mha", new FixtureSpec { Layers = 3, Embd = 64, Heads = 4, KvHeads = 4, Ffn = 96, Vocab = 300, Seed = 71 } },
        { "llama gqa", new FixtureSpec { Layers = 3, Embd = 64, Heads = 8, KvHeads = 2, Ffn = 172, Vocab = 300, Untied = true, Seed = 72 } },
        { "llama attention_bias head_dim 32", new FixtureSpec { Layers = 3, Embd = 64, Heads = 4, KvHeads = 2, HeadDim = 32, Ffn = 80, Vocab = 300, AttentionBias = true, Seed = 73 } },
        { "qwen2 biases", new FixtureSpec { Arch = FixtureArch.Qwen2, Layers = 3, Embd = 96, Heads = 6, KvHeads = 3, Ffn = 120, Vocab = 300, Seed = 74 } },
        { "gpt2", new FixtureSpec { Arch = FixtureArch.Gpt2, Layers = 3, Embd = 64, Heads = 4, KvHeads = 4, Ffn = 256, Vocab = 320, ContextLength = 64, Seed = 75 } },
    };

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void Pruned_heads_channels_and_layers_equal_the_original_with_them_silenced(string name, FixtureSpec spec)
    {
        using var temp = new TempDir("eq-struct");
        using var model = ModelLoader.Load(FixtureMaker.Write(spec, temp.Path, FixtureFormats.Gguf).GgufPath!);
        var c = model.Config;
        var rng = new Random(spec.GetHashCode());
        var tokens = Enumerable.Range(0, 40).Select(_ => rng.Next(c.VocabSize)).ToArray();

        // Uniform counts (the engine runs standard configs), different indices per layer.
        int dropGroups = Math.Max(1, c.HeadCountKv / 2), dropChannels = c.FeedForwardLength / 3;
        var layers = new LayerPlan[c.BlockCount];
        for (int l = 0; l < c.BlockCount; l++)
        {
            var groups = Enumerable.Range(0, c.HeadCountKv).OrderBy(_ => rng.Next()).Take(dropGroups).ToArray();
            var channels = Enumerable.Range(0, c.FeedForwardLength).OrderBy(_ => rng.Next()).Take(dropChannels).ToArray();
            layers[l] = LayerPlan.Dense(c, l).WithoutGroups(groups).WithoutChannels(channels);
        }
        layers[1] = LayerPlan.Removed;
        var plan = new StructuredPlan(layers);

        var pruned = StructuredPruner.Apply(model, plan);
        Assert.Equal(c.BlockCount - 1, pruned.Config.BlockCount);
        Assert.Equal(c.HeadCount - dropGroups * (c.HeadCount / c.HeadCountKv), pruned.Config.HeadCount);
        Assert.Equal(c.HeadCountKv - dropGroups, pruned.Config.HeadCountKv);
        Assert.Equal(c.FeedForwardLength - dropChannels, pruned.Config.FeedForwardLength);
        Assert.False(pruned.Config.HasPerLayerWidths);
        Assert.Equal(pruned.ParameterCount, StructuredPruner.ParameterCount(model, plan));
        Assert.True(pruned.ParameterCount < model.ParameterCount);
        Assert.DoesNotContain(pruned.Tensors, t => t.Name.StartsWith($"blk.{c.BlockCount - 1}.", StringComparison.Ordinal));

        var silenced = Silence(model, plan);
        double rel = RelativeL2(Logits(pruned, tokens), Logits(silenced, tokens));
        output.WriteLine($"{name}: {model.ParameterCount:N0} -> {pruned.ParameterCount:N0} parameters, logits rel L2 {rel:E2}");
        Assert.InRange(rel, 0, Tolerance);
        // The silencing matters: the dense model's logits are far away (so the test can fail).
        Assert.True(RelativeL2(Logits(model, tokens), Logits(silenced, tokens)) > 1e-3);
    }

    [Fact]
    public void Each_unit_kind_alone_is_exact_and_a_dense_plan_changes_nothing()
    {
        using var temp = new TempDir("eq-struct");
        var spec = new FixtureSpec { Layers = 2, Embd = 64, Heads = 8, KvHeads = 4, Ffn = 100, Vocab = 300, Seed = 81 };
        using var model = ModelLoader.Load(FixtureMaker.Write(spec, temp.Path, FixtureFormats.Gguf).GgufPath!);
        var c = model.Config;
        var tokens = Enumerable.Range(0, 30).Select(i => (i * 37 + 5) % c.VocabSize).ToArray();
        var dense = StructuredPlan.Dense(c);
        var same = StructuredPruner.Apply(model, dense);
        Assert.Equal(Logits(model, tokens), Logits(same, tokens));
        Assert.Equal(model.ParameterCount, StructuredPruner.ParameterCount(model, dense));

        var headsOnly = new StructuredPlan([LayerPlan.Dense(c, 0).WithoutGroups([0, 3]), LayerPlan.Dense(c, 1).WithoutGroups([1, 2])]);
        var channelsOnly = new StructuredPlan([LayerPlan.Dense(c, 0).WithoutChannels(Enumerable.Range(0, 50)), LayerPlan.Dense(c, 1).WithoutChannels(Enumerable.Range(50, 50))]);
        var firstLayer = new StructuredPlan([LayerPlan.Removed, LayerPlan.Dense(c, 1)]);
        foreach (var plan in new[] { headsOnly, channelsOnly, firstLayer })
        {
            var pruned = StructuredPruner.Apply(model, plan);
            double rel = RelativeL2(Logits(pruned, tokens), Logits(Silence(model, plan), tokens));
            Assert.InRange(rel, 0, Tolerance);
        }
        // Q rows of group g are query heads 2g, 2g+1: check one narrowed tensor directly.
        var q = model.Get("blk.0.attn_q.weight").ToFloat32();
        var pq = StructuredPruner.Apply(model, headsOnly).Get("blk.0.attn_q.weight");
        Assert.Equal([4L * 8, 64], pq.Shape);
        int hd = c.HeadDim, e = c.EmbeddingLength;
        // Kept groups 1, 2 -> query heads 2..5 -> source rows [2·hd, 6·hd).
        Assert.Equal(q.AsSpan(2 * hd * e, 4 * hd * e).ToArray(), pq.ToFloat32());
    }

    /// <summary>The pruned model written as GGUF and as an HF folder (which un-permutes Q/K per head) reloads with the same logits.</summary>
    [Theory]
    [InlineData(FixtureArch.Llama)]
    [InlineData(FixtureArch.Qwen2)]
    public void Pruned_model_round_trips_through_gguf_and_hf(FixtureArch arch)
    {
        using var temp = new TempDir("eq-struct");
        var spec = new FixtureSpec { Arch = arch, Layers = 3, Embd = 64, Heads = 8, KvHeads = 4, Ffn = 100, Vocab = 300, Seed = 84 };
        using var model = ModelLoader.Load(FixtureMaker.Write(spec, temp.Path, FixtureFormats.Gguf).GgufPath!);
        var c = model.Config;
        var plan = new StructuredPlan([
            LayerPlan.Dense(c, 0).WithoutGroups([0, 2]).WithoutChannels(Enumerable.Range(10, 40)),
            LayerPlan.Removed,
            LayerPlan.Dense(c, 2).WithoutGroups([3, 1]).WithoutChannels(Enumerable.Range(0, 40)),
        ]);
        var pruned = StructuredPruner.Apply(model, plan);
        var tokens = Enumerable.Range(0, 30).Select(i => (i * 53 + 7) % c.VocabSize).ToArray();
        var expected = Logits(pruned, tokens);
        Export.GgufExporter.Export(pruned, temp.File("p.gguf"));
        Export.HfExporter.Export(pruned, temp.File("hf"));
        foreach (var path in new[] { temp.File("p.gguf"), temp.File("hf") })
        {
            using var back = ModelLoader.Load(path);
            Assert.Equal((4, 2, 60, 2), (back.Config.HeadCount, back.Config.HeadCountKv, back.Config.FeedForwardLength, back.Config.BlockCount));
            Assert.InRange(RelativeL2(Logits(back, tokens), expected), 0, 1e-6);
        }
    }

    [Fact]
    public void Different_widths_per_layer_give_per_layer_config_lists()
    {
        using var temp = new TempDir("eq-struct");
        var spec = new FixtureSpec { Layers = 3, Embd = 64, Heads = 8, KvHeads = 4, Ffn = 100, Vocab = 300, Seed = 82 };
        using var model = ModelLoader.Load(FixtureMaker.Write(spec, temp.Path, FixtureFormats.Gguf).GgufPath!);
        var c = model.Config;
        var plan = new StructuredPlan([
            LayerPlan.Dense(c, 0).WithoutGroups([1]),
            LayerPlan.Removed,
            LayerPlan.Dense(c, 2).WithoutChannels(Enumerable.Range(0, 30)),
        ]);
        var pruned = StructuredPruner.Apply(model, plan);
        var pc = pruned.Config;
        Assert.Equal(2, pc.BlockCount);
        Assert.Equal([6, 8], pc.LayerHeadCounts!);
        Assert.Equal([3, 4], pc.LayerHeadCountsKv!);
        Assert.Equal([100, 70], pc.LayerFeedForwardLengths!);
        Assert.Equal((8, 4, 100), (pc.HeadCount, pc.HeadCountKv, pc.FeedForwardLength));
        Assert.Equal(c.HeadDim, pc.HeadDim);
        Assert.Equal([6L * 8, 64], pruned.Get("blk.0.attn_q.weight").Shape);
        Assert.Equal([3L * 8, 64], pruned.Get("blk.0.attn_k.weight").Shape);
        Assert.Equal([64L, 6 * 8], pruned.Get("blk.0.attn_output.weight").Shape);
        Assert.Equal([70L, 64], pruned.Get("blk.1.ffn_up.weight").Shape);
        Assert.Equal([64L, 70], pruned.Get("blk.1.ffn_down.weight").Shape);
        Assert.Equal(model.Get("blk.2.attn_norm.weight").ToFloat32(), pruned.Get("blk.1.attn_norm.weight").ToFloat32());
        Assert.Equal(pruned.ParameterCount, StructuredPruner.ParameterCount(model, plan));
    }

    [Fact]
    public void Bad_plans_are_refused()
    {
        using var temp = new TempDir("eq-struct");
        var spec = new FixtureSpec { Layers = 2, Embd = 64, Heads = 4, KvHeads = 2, Ffn = 50, Vocab = 300, Seed = 83 };
        using var model = ModelLoader.Load(FixtureMaker.Write(spec, temp.Path, FixtureFormats.Gguf).GgufPath!);
        var c = model.Config;
        var d0 = LayerPlan.Dense(c, 0);
        var d1 = LayerPlan.Dense(c, 1);
        string Refused(params LayerPlan[] layers) => Assert.Throws<BadInputException>(() => StructuredPruner.Apply(model, new StructuredPlan(layers))).Message;
        Assert.Contains("prunes every head of layer 1", Refused(d0, d1 with { KvGroups = [] }));
        Assert.Contains("every FFN channel of layer 0", Refused(d0 with { Channels = [] }, d1));
        Assert.Contains("removes every layer", Refused(LayerPlan.Removed, LayerPlan.Removed));
        Assert.Contains("outside 0..1", Refused(d0 with { KvGroups = [0, 2] }, d1));
        Assert.Contains("outside 0..49", Refused(d0, d1 with { Channels = [-1, 3] }));
        Assert.Contains("listed twice", Refused(d0 with { Channels = [3, 3] }, d1));
        Assert.Contains("ascending", Refused(d0 with { KvGroups = [1, 0] }, d1));
        Assert.Contains("has 1 layers, the model 2", Refused(d0));
        Assert.Throws<BadInputException>(() => StructuredPruner.ParameterCount(model, new StructuredPlan([d0, d1 with { KvGroups = [] }])));
        // A removed layer's lists are not looked at.
        Assert.Equal(1, StructuredPruner.Apply(model, new StructuredPlan([d0, LayerPlan.Removed with { KvGroups = [9] }])).Config.BlockCount);
    }

    /// <summary>The original model with the plan's units silenced: the reference the pruned model must reproduce.</summary>
    internal static Model Silence(Model model, StructuredPlan plan)
    {
        var c = model.Config;
        var replaced = new Dictionary<string, float[]>(StringComparer.Ordinal);
        for (int l = 0; l < c.BlockCount; l++)
        {
            var p = plan.Layers[l];
            string o = $"blk.{l}.attn_output", down = $"blk.{l}.ffn_down";
            if (!p.Keep)
            {
                foreach (var name in new[] { o + ".weight", o + ".bias", down + ".weight", down + ".bias" })
                    if (model.Find(name) is { } t) replaced[name] = new float[t.ElementCount];
                continue;
            }
            int ratio = c.HeadsIn(l) / c.KvHeadsIn(l), hd = c.HeadDim;
            var wo = model.Get(o + ".weight").ToFloat32();
            int oCols = (int)model.Get(o + ".weight").Shape[1];
            for (int g = 0; g < c.KvHeadsIn(l); g++)
            {
                if (p.KvGroups.Contains(g)) continue;
                for (int col = g * ratio * hd; col < (g + 1) * ratio * hd; col++)
                    for (int r = 0; r < wo.Length / oCols; r++) wo[r * oCols + col] = 0;
            }
            replaced[o + ".weight"] = wo;
            var wd = model.Get(down + ".weight").ToFloat32();
            int ff = c.FeedForwardIn(l);
            for (int j = 0; j < ff; j++)
            {
                if (p.Channels.Contains(j)) continue;
                for (int r = 0; r < wd.Length / ff; r++) wd[r * ff + j] = 0;
            }
            replaced[down + ".weight"] = wd;
        }
        var tensors = model.Tensors.Select(t => replaced.TryGetValue(t.Name, out var w)
            ? new ModelTensor { Name = t.Name, Shape = t.Shape, Type = TensorType.F32, SourceName = t.SourceName, Storage = new ArrayTensorStorage(MemoryMarshal.AsBytes(w.AsSpan()).ToArray()) }
            : t).ToList();
        return new Model(c, tensors, model.Tokenizer, model.Provenance, model.Metadata);
    }

    internal static float[] Logits(Model model, int[] tokens) =>
        ReferenceEngine.Load(model, new EngineOptions { Threads = 1 }).CreateSession(tokens.Length).DecodeAll(tokens);

    internal static double RelativeL2(float[] actual, float[] expected)
    {
        Assert.Equal(expected.Length, actual.Length);
        double diff = 0, norm = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            diff += Math.Pow((double)actual[i] - expected[i], 2);
            norm += Math.Pow(expected[i], 2);
        }
        return Math.Sqrt(diff / norm);
    }
}
