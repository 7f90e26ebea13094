using System.Text.Json;
using EdgeQuant.Cli.Tests.Infrastructure;
using EdgeQuant.Compression.Pruning;
using EdgeQuant.Models;
using EdgeQuant.Models.Tokenizers;
using EdgeQuant.Runtimes.Evaluation;
using EdgeQuant.Testing;

namespace EdgeQuant.Cli.Tests.Prune;

/// <summary><c>edgequant prune</c>: the library pruner's weights in the written file, the report, and exit-2 refusals that leave nothing.</summary>
public sealed class PruneCommandTests : IDisposable
{
    private const string Stories = "models/stories260K/stories260K.gguf";
    private const string Text = "corpus/tinystories-sample.txt";
    private readonly TempDir _dir = new("eqprune");

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void Help_is_approved() => Approvals.Verify("help.prune", CliRunner.Run("prune", "--help").StdOut);

    [SharedDataFact(Stories, Text)]
    public void Writes_the_library_pruners_weights_and_reports_every_tensor()
    {
        string stories = SharedData.Require(Stories), text = SharedData.Require(Text), output = _dir.File("w.gguf");
        var r = CliRunner.Run("prune", stories, "-o", output, "--method", "sparsegpt", "--sparsity", "0.4", "--calib", text,
            "--calib-samples", "8", "--calib-seq-len", "128", "--exclude", @"blk\.0\.", "--threads", "2", "--json");
        Assert.True(r.ExitCode == 0, r.ToString());

        using var model = ModelLoader.Load(stories);
        var tokens = Tokenizer.FromModel(model).Encode(Perplexity.PrepareText(File.ReadAllText(text)), addSpecial: true, parseSpecial: false);
        var lib = ModelPruner.Prune(model, tokens, new PruneOptions
        {
            Method = PruneMethod.SparseGpt, Sparsity = 0.4, Exclude = @"blk\.0\.",
            Calibration = new CalibrationOptions { SequenceLength = 128, Samples = 8, Threads = 2 },
            SparseGpt = new SparseGptOptions { Threads = 2 },
        });
        using var written = ModelLoader.Load(output);
        foreach (var t in model.Tensors) Assert.Equal(lib.Model.Get(t.Name).ToFloat32(), written.Get(t.Name).ToFloat32());

        using var doc = JsonDocument.Parse(r.StdOut);
        var root = doc.RootElement;
        Assert.Equal("sparsegpt", root.GetProperty("method").GetString());
        Assert.Equal(8, root.GetProperty("calibration_samples").GetInt32());
        Assert.Equal(1024, root.GetProperty("calibration_tokens").GetInt32());
        Assert.Equal(new FileInfo(output).Length, root.GetProperty("bytes").GetInt64());
        var tensors = root.GetProperty("tensors").EnumerateArray().ToList();
        Assert.Equal(28, tensors.Count);
        Assert.DoesNotContain(tensors, t => t.GetProperty("name").GetString()!.StartsWith("blk.0.", StringComparison.Ordinal));
        long sum = 0;
        foreach (var t in tensors)
        {
            var w = written.Get(t.GetProperty("name").GetString()!).ToFloat32();
            long expected = (long)Math.Round(0.4 * w.Length, MidpointRounding.AwayFromZero);
            Assert.Equal(expected, t.GetProperty("pruned").GetInt64());
            Assert.Equal(expected, w.LongCount(v => v == 0));
            sum += expected;
        }
        Assert.Equal(sum, root.GetProperty("pruned_weights").GetInt64());
    }

    [SharedDataFact(Stories)]
    public void Magnitude_2_4_to_an_hf_folder()
    {
        string stories = SharedData.Require(Stories), output = _dir.File("hf");
        var r = CliRunner.Run("prune", stories, "-o", output, "--pattern", "2:4", "--format", "hf");
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("pruned 113,280 of 226,560 weights in 35 tensors", r.StdOut);
        using var back = ModelLoader.Load(output);
        foreach (var t in back.Tensors.Where(t => ModelPruner.DefaultTargets.IsMatch(t.Name)))
            Assert.True(WeightPruning.SatisfiesPattern(t.ToFloat32(), (int)t.Shape[0], (int)t.Shape[1], new NmPattern(2, 4)), t.Name);
        using var source = ModelLoader.Load(stories);
        Assert.Equal(source.Get("token_embd.weight").ToFloat32(), back.Get("token_embd.weight").ToFloat32());
    }

    [SharedDataTheory(Stories, Text)]
    [InlineData("--sparsity", "1")]
    [InlineData("--sparsity", "-0.25")]
    [InlineData("--sparsity", "NaN")]
    [InlineData("--pattern", "4:8")]
    [InlineData("--pattern", "4:2")]
    [InlineData("--method", "sparsegpt")]
    [InlineData("--method", "wanda")]
    [InlineData("--method", "obs")]
    [InlineData("--exclude", "(")]
    [InlineData("--exclude", ".*")]
    [InlineData("--format", "safetensors")]
    [InlineData("--calib-seq-len", "100000")]
    public void Bad_input_exits_2_and_writes_nothing(string option, string value)
    {
        string stories = SharedData.Require(Stories), output = _dir.File("bad.gguf");
        var args = new List<string> { "prune", stories, "-o", output, option, value };
        if (option == "--calib-seq-len") args.AddRange(["--method", "wanda", "--calib", SharedData.Require(Text)]);
        var r = CliRunner.Run([.. args]);
        Assert.True(r.ExitCode == 2, r.ToString());
        Assert.Single(r.ErrorLines);
        Assert.StartsWith("edgequant: error: ", r.StdErr);
        Assert.False(File.Exists(output));
        Assert.Empty(Directory.EnumerateFileSystemEntries(_dir.Path));
    }

    [SharedDataFact(Stories)]
    public void Sparsity_contradicting_the_pattern_is_refused()
    {
        var r = CliRunner.Run("prune", SharedData.Require(Stories), "-o", _dir.File("x.gguf"), "--pattern", "2:4", "--sparsity", "0.3");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("contradicts --pattern 2:4", r.StdErr);
        var ok = CliRunner.Run("prune", SharedData.Require(Stories), "-o", _dir.File("y.gguf"), "--pattern", "2:4", "--sparsity", "0.5");
        Assert.True(ok.ExitCode == 0, ok.ToString());
    }
}
