using System.Text.Json;
using EdgeQuant.Cli.Tests.Infrastructure;
using EdgeQuant.Compression.Pruning;
using EdgeQuant.Export.Onnx;
using EdgeQuant.Fixtures;
using EdgeQuant.Models;
using EdgeQuant.Models.Tokenizers;
using EdgeQuant.Runtimes.Evaluation;
using EdgeQuant.Testing;

namespace EdgeQuant.Cli.Tests.Prune;

/// <summary><c>edgequant prune --method heads|channels|layers</c>: the library's plan and tensors in the file, the summary, refusals.</summary>
public sealed class StructuredPruneCommandTests : IDisposable
{
    private const string Stories = "models/stories260K/stories260K.gguf";
    private const string Text = "corpus/tinystories-sample.txt";
    private readonly TempDir _dir = new("eqsprune");

    public void Dispose() => _dir.Dispose();

    [SharedDataFact(Stories, Text)]
    public void Heads_and_channels_write_the_library_pipelines_smaller_model()
    {
        string stories = SharedData.Require(Stories), text = SharedData.Require(Text), output = _dir.File("s.gguf");
        var r = CliRunner.Run("prune", stories, "-o", output, "--method", "heads,channels", "--sparsity", "0.25", "--calib", text,
            "--calib-samples", "8", "--calib-seq-len", "128", "--threads", "2", "--json");
        Assert.True(r.ExitCode == 0, r.ToString());

        using var model = ModelLoader.Load(stories);
        var tokens = Tokenizer.FromModel(model).Encode(Perplexity.PrepareText(File.ReadAllText(text)), addSpecial: true, parseSpecial: false);
        var imp = StructuredImportance.Collect(model, tokens, new CalibrationOptions { SequenceLength = 128, Samples = 8, Threads = 2 });
        var lib = StructuredPruner.Apply(model, StructuredPlanner.Uniform(model.Config, imp, [StructuredMethod.Heads, StructuredMethod.Channels], 0.25));
        using var written = ModelLoader.Load(output);
        Assert.Equal(lib.Tensors.Select(t => t.Name).Order(), written.Tensors.Select(t => t.Name).Order());
        foreach (var t in lib.Tensors) Assert.Equal(t.ToFloat32(), written.Get(t.Name).ToFloat32());
        Assert.Equal((6, 3, 129, 5), (written.Config.HeadCount, written.Config.HeadCountKv, written.Config.FeedForwardLength, written.Config.BlockCount));

        using var doc = JsonDocument.Parse(r.StdOut);
        var root = doc.RootElement;
        Assert.Equal("heads,channels", root.GetProperty("method").GetString());
        Assert.Equal(model.ParameterCount, root.GetProperty("parameters_before").GetInt64());
        Assert.Equal(written.ParameterCount, root.GetProperty("parameters_after").GetInt64());
        Assert.Equal(new FileInfo(output).Length, root.GetProperty("bytes").GetInt64());
        Assert.Equal(1024, root.GetProperty("calibration_tokens").GetInt32());
        var layers = root.GetProperty("layers").EnumerateArray().ToList();
        Assert.Equal(5, layers.Count);
        Assert.All(layers, l => Assert.Equal((6, 8, 129, 172), (l.GetProperty("heads").GetInt32(), l.GetProperty("source_heads").GetInt32(),
            l.GetProperty("feed_forward").GetInt32(), l.GetProperty("source_feed_forward").GetInt32())));
    }

    /// <summary>--channel-multiple: 25 % of 172 channels leaves 129, kept as 128 (the nearest multiple of 32) in every layer.</summary>
    [SharedDataFact(Stories, Text)]
    public void A_channel_multiple_keeps_aligned_ffn_widths_and_is_refused_elsewhere()
    {
        string stories = SharedData.Require(Stories), text = SharedData.Require(Text), output = _dir.File("c.gguf");
        var r = CliRunner.Run("prune", stories, "-o", output, "--method", "channels", "--sparsity", "0.25", "--channel-multiple", "32", "--calib", text,
            "--calib-samples", "4", "--calib-seq-len", "128", "--threads", "2", "--json");
        Assert.True(r.ExitCode == 0, r.ToString());
        using (var written = ModelLoader.Load(output)) Assert.Equal(128, written.Config.FeedForwardLength);
        using (var doc = JsonDocument.Parse(r.StdOut))
            Assert.All(doc.RootElement.GetProperty("layers").EnumerateArray(), l => Assert.Equal(128, l.GetProperty("feed_forward").GetInt32()));

        foreach (var args in new[]
        {
            new[] { "--method", "heads", "--sparsity", "0.25", "--channel-multiple", "32", "--calib", text },
            ["--method", "magnitude", "--sparsity", "0.5", "--channel-multiple", "32"],
            ["--method", "channels", "--sparsity", "0.25", "--channel-multiple", "0", "--calib", text],
        })
        {
            string refusedOut = _dir.File("refused.gguf");
            var refused = CliRunner.Run(["prune", stories, "-o", refusedOut, .. args]);
            Assert.True(refused.ExitCode == 2, refused.ToString());
            Assert.Contains("--channel-multiple", refused.StdErr);
            Assert.False(File.Exists(refusedOut));
        }
    }

    [SharedDataFact(Stories, Text)]
    public void Layers_to_onnx_with_a_text_summary()
    {
        string stories = SharedData.Require(Stories), text = SharedData.Require(Text), output = _dir.File("onnx");
        var r = CliRunner.Run("prune", stories, "-o", output, "--method", "layers", "--sparsity", "0.4", "--calib", text,
            "--calib-samples", "4", "--calib-seq-len", "128", "--threads", "2", "--format", "onnx");
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("removed layers: ", r.StdOut);
        Assert.Contains("parameters: 292,800 -> ", r.StdOut);
        Assert.Equal(3, r.StdOut.Split('\n').Count(l => l.StartsWith("blk.", StringComparison.Ordinal)));
        Assert.True(File.Exists(Path.Combine(output, OnnxExporter.ModelFileName)));
        Assert.True(File.Exists(Path.Combine(output, "tokenizer.json")));
    }

    [SharedDataFact(Text)]
    public void Gpt2_heads_are_refused_before_calibration()
    {
        var spec = new FixtureSpec { Arch = FixtureArch.Gpt2, Layers = 2, Embd = 64, Heads = 4, KvHeads = 4, Ffn = 128, Vocab = 320, ContextLength = 64 };
        string gguf = FixtureMaker.Write(spec, _dir.File("fixture"), FixtureFormats.Gguf).GgufPath!, output = _dir.File("gpt2.gguf");
        var r = CliRunner.Run("prune", gguf, "-o", output, "--method", "heads", "--sparsity", "0.5", "--calib", SharedData.Require(Text), "--calib-seq-len", "32");
        Assert.True(r.ExitCode == 2, r.ToString());
        Assert.Contains("GPT-2", r.StdErr);
        Assert.False(File.Exists(output));
        var ok = CliRunner.Run("prune", gguf, "-o", output, "--method", "channels", "--sparsity", "0.5", "--calib", SharedData.Require(Text),
            "--calib-seq-len", "32", "--calib-samples", "2");
        Assert.True(ok.ExitCode == 0, ok.ToString());
        using var written = ModelLoader.Load(output);
        Assert.Equal(64, written.Config.FeedForwardLength);
    }

    [SharedDataTheory(Stories, Text)]
    [InlineData("pass --calib FILE", "--method", "heads", "--sparsity", "0.25")]
    [InlineData("needs --sparsity", "--method", "channels", "--calib", "CALIB")]
    [InlineData("every head of layer 0", "--method", "heads", "--sparsity", "0.9", "--calib", "CALIB")]
    [InlineData("all 5 layers", "--method", "layers", "--sparsity", "0.95", "--calib", "CALIB")]
    [InlineData("outside [0, 1)", "--method", "channels", "--sparsity", "1", "--calib", "CALIB")]
    [InlineData("--pattern applies", "--method", "heads", "--sparsity", "0.25", "--pattern", "2:4", "--calib", "CALIB")]
    [InlineData("'rows' in 'heads,rows'", "--method", "heads,rows", "--sparsity", "0.25", "--calib", "CALIB")]
    [InlineData("listed twice", "--method", "heads,heads", "--sparsity", "0.25", "--calib", "CALIB")]
    public void Bad_input_exits_2_and_writes_nothing(string message, params string[] options)
    {
        string output = _dir.File("bad.gguf");
        var args = new List<string> { "prune", SharedData.Require(Stories), "-o", output, "--calib-samples", "2", "--calib-seq-len", "64" };
        args.AddRange(options.Select(o => o == "CALIB" ? SharedData.Require(Text) : o));
        var r = CliRunner.Run([.. args]);
        Assert.True(r.ExitCode == 2, r.ToString());
        Assert.Single(r.ErrorLines);
        Assert.Contains(message, r.StdErr);
        Assert.Empty(Directory.EnumerateFileSystemEntries(_dir.Path));
    }
}
