using EdgeQuant.Compression.Pruning;
using EdgeQuant.Fixtures;
using EdgeQuant.Testing;

namespace EdgeQuant.Compression.Tests.Pruning;

/// <summary>Sensitivity against the real thing: each unit's KLD/PPL equals that of the model StructuredPruner builds without it.</summary>
public class SensitivityPrunedModelTests
{
    /// <summary>Per-layer widths exist for the Llama family only, so Qwen2 and GPT-2 prune their single layer (which stays uniform).</summary>
    public static TheoryData<string, FixtureSpec> PrunableShapes => new()
    {
        { "llama gqa", SensitivityTests.Llama },
        { "qwen2 biases", new FixtureSpec { Arch = FixtureArch.Qwen2, Layers = 1, Embd = 32, Heads = 4, KvHeads = 2, Ffn = 48, Vocab = 300, ContextLength = 64, Seed = 94 } },
        { "gpt2 output biases", new FixtureSpec { Arch = FixtureArch.Gpt2, Layers = 1, Embd = 32, Heads = 4, KvHeads = 4, Ffn = 64, Vocab = 320, ContextLength = 64, Seed = 95 } },
    };

    [Theory]
    [MemberData(nameof(PrunableShapes))]
    public void Each_unit_equals_the_kld_of_the_structurally_pruned_model(string name, FixtureSpec spec)
    {
        using var dir = new TempDir("eq-sens");
        using var model = SensitivityTests.Load(spec, dir);
        var seqs = SensitivityTests.Sequences(spec.Vocab, 3, 20, 8);
        var report = StructuredSensitivity.Measure(model, seqs, new SensitivityOptions { Threads = 2 });
        Assert.NotEmpty(report.Units);
        foreach (var u in report.Units.Where(u => model.Config.BlockCount > 1 || u.Kind != SensitivityUnitKind.Layer))
        {
            var plan = SensitivityTests.PlanOf(model, report, u);
            var pruned = StructuredPruner.Apply(model, plan);
            Assert.Equal(model.ParameterCount - u.Params, pruned.ParameterCount);
            Assert.Equal(pruned.ParameterCount, StructuredPruner.ParameterCount(model, plan));
            var (kld, ppl) = SensitivityTests.Measure(model, pruned, seqs);
            Assert.True(Math.Abs(u.Kld - kld) <= 1e-4 * kld + 1e-8, $"{name}: {u.Describe()} KLD {u.Kld} vs pruned model {kld}");
            Assert.True(Math.Abs(u.Ppl - ppl) <= 1e-4 * ppl, $"{name}: {u.Describe()} PPL {u.Ppl} vs pruned model {ppl}");
        }
    }

}
