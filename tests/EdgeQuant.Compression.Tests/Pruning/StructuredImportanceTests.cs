using EdgeQuant.Compression.Pruning;
using EdgeQuant.Compression.Tests.GgufQuant;
using EdgeQuant.Core.Errors;
using EdgeQuant.Export;
using EdgeQuant.Fixtures;
using EdgeQuant.Models;
using EdgeQuant.Models.Engine;
using EdgeQuant.Models.Tokenizers;
using EdgeQuant.Runtimes.Evaluation;
using EdgeQuant.Runtimes.LlamaCpp;
using EdgeQuant.Testing;
using Xunit.Abstractions;

namespace EdgeQuant.Compression.Tests.Pruning;

/// <summary>Importance scores, planners and the llama.cpp peer for structurally pruned models.</summary>
public class StructuredImportanceTests(ITestOutputHelper output)
{
    private const string Stories = "models/stories260K/stories260K.gguf";
    private const string Text = "corpus/tinystories-sample.txt";
    private const int SeqLen = 256;

    private static int[] Tokens(Model model) =>
        Tokenizer.FromModel(model).Encode(Perplexity.PrepareText(File.ReadAllText(SharedData.Require(Text))));

    /// <summary>Keeps every layer input, to recompute the scores naively.</summary>
    private sealed class Capture : ILinearInputHook
    {
        public Dictionary<string, List<float[]>> Inputs { get; } = new(StringComparer.Ordinal);

        public void OnInput(string layer, Span<float> input, int rows, int cols)
        {
            if (!Inputs.TryGetValue(layer, out var list)) Inputs[layer] = list = [];
            list.Add(input[..(rows * cols)].ToArray());
        }
    }

    [Fact]
    public void Scores_equal_naive_sums_and_a_silent_block_has_no_influence()
    {
        using var temp = new TempDir("eq-struct-imp");
        var spec = new FixtureSpec { Layers = 3, Embd = 64, Heads = 8, KvHeads = 4, Ffn = 96, Vocab = 300, Seed = 91 };
        using var source = ModelLoader.Load(FixtureMaker.Write(spec, temp.Path, FixtureFormats.Gguf).GgufPath!);
        // Block 1 silenced: its output equals its input, so its influence must be 0 (up to rounding) and the others' not.
        var silentPlan = StructuredPlan.Dense(source.Config);
        var layers = silentPlan.Layers.ToArray();
        layers[1] = LayerPlan.Removed;
        using var model = StructuredPruningTests.Silence(source, new StructuredPlan(layers));
        var c = model.Config;
        var rng = new Random(5);
        var tokens = Enumerable.Range(0, 3 * 32).Select(_ => rng.Next(3, c.VocabSize)).ToArray();
        var o = new CalibrationOptions { SequenceLength = 32, Samples = 3, Threads = 1, Bos = 1 };
        var imp = StructuredImportance.Collect(model, tokens, o);
        Assert.Equal(96, imp.Tokens);
        output.WriteLine("block influence: " + string.Join(", ", imp.Layers.Select(v => v.ToString("E3"))));
        Assert.InRange(imp.Layers[1], 0, 1e-6);
        Assert.True(imp.Layers[0] > 1e-3 && imp.Layers[2] > 1e-3);

        // Naive: the same sequences, inputs captured, Σ|W|·‖X‖ per column summed over the unit.
        var engine = ReferenceEngine.Load(model, new EngineOptions { Threads = 1 });
        var capture = new Capture();
        using (engine.AddHook(capture))
        {
            var session = engine.CreateSession(32);
            for (int s = 0; s < 3; s++)
            {
                var seq = tokens.AsSpan(s * 32, 32).ToArray();
                seq[0] = 1;
                session.Reset();
                session.Decode(seq, [], []);
            }
        }
        double Score(string layer, int col)
        {
            var w = model.Get(layer + ".weight").ToFloat32();
            int cols = (int)model.Get(layer + ".weight").Shape[1];
            double sq = capture.Inputs[layer].Sum(b => Enumerable.Range(0, b.Length / cols).Sum(r => (double)b[r * cols + col] * b[r * cols + col]));
            double abs = Enumerable.Range(0, w.Length / cols).Sum(r => (double)Math.Abs(w[r * cols + col]));
            return abs * Math.Sqrt(sq);
        }
        for (int l = 0; l < 3; l++)
        {
            for (int g = 0; g < 4; g++)
            {
                double expected = Enumerable.Range(g * 2 * 8, 16).Sum(col => Score($"blk.{l}.attn_output", col));
                Assert.Equal(expected, imp.Groups[l][g], expected * 1e-9 + 1e-12);
            }
            foreach (int j in new[] { 0, 17, 95 })
            {
                double expected = Score($"blk.{l}.ffn_down", j);
                Assert.Equal(expected, imp.Channels[l][j], expected * 1e-9 + 1e-12);
            }
        }

        // Block 0's recovered input is the token embedding itself (up to scale): check the recovery the scores rely on,
        // by recomputing block 0's influence from the embeddings and block 1's recovered input.
        var emb = model.Get("token_embd.weight").ToFloat32();
        var n1 = model.Get("blk.1.attn_norm.weight").ToFloat32();
        double sum = 0;
        int count = 0;
        foreach (var (batch, s) in capture.Inputs["blk.1.attn_q"].Select((b, s) => (b, s)))
            for (int r = 0; r < 32; r++)
            {
                int tok = r == 0 ? 1 : tokens[s * 32 + r];
                double dot = 0, na = 0, nb = 0;
                for (int j = 0; j < 64; j++)
                {
                    double a = emb[tok * 64 + j], b = batch[r * 64 + j] / n1[j];
                    dot += a * b;
                    na += a * a;
                    nb += b * b;
                }
                sum += 1 - dot / Math.Sqrt(na * nb);
                count++;
            }
        Assert.Equal(sum / count, imp.Layers[0], 1e-6);
    }

    [SharedDataFact(Stories, Text)]
    public void Uniform_plans_remove_the_lowest_units_and_parameter_targets_are_met()
    {
        using var model = ModelLoader.Load(SharedData.Require(Stories));
        var c = model.Config;
        var tokens = Tokens(model);
        var imp = StructuredImportance.Collect(model, tokens[..(SeqLen * 16)], new CalibrationOptions { SequenceLength = SeqLen, Samples = 16, Threads = 2 });
        output.WriteLine("block influence: " + string.Join(", ", imp.Layers.Select(v => v.ToString("F4"))));

        var heads = StructuredPlanner.Uniform(c, imp, StructuredMethod.Heads, 0.25);
        for (int l = 0; l < c.BlockCount; l++)
        {
            Assert.Equal(3, heads.Layers[l].KvGroups.Length);
            int removed = Enumerable.Range(0, 4).Except(heads.Layers[l].KvGroups).Single();
            Assert.Equal(imp.Groups[l].Min(), imp.Groups[l][removed]);
        }
        var channels = StructuredPlanner.Uniform(c, imp, StructuredMethod.Channels, 0.5);
        for (int l = 0; l < c.BlockCount; l++)
        {
            Assert.Equal(86, channels.Layers[l].Channels.Length);
            double maxRemoved = Enumerable.Range(0, 172).Except(channels.Layers[l].Channels).Max(j => imp.Channels[l][j]);
            Assert.True(channels.Layers[l].Channels.All(j => imp.Channels[l][j] >= maxRemoved));
        }
        // A channel multiple keeps the nearest multiple of it (172 · 0.75 = 129 → 128; 172 · 0.5 = 86 → 96 with 32),
        // still the most important channels; a multiple not below the width is refused.
        StructuredMethod[] channelsOnly = [StructuredMethod.Channels];
        Assert.All(StructuredPlanner.Uniform(c, imp, channelsOnly, 0.25, channelMultiple: 64).Layers, p => Assert.Equal(128, p.Channels.Length));
        Assert.All(StructuredPlanner.Uniform(c, imp, channelsOnly, 0.5, channelMultiple: 32).Layers, p => Assert.Equal(96, p.Channels.Length));
        Assert.All(StructuredPlanner.Uniform(c, imp, channelsOnly, 0.9, channelMultiple: 64).Layers, p => Assert.Equal(64, p.Channels.Length));
        Assert.All(StructuredPlanner.Uniform(c, imp, channelsOnly, 0.5, channelMultiple: 1).Layers, p => Assert.Equal(86, p.Channels.Length));
        var aligned64 = StructuredPlanner.Uniform(c, imp, channelsOnly, 0.25, channelMultiple: 64);
        for (int l = 0; l < c.BlockCount; l++)
        {
            double maxRemoved = Enumerable.Range(0, 172).Except(aligned64.Layers[l].Channels).Max(j => imp.Channels[l][j]);
            Assert.True(aligned64.Layers[l].Channels.All(j => imp.Channels[l][j] >= maxRemoved));
        }
        Assert.Contains("--channel-multiple 172 is not below layer 0's FFN width 172",
            Assert.Throws<BadInputException>(() => StructuredPlanner.Uniform(c, imp, channelsOnly, 0.5, channelMultiple: 172)).Message);

        var layers = StructuredPlanner.Uniform(c, imp, StructuredMethod.Layers, 0.4);
        Assert.Equal(3, layers.KeptLayers);
        var gone = Enumerable.Range(0, c.BlockCount).Where(l => !layers.Layers[l].Keep).ToArray();
        Assert.Equal(StructuredPlanner.Lowest(imp.Layers, 2).Order(), gone);

        Assert.Contains("every head of layer 0", Assert.Throws<BadInputException>(() => StructuredPlanner.Uniform(c, imp, StructuredMethod.Heads, 0.9)).Message);
        Assert.Contains("all 5 layers", Assert.Throws<BadInputException>(() => StructuredPlanner.Uniform(c, imp, StructuredMethod.Layers, 0.95)).Message);
        Assert.Throws<BadInputException>(() => StructuredPlanner.Uniform(c, imp, StructuredMethod.Channels, 1));

        foreach (double target in new[] { 0.10, 0.25, 0.40 })
        {
            var t = StructuredPlanner.ForParameterTarget(model, imp, target, [StructuredMethod.Heads, StructuredMethod.Channels]);
            output.WriteLine($"target {target:P0}: {t.Description}, removed {t.Removed:P2}");
            Assert.Equal(t.ParametersAfter, StructuredPruner.ParameterCount(model, t.Plan));
            Assert.InRange(t.Removed, target - 0.01, target + 0.01);
            var ch = StructuredPlanner.ForParameterTarget(model, imp, target, [StructuredMethod.Channels]);
            Assert.InRange(ch.Removed, target - 0.01, target + 0.01);
            // Aligned: 160, 128, 96, 64 or 32 channels kept (one channel is 960 parameters, 0.33 %), the closest to the target.
            var aligned = StructuredPlanner.ForParameterTarget(model, imp, target, [StructuredMethod.Channels], channelMultiple: 32);
            Assert.All(aligned.Plan.Layers, l => Assert.Equal(0, l.Channels.Length % 32));
            double Removed(int kept) => 1 - (double)StructuredPruner.ParameterCount(model,
                StructuredPlanner.Combine(c, imp, new int[5], Enumerable.Repeat(172 - kept, 5).ToArray(), 0)) / model.ParameterCount;
            int best = new[] { 160, 128, 96, 64, 32 }.MinBy(k => Math.Abs(Removed(k) - target));
            Assert.Equal(best, aligned.Plan.Layers[0].Channels.Length);
        }
        Assert.Throws<BadInputException>(() => StructuredPlanner.ForParameterTarget(model, imp, 0.25, [StructuredMethod.Channels], channelMultiple: 172));
    }

    /// <summary>Uniformly pruned stories260K (heads + channels, and layers) as GGUF in the real llama.cpp: the engine's logits.</summary>
    [LlamaCppFact(Stories, Text)]
    public void Pruned_stories260K_gguf_runs_in_llama_cpp_with_the_engines_logits()
    {
        using var model = ModelLoader.Load(SharedData.Require(Stories));
        var tokens = Tokens(model);
        var imp = StructuredImportance.Collect(model, tokens[..(SeqLen * 4)], new CalibrationOptions { SequenceLength = SeqLen, Samples = 4, Threads = 2 });
        var c = model.Config;
        var plans = new (string Name, StructuredPlan Plan)[]
        {
            ("heads 25% + channels 25%", StructuredPlanner.Combine(c, imp, [1, 1, 1, 1, 1], [43, 43, 43, 43, 43], 0)),
            ("2 of 5 layers", StructuredPlanner.Uniform(c, imp, StructuredMethod.Layers, 0.4)),
        };
        using var temp = new TempDir("eq-struct-llama");
        foreach (var (name, plan) in plans)
        {
            var pruned = StructuredPruner.Apply(model, plan);
            string path = temp.File(name.Replace(' ', '_').Replace('%', 'p').Replace('+', '_') + ".gguf");
            GgufExporter.Export(pruned, path);
            using var back = ModelLoader.Load(path);
            Assert.Equal(pruned.Config.HeadCount, back.Config.HeadCount);
            Assert.Equal(pruned.Config.FeedForwardLength, back.Config.FeedForwardLength);
            Assert.Equal(pruned.Config.BlockCount, back.Config.BlockCount);
            var session = ReferenceEngine.Load(back, new EngineOptions { Threads = 2 }).CreateSession(SeqLen);
            using var llama = LlamaCppRunner.Open(path, LlamaContextOptions.FullPrecision(SeqLen, threads: 1));
            var positions = Enumerable.Range(0, SeqLen).ToArray();
            var chunk = tokens.AsSpan(30 * SeqLen, SeqLen).ToArray();
            chunk[0] = 1;
            var ours = session.DecodeAll(chunk);
            var theirs = new float[ours.Length];
            llama.Evaluate(chunk, 0, positions, theirs);
            double rel = StructuredPruningTests.RelativeL2(theirs, ours);
            output.WriteLine($"{name}: {model.ParameterCount:N0} -> {pruned.ParameterCount:N0} parameters, engine vs llama.cpp rel L2 {rel:E2}");
            Assert.InRange(rel, 0, 1e-4);
        }
    }
}
