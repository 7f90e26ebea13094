using System.Runtime.InteropServices;
using EdgeQuant.Compression.Pruning;
using EdgeQuant.Core.Errors;
using EdgeQuant.Core.Tensors;
using EdgeQuant.Fixtures;
using EdgeQuant.Models;
using EdgeQuant.Models.Engine;
using EdgeQuant.Testing;

namespace EdgeQuant.Compression.Tests.Pruning;

/// <summary>Structured sensitivity (unit KLD/PPL), its report, and the auto planner, on random-weight fixtures.</summary>
public class SensitivityTests
{
    internal static readonly FixtureSpec Llama = new() { Layers = 3, Embd = 64, Heads = 4, KvHeads = 2, Ffn = 96, Vocab = 300, ContextLength = 64, Seed = 91 };

    internal static Model Load(FixtureSpec spec, TempDir dir) => ModelLoader.Load(FixtureMaker.Write(spec, dir.Path, FixtureFormats.Gguf).GgufPath!);

    internal static List<int[]> Sequences(int vocab, int count, int length, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => Enumerable.Range(0, length).Select(i => i == 0 ? 1 : rng.Next(3, vocab)).ToArray()).ToList();
    }

    /// <summary>Independent KLD/PPL: a fresh engine on <paramref name="candidate"/>, log-softmax in double, KL(dense ‖ candidate) over every position.</summary>
    internal static (double Kld, double Ppl) Measure(Model dense, Model candidate, IReadOnlyList<int[]> sequences)
    {
        var a = ReferenceEngine.Load(dense, new EngineOptions { Threads = 2 });
        var b = ReferenceEngine.Load(candidate, new EngineOptions { Threads = 2 });
        int v = dense.Config.VocabSize;
        double kld = 0, nll = 0;
        long positions = 0, scored = 0;
        foreach (var seq in sequences)
        {
            var la = a.CreateSession(seq.Length).DecodeAll(seq);
            var lb = b.CreateSession(seq.Length).DecodeAll(seq);
            for (int t = 0; t < seq.Length; t++)
            {
                var pa = LogSoftmax(la.AsSpan(t * v, v));
                var pb = LogSoftmax(lb.AsSpan(t * v, v));
                for (int i = 0; i < v; i++) kld += Math.Exp(pa[i]) * (pa[i] - pb[i]);
                positions++;
                if (t + 1 < seq.Length)
                {
                    nll -= pb[seq[t + 1]];
                    scored++;
                }
            }
        }
        return (kld / positions, Math.Exp(nll / scored));
    }

    private static double[] LogSoftmax(ReadOnlySpan<float> row)
    {
        double max = double.NegativeInfinity;
        foreach (float x in row) max = Math.Max(max, x);
        double s = 0;
        foreach (float x in row) s += Math.Exp(x - max);
        double lse = max + Math.Log(s);
        var r = new double[row.Length];
        for (int i = 0; i < r.Length; i++) r[i] = row[i] - lse;
        return r;
    }

    /// <summary>A copy of <paramref name="model"/> with some tensors replaced (F32).</summary>
    private static Model With(Model model, Dictionary<string, float[]> replaced) => new(model.Config,
        model.Tensors.Select(t => !replaced.TryGetValue(t.Name, out var w) ? t : new ModelTensor
        {
            Name = t.Name,
            Shape = (long[])t.Shape.Clone(),
            Type = TensorType.F32,
            SourceName = t.SourceName,
            Storage = new ArrayTensorStorage(MemoryMarshal.AsBytes(w.AsSpan()).ToArray()),
        }).ToList(), model.Tokenizer, model.Provenance, model.Metadata);

    private static float[] ZeroColumns(Model model, string name, IEnumerable<int> columns)
    {
        var t = model.Get(name);
        var w = t.ToFloat32();
        long rows = t.Shape[0], cols = t.Shape[1];
        foreach (int j in columns)
            for (long r = 0; r < rows; r++) w[r * cols + j] = 0;
        return w;
    }

    /// <summary>The unit removed the independent way: its weights (attn_output/ffn_down columns, and for a layer the two output biases) zeroed in a copy.</summary>
    private static Model Zeroed(Model model, SensitivityReport report, SensitivityUnit u)
    {
        var c = model.Config;
        string p = $"blk.{u.Layer}.";
        var replaced = new Dictionary<string, float[]>();
        int hd = c.HeadDim, r = c.HeadsIn(u.Layer) / c.KvHeadsIn(u.Layer);
        switch (u.Kind)
        {
            case SensitivityUnitKind.Layer:
                replaced[p + "attn_output.weight"] = new float[model.Get(p + "attn_output.weight").ElementCount];
                replaced[p + "ffn_down.weight"] = new float[model.Get(p + "ffn_down.weight").ElementCount];
                foreach (var bias in new[] { p + "attn_output.bias", p + "ffn_down.bias" })
                    if (model.Find(bias) is { } b) replaced[bias] = new float[b.ElementCount];
                break;
            case SensitivityUnitKind.Heads:
                replaced[p + "attn_output.weight"] = ZeroColumns(model, p + "attn_output.weight", Enumerable.Range(u.Index * r * hd, r * hd));
                break;
            default:
                replaced[p + "ffn_down.weight"] = ZeroColumns(model, p + "ffn_down.weight", report.ChannelOrder[u.Layer][..u.Channels!.Value]);
                break;
        }
        return With(model, replaced);
    }

    internal static StructuredPlan PlanOf(Model model, SensitivityReport report, SensitivityUnit u)
    {
        var plan = StructuredPlan.Dense(model.Config);
        var layers = plan.Layers.ToArray();
        layers[u.Layer] = u.Kind switch
        {
            SensitivityUnitKind.Layer => LayerPlan.Removed,
            SensitivityUnitKind.Heads => layers[u.Layer].WithoutGroups([u.Index]),
            _ => layers[u.Layer].WithoutChannels(report.ChannelOrder[u.Layer][..u.Channels!.Value]),
        };
        return new StructuredPlan(layers);
    }

    public static TheoryData<string, FixtureSpec> Shapes => new()
    {
        { "llama gqa", Llama },
        { "qwen2 biases", new FixtureSpec { Arch = FixtureArch.Qwen2, Layers = 2, Embd = 32, Heads = 4, KvHeads = 2, Ffn = 48, Vocab = 300, ContextLength = 64, Seed = 92 } },
        { "gpt2 output biases", new FixtureSpec { Arch = FixtureArch.Gpt2, Layers = 2, Embd = 32, Heads = 4, KvHeads = 4, Ffn = 64, Vocab = 320, ContextLength = 64, Seed = 93 } },
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Each_unit_equals_the_kld_of_the_model_with_its_weights_zeroed(string name, FixtureSpec spec)
    {
        using var dir = new TempDir("eq-sens");
        using var model = Load(spec, dir);
        var seqs = Sequences(spec.Vocab, 3, 20, 7);
        var report = StructuredSensitivity.Measure(model, seqs, new SensitivityOptions { Threads = 2 });

        var c = model.Config;
        int groups = c.KvHeadCountPerLayerWithGroups();
        int expected = c.BlockCount * (1 + groups + 3);
        Assert.Equal(expected, report.Units.Count);
        Assert.Equal(Enumerable.Range(1, report.Units.Count), report.Units.Select(u => u.Rank));
        Assert.True(report.Units.Zip(report.Units.Skip(1)).All(p => p.First.KldPerMParams <= p.Second.KldPerMParams), $"{name}: not ranked");
        foreach (var u in report.Units)
        {
            var (kld, ppl) = Measure(model, Zeroed(model, report, u), seqs);
            Assert.True(kld > 1e-6, $"{name}: {u.Describe()} changes nothing ({kld})");
            Assert.True(Math.Abs(u.Kld - kld) <= 1e-5 * kld + 1e-9, $"{name}: {u.Describe()} KLD {u.Kld} vs independently zeroed {kld}");
            Assert.True(Math.Abs(u.Ppl - ppl) <= 1e-5 * ppl, $"{name}: {u.Describe()} PPL {u.Ppl} vs {ppl}");
        }
    }

    [Fact]
    public void A_planted_dead_head_group_and_dead_channels_rank_first_with_zero_kld()
    {
        using var dir = new TempDir("eq-sens");
        using var source = Load(Llama, dir);
        var c = source.Config;
        int hd = c.HeadDim, r = c.HeadCount / c.HeadCountKv;
        // KV group 1 of layer 1 contributes nothing (its query heads' attn_output columns are zero); in layer 2 the
        // channels 10..33 (24 = a quarter of 96) write nothing (their ffn_down columns are zero).
        var dead = Enumerable.Range(10, 24).ToArray();
        using var model = With(source, new Dictionary<string, float[]>
        {
            ["blk.1.attn_output.weight"] = ZeroColumns(source, "blk.1.attn_output.weight", Enumerable.Range(1 * r * hd, r * hd)),
            ["blk.2.ffn_down.weight"] = ZeroColumns(source, "blk.2.ffn_down.weight", dead),
        });
        var report = StructuredSensitivity.Measure(model, Sequences(Llama.Vocab, 4, 16, 9), new SensitivityOptions { Threads = 2 });

        Assert.Equal(dead, report.ChannelOrder[2][..24].Order());
        var zero = report.Units.Take(2).ToList();
        Assert.Contains(zero, u => u.Kind == SensitivityUnitKind.Heads && u.Layer == 1 && u.Index == 1);
        Assert.Contains(zero, u => u.Kind == SensitivityUnitKind.Channels && u.Layer == 2 && u.Channels == 24);
        Assert.All(zero, u => Assert.Equal(0, u.Kld, 12));
        Assert.All(report.Units.Skip(2), u => Assert.True(u.Kld > 1e-6, $"{u.Describe()}: {u.Kld}"));
        Assert.All(zero, u => Assert.Equal(report.DensePpl, u.Ppl, 9));
    }

    [Fact]
    public void Report_json_round_trips_and_is_refused_for_another_model()
    {
        using var dir = new TempDir("eq-sens");
        using var model = Load(Llama, dir);
        var report = StructuredSensitivity.Measure(model, Sequences(Llama.Vocab, 2, 12, 3),
            new SensitivityOptions { Threads = 2, CalibrationSha256 = "ab12", Heads = false });
        var path = dir.File("sens.json");
        report.Write(path);
        var back = SensitivityReport.Read(path);
        Assert.Equal(report.ToJson(), back.ToJson());
        Assert.Equal(report.Units.Select(u => (u.Kind, u.Layer, u.Index, u.Params, u.Kld, u.Ppl)), back.Units.Select(u => (u.Kind, u.Layer, u.Index, u.Params, u.Kld, u.Ppl)));
        Assert.Equal("ab12", back.Calibration.Sha256);
        Assert.DoesNotContain(back.Units, u => u.Kind == SensitivityUnitKind.Heads);
        back.CheckModel(model, path);

        // Same shapes, other weights: refused by the weights hash.
        using var dir2 = new TempDir("eq-sens");
        using var other = Load(Llama with { Seed = 5 }, dir2);
        var e = Assert.Throws<BadInputException>(() => back.CheckModel(other, path));
        Assert.Contains("different weights", e.Message);
        // Other shapes: the first differing tensor is named.
        using var dir3 = new TempDir("eq-sens");
        using var wider = Load(Llama with { Ffn = 128 }, dir3);
        e = Assert.Throws<BadInputException>(() => back.CheckModel(wider, path));
        Assert.Matches(@"tensor \d+ is 'blk\.0\.ffn_\w+\.weight \[\d+, \d+\]' there, 'blk\.0\.ffn_\w+\.weight \[\d+, \d+\]' in ", e.Message);

        // Broken files: exit-2 format errors naming the field.
        File.WriteAllText(path, report.ToJson().Replace("\"schema_version\": 1", "\"schema_version\": 9"));
        Assert.Contains("schema_version", Assert.Throws<FileFormatException>(() => SensitivityReport.Read(path)).Message);
        File.WriteAllText(path, "{ \"units\": [");
        Assert.Throws<FileFormatException>(() => SensitivityReport.Read(path));
        var order = report.ChannelOrder.Select(o => (int[])o.Clone()).ToArray();
        order[1][0] = order[1][1];
        File.WriteAllText(path, (report with { ChannelOrder = order }).ToJson());
        Assert.Contains("channel_order[1]", Assert.Throws<FileFormatException>(() => SensitivityReport.Read(path)).Message);
        File.WriteAllText(path, (report with { Units = [.. report.Units, report.Units[0] with { Rank = report.Units.Count + 1 }] }).ToJson());
        Assert.Contains("listed twice", Assert.Throws<FileFormatException>(() => SensitivityReport.Read(path)).Message);
    }

    [Theory]
    [InlineData(false, 0.10)]
    [InlineData(false, 0.25)]
    [InlineData(false, 0.40)]
    [InlineData(true, 0.25)]
    [InlineData(false, 0.70)]
    public void Auto_plan_meets_the_target_and_keeps_a_group_and_a_channel_per_layer(bool uniform, double removed)
    {
        using var dir = new TempDir("eq-sens");
        using var model = Load(Llama, dir);
        var report = StructuredSensitivity.Measure(model, Sequences(Llama.Vocab, 2, 16, 4), new SensitivityOptions { Threads = 2 });
        long target = (long)(model.ParameterCount * (1 - removed));
        var result = AutoPlanner.PlanWithDetails(model, report, target, new AutoPlanOptions { Uniform = uniform });
        long count = StructuredPruner.ParameterCount(model, result.Plan);
        Assert.Equal(result.Parameters, count);
        Assert.True(count <= target, $"{count} > target {target}");
        var c = model.Config;
        // Close to the target: at most one KV group or a layer's worth above what the last step needed.
        Assert.True(target - count < StructuredParameters.Layer(model, 0), $"{count} overshoots {target} by more than a layer");
        foreach (var (p, l) in result.Plan.Layers.Select((p, l) => (p, l)).Where(x => x.p.Keep))
        {
            Assert.NotEmpty(p.KvGroups);
            Assert.NotEmpty(p.Channels);
            Assert.True(p.Channels.Length >= c.FeedForwardIn(l) - 72, "channels beyond the largest measured level (75 %)");
        }
        Assert.True(result.Plan.KeptLayers >= 1);
        if (uniform)
        {
            var kept = result.Plan.Layers.Where(p => p.Keep).ToList();
            Assert.Single(kept.Select(p => p.KvGroups.Length).Distinct());
            Assert.Single(kept.Select(p => p.Channels.Length).Distinct());
            Assert.False(StructuredPruner.PrunedConfig(c, result.Plan).HasPerLayerWidths);
        }
        // The estimate is the sum of the removed units' measured KLDs: zero only if nothing was removed.
        Assert.True(result.EstimatedKld > 0);
    }

    [Fact]
    public void Auto_plan_refuses_unreachable_targets_naming_the_minimum()
    {
        using var dir = new TempDir("eq-sens");
        using var model = Load(Llama, dir);
        var report = StructuredSensitivity.Measure(model, Sequences(Llama.Vocab, 2, 12, 5), new SensitivityOptions { Threads = 2 });
        long n = model.ParameterCount;
        Assert.Contains("nothing to remove", Assert.Throws<BadInputException>(() => AutoPlanner.Plan(model, report, n)).Message);

        // The least this report can reach: one layer left, with one KV group and a quarter of its channels.
        var c = model.Config;
        long layer = StructuredParameters.Layer(model, 0);
        long minimum = n - c.BlockCount * layer + layer - (c.HeadCountKv - 1) * StructuredParameters.KvGroup(model, 0) - 72 * StructuredParameters.Channels(model, 0);
        var e = Assert.Throws<BadInputException>(() => AutoPlanner.Plan(model, report, minimum - 1));
        Assert.Contains($"minimum this report can reach, {minimum:N0}", e.Message);
        var plan = AutoPlanner.Plan(model, report, minimum);
        Assert.Equal(minimum, StructuredPruner.ParameterCount(model, plan));
        Assert.Equal(1, plan.KeptLayers);

        // Without layer removal the floor is every layer at its minimum.
        e = Assert.Throws<BadInputException>(() => AutoPlanner.Plan(model, report, minimum, new AutoPlanOptions { Layers = false }));
        Assert.Contains("no layer removed", e.Message);
    }

    [Theory]
    [InlineData("25%", 0.75)]
    [InlineData("40%", 0.60)]
    public void Target_parses_percent_removed_and_counts(string text, double kept)
    {
        Assert.Equal((long)Math.Round(1_000_000 * kept), AutoPlanner.ParseTarget(text, 1_000_000));
        Assert.Equal(12_500_000, AutoPlanner.ParseTarget("12.5M", 1));
        Assert.Equal(900, AutoPlanner.ParseTarget("900", 1));
        Assert.Throws<BadInputException>(() => AutoPlanner.ParseTarget("100%", 10));
        Assert.Throws<BadInputException>(() => AutoPlanner.ParseTarget("-5", 10));
        Assert.Throws<BadInputException>(() => AutoPlanner.ParseTarget("many", 10));
    }

    [Fact]
    public void Bad_sequences_are_refused()
    {
        using var dir = new TempDir("eq-sens");
        using var model = Load(Llama, dir);
        Assert.Throws<BadInputException>(() => StructuredSensitivity.Measure(model, []));
        Assert.Throws<BadInputException>(() => StructuredSensitivity.Measure(model, [[1, 2, 3], [1, 2]]));
        Assert.Contains("outside the vocabulary", Assert.Throws<BadInputException>(() => StructuredSensitivity.Measure(model, [[1, 2, 300]])).Message);
        Assert.Contains("context length", Assert.Throws<BadInputException>(() => StructuredSensitivity.Measure(model, [new int[65]])).Message);
        Assert.Throws<BadInputException>(() => StructuredSensitivity.Measure(model, [[1, 2, 3]], new SensitivityOptions { ChannelFractions = [1.0] }));
        Assert.Contains("MiB", Assert.Throws<BadInputException>(() => StructuredSensitivity.Measure(model, [[1, 2, 3]], new SensitivityOptions { MaxReferenceBytes = 100 })).Message);
    }
}

internal static class ConfigTestExtensions
{
    /// <summary>KV groups per layer that sensitivity measures (none when a layer has a single group).</summary>
    public static int KvHeadCountPerLayerWithGroups(this ModelConfig c) => c.HeadCountKv > 1 ? c.HeadCountKv : 0;
}
