using System.Text.Json;
using EdgeQuant.Cli.Tests.Infrastructure;
using EdgeQuant.Export;
using EdgeQuant.Fixtures;
using EdgeQuant.Formats.Gguf;
using EdgeQuant.Models;
using EdgeQuant.Testing;

namespace EdgeQuant.Cli.Tests.Export;

/// <summary><c>edgequant export</c>: the same files as the library exporters, and clear exit-2 errors that leave nothing behind.</summary>
public sealed class ExportCommandTests : IDisposable
{
    private readonly TempDir _dir = new("eqexport");

    public void Dispose() => _dir.Dispose();

    private static readonly FixtureSpec Llama = new() { Layers = 1, Embd = 32, Heads = 4, KvHeads = 2, Ffn = 48, Vocab = 300, Untied = true, Seed = 51 };

    private FixtureResult Fixture(FixtureSpec? spec = null, string name = "fx") =>
        FixtureMaker.Write(spec ?? Llama, _dir.File(name), FixtureFormats.Both);

    /// <summary>Nothing but the expected entries: no temporary file or folder left beside them.</summary>
    private void AssertOnlyEntries(string folder, params string[] names) =>
        Assert.Equal(names.Order(), Directory.EnumerateFileSystemEntries(folder).Select(Path.GetFileName).Order());

    [Fact]
    public void Gguf_export_writes_the_library_exporters_bytes()
    {
        var fx = Fixture();
        var cli = _dir.File("cli.gguf");
        var lib = _dir.File("lib.gguf");
        var r = CliRunner.Run("export", fx.HuggingFaceDir!, "--format", "gguf", "-o", cli, "--outtype", "f16");
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("F16", r.StdOut);
        using (var m = ModelLoader.Load(fx.HuggingFaceDir!)) GgufExporter.Export(m, lib, new GgufExportOptions { OutType = Core.Tensors.TensorType.F16 });
        Assert.Equal(File.ReadAllBytes(lib), File.ReadAllBytes(cli));
    }

    [Fact]
    public void Hf_export_of_a_gguf_loads_back_with_the_same_tensors()
    {
        var fx = Fixture(Llama with { Arch = FixtureArch.Qwen2, Heads = 4, KvHeads = 2 });
        var outDir = _dir.File("hf-out");
        var r = CliRunner.Run("export", fx.GgufPath!, "--format", "hf", "-o", outDir, "--json");
        Assert.True(r.ExitCode == 0, r.ToString());
        using var doc = JsonDocument.Parse(r.StdOut);
        Assert.Equal("hf", doc.RootElement.GetProperty("format").GetString());
        AssertOnlyEntries(outDir, "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json");
        using var a = ModelLoader.Load(fx.GgufPath!);
        using var b = ModelLoader.Load(outDir);
        Assert.Equal(a.Tensors.Count, doc.RootElement.GetProperty("tensors").GetInt32());
        foreach (var t in a.Tensors) Assert.True(t.RawBytes().SequenceEqual(b.Get(t.Name).RawBytes()), t.Name);
    }

    [Fact]
    public void Output_equal_to_input_is_exit_2_and_leaves_the_input_alone()
    {
        var fx = Fixture();
        var before = File.ReadAllBytes(fx.GgufPath!);
        var r = CliRunner.Run("export", fx.GgufPath!, "--format", "gguf", "-o", fx.GgufPath!, "--force");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("the output is the input", r.StdErr);
        Assert.Equal(before, File.ReadAllBytes(fx.GgufPath!));
        AssertOnlyEntries(Path.GetDirectoryName(fx.GgufPath!)!, "model.gguf");

        var h = CliRunner.Run("export", fx.HuggingFaceDir!, "--format", "hf", "-o", fx.HuggingFaceDir! + "/", "--force");
        Assert.Equal(2, h.ExitCode);
        Assert.Contains("the output is the input", h.StdErr);
    }

    [Fact]
    public void Existing_output_needs_force()
    {
        var fx = Fixture();
        var target = _dir.File("exists.gguf");
        File.WriteAllText(target, "keep me");
        var r = CliRunner.Run("export", fx.HuggingFaceDir!, "--format", "gguf", "-o", target);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--force", r.StdErr);
        Assert.Equal("keep me", File.ReadAllText(target));

        var forced = CliRunner.Run("export", fx.HuggingFaceDir!, "--format", "gguf", "-o", target, "--force");
        Assert.True(forced.ExitCode == 0, forced.ToString());
        using (var m = ModelLoader.Load(target)) Assert.Equal(Llama.Vocab, m.Config.VocabSize);

        var folder = _dir.File("exists-hf");
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "old.txt"), "old");
        Assert.Equal(2, CliRunner.Run("export", target, "--format", "hf", "-o", folder).ExitCode);
        Assert.True(File.Exists(Path.Combine(folder, "old.txt")));
        var hf = CliRunner.Run("export", target, "--format", "hf", "-o", folder, "--force");
        Assert.True(hf.ExitCode == 0, hf.ToString());
        AssertOnlyEntries(folder, "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json");
    }

    [Fact]
    public void Unsupported_architecture_is_exit_2_with_nothing_written()
    {
        var src = _dir.File("falcon");
        Directory.CreateDirectory(src);
        File.WriteAllText(Path.Combine(src, "config.json"),
            """{"architectures": ["FalconForCausalLM"], "model_type": "falcon", "hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 2, "vocab_size": 300}""");
        var outDir = _dir.File("out");
        Directory.CreateDirectory(outDir);
        foreach (var format in new[] { "gguf", "hf" })
        {
            var r = CliRunner.Run("export", src, "--format", format, "-o", Path.Combine(outDir, "model." + format));
            Assert.Equal(2, r.ExitCode);
            Assert.Contains("falcon", r.StdErr, StringComparison.OrdinalIgnoreCase);
        }
        AssertOnlyEntries(outDir);
    }

    [Theory]
    [InlineData("--format", "tflite", "--format")]
    [InlineData("--outtype", "q4_0", "--outtype")]
    public void Bad_option_values_are_exit_2(string option, string value, string named)
    {
        var fx = Fixture();
        var outDir = _dir.File("bad");
        Directory.CreateDirectory(outDir);
        var args = new List<string> { "export", fx.GgufPath!, "-o", Path.Combine(outDir, "x.gguf") };
        if (option != "--format") args.AddRange(["--format", "gguf"]);
        args.AddRange([option, value]);
        var r = CliRunner.Run([.. args]);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains(named, r.StdErr);
        AssertOnlyEntries(outDir);
    }

    /// <summary>The real process: exit code and the one-line error on stderr.</summary>
    [Fact]
    public void Process_reports_an_existing_output_as_exit_2()
    {
        var fx = Fixture();
        var r = CliProcess.Run("export", fx.HuggingFaceDir!, "--format", "gguf", "-o", fx.GgufPath!);
        Assert.Equal(2, r.ExitCode);
        Assert.StartsWith("edgequant: error: ", r.ErrorLines.Single());
    }

    [Fact]
    public void Help_matches_the_approved_snapshot()
    {
        var r = CliRunner.Run("export", "--help");
        Assert.Equal(0, r.ExitCode);
        Approvals.Verify("help.export", r.StdOut);
    }
}
