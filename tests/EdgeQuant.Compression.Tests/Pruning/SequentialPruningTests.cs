using EdgeQuant.Compression.Pruning;
using EdgeQuant.Core.Errors;
using EdgeQuant.Fixtures;
using EdgeQuant.Models;
using EdgeQuant.Testing;

namespace EdgeQuant.Compression.Tests.Pruning;

/// <summary>
/// <see cref="PruneOptions.Sequential"/>: block b calibrated on the model whose blocks &lt; b are pruned. Checked against
/// the same thing composed from one-shot runs: prune block 0 alone, then block 1 alone on that result.
/// </summary>
public class SequentialPruningTests
{
    private static readonly FixtureSpec Spec = new() { Layers = 2, Embd = 64, Heads = 4, KvHeads = 2, Ffn = 96, Vocab = 300, ContextLength = 64, Seed = 71 };

    [Theory]
    [InlineData(PruneMethod.Wanda, 0.5, false)]
    [InlineData(PruneMethod.SparseGpt, 0.5, false)]
    [InlineData(PruneMethod.SparseGpt, 0.5, true)]
    public void Sequential_equals_block_by_block_one_shot_runs(PruneMethod method, double sparsity, bool pattern)
    {
        using var dir = new TempDir("eq-seq");
        using var model = ModelLoader.Load(FixtureMaker.Write(Spec, dir.Path, FixtureFormats.Gguf).GgufPath!);
        var rng = new Random(3);
        var tokens = Enumerable.Range(0, 4 * 32).Select(_ => rng.Next(3, Spec.Vocab)).ToList();
        var o = new PruneOptions
        {
            Method = method, Sparsity = sparsity, Pattern = pattern ? new NmPattern(2, 4) : null,
            Calibration = new CalibrationOptions { SequenceLength = 32, Samples = 4, Threads = 2 },
        };

        var sequential = ModelPruner.Prune(model, tokens, o with { Sequential = true });
        var first = ModelPruner.Prune(model, tokens, o with { Exclude = @"^blk\.1\." });
        var second = ModelPruner.Prune(first.Model, tokens, o with { Exclude = @"^blk\.0\." });
        var oneShot = ModelPruner.Prune(model, tokens, o);

        Assert.Equal(14, sequential.Tensors.Count);
        Assert.Equal(oneShot.Tensors.Select(t => (t.Name, t.Pruned)), sequential.Tensors.Select(t => (t.Name, t.Pruned)));
        bool differs = false;
        foreach (var t in sequential.Tensors)
        {
            var w = sequential.Model.Get(t.Name).ToFloat32();
            Assert.Equal(second.Model.Get(t.Name).ToFloat32(), w);
            // Block 0 sees the dense model either way; block 1 sees pruned block 0's outputs.
            if (t.Name.StartsWith("blk.0.", StringComparison.Ordinal)) Assert.Equal(oneShot.Model.Get(t.Name).ToFloat32(), w);
            else differs |= !oneShot.Model.Get(t.Name).ToFloat32().SequenceEqual(w);
        }
        Assert.True(differs, "sequential calibration changed nothing in block 1");
    }

    [Fact]
    public void Sequential_magnitude_is_refused()
    {
        var e = Assert.Throws<BadInputException>(() => ModelPruner.Validate(new PruneOptions { Method = PruneMethod.Magnitude, Sequential = true }));
        Assert.Contains("--sequential", e.Message);
    }
}
