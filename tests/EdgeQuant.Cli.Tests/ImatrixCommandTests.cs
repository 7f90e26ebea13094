using System.Text.Json;
using EdgeQuant.Cli.Tests.Infrastructure;
using EdgeQuant.Compression.Imatrix;
using EdgeQuant.Fixtures;
using EdgeQuant.Models;
using EdgeQuant.Models.Tokenizers;
using EdgeQuant.Runtimes.Evaluation;
using EdgeQuant.Testing;

namespace EdgeQuant.Cli.Tests;

/// <summary><c>edgequant imatrix</c>: the library's file, end to end, and clear exit-2 errors that leave nothing behind.</summary>
public sealed class ImatrixCommandTests : IDisposable
{
    private const string Stories = "models/stories260K/stories260K.gguf";
    private const string Text = "corpus/tinystories-sample.txt";

    private readonly TempDir _dir = new("eqimatrix");

    public void Dispose() => _dir.Dispose();

    private static readonly FixtureSpec Llama = new() { Layers = 2, Embd = 32, Heads = 4, KvHeads = 2, Ffn = 48, Vocab = 300, Untied = true, Seed = 61 };

    private string FixtureGguf() => FixtureMaker.Write(Llama, _dir.File("fx"), FixtureFormats.Gguf).GgufPath!;

    private string TextFile(int words = 400)
    {
        var rng = new Random(11);
        string[] vocab = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "far", "away", "home", "Lily", "saw", "big", "red", "ball"];
        var path = _dir.File("text.txt");
        File.WriteAllText(path, string.Join(' ', Enumerable.Range(0, words).Select(_ => vocab[rng.Next(vocab.Length)])) + "\n");
        return path;
    }

    private void AssertNoTemporaries() =>
        Assert.DoesNotContain(Directory.EnumerateFiles(_dir.Path, "*", SearchOption.AllDirectories), f => f.EndsWith(".tmp", StringComparison.Ordinal));

    [Fact]
    public void Writes_what_the_library_collects_with_the_text_path_as_dataset()
    {
        var model = FixtureGguf();
        var text = TextFile();
        var output = _dir.File("out.imatrix.gguf");
        var r = CliRunner.Run("imatrix", model, "--text", text, "-o", output, "--ctx", "64", "--threads", "1", "--json");
        Assert.True(r.ExitCode == 0, r.ToString());
        using var doc = JsonDocument.Parse(r.StdOut);
        var json = doc.RootElement;

        using var m = ModelLoader.Load(model);
        var tokens = Tokenizer.FromModel(m).Encode(Perplexity.PrepareText(File.ReadAllText(text)), addSpecial: true, parseSpecial: false);
        var lib = ImatrixRunner.Collect(m, tokens, new ImatrixRunOptions { Context = 64, Threads = 1, Datasets = [text] }, null, CancellationToken.None);
        Assert.Equal(lib.Serialize(), File.ReadAllBytes(output));

        var read = ImportanceMatrix.Read(output);
        Assert.Equal([text], read.Datasets);
        Assert.Equal(tokens.Length / 64, read.ChunkCount);
        Assert.Equal(64, read.ChunkSize);
        Assert.Equal(read.ContentSha256, json.GetProperty("sha256").GetString());
        Assert.Equal(read.TensorNames.Count, json.GetProperty("tensors").GetInt32());
        Assert.Equal(tokens.Length, json.GetProperty("text_tokens").GetInt32());
        Assert.True(json.GetProperty("ppl").GetDouble() > 1);
        AssertNoTemporaries();
    }

    [SharedDataFact(Stories, Text)]
    public void Stories260K_end_to_end_in_a_real_process_writes_a_legacy_file_llama_quantize_reads()
    {
        var text = _dir.File("stories.txt");
        File.WriteAllText(text, File.ReadAllText(SharedData.Require(Text))[..12000]);
        var output = _dir.File("stories.dat");
        var r = CliProcess.Run("imatrix", SharedData.Require(Stories), "--text", text, "-o", output, "--ctx", "128", "--chunks", "4",
            "--format", "dat", "--threads", "1");
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("4 chunks of 128 tokens", r.StdOut);
        Assert.Contains("PPL = ", r.StdOut);
        var m = ImportanceMatrix.Read(output);
        Assert.Equal(ImatrixFormat.Dat, m.Kind);
        Assert.Equal(35, m.TensorNames.Count);
        Assert.Equal(4, m.ChunkCount);
        Assert.Equal([text], m.Datasets);
        // 512 rows over chunks of 128: ncall = 4, and the stored values are mean squares times ncall.
        Assert.All(m.TensorNames, n => Assert.Equal(4.0, m.Entry(n)!.Counts[0]));
    }

    [Fact]
    public void Bad_input_is_exit_2_with_one_line_and_no_file()
    {
        var model = FixtureGguf();
        var text = TextFile();
        var output = _dir.File("o.gguf");
        void Bad(string expected, params string[] args)
        {
            var r = CliRunner.Run(["imatrix", .. args]);
            Assert.True(r.ExitCode == 2, r.ToString());
            Assert.Single(r.ErrorLines);
            Assert.Contains(expected, r.StdErr);
            Assert.False(File.Exists(output), "no output after a refusal");
            AssertNoTemporaries();
        }
        Bad("--format", model, "--text", text, "-o", output, "--format", "ggml");
        Bad("--ctx", model, "--text", text, "-o", output, "--ctx", "1");
        Bad("--chunks", model, "--text", text, "-o", output, "--chunks", "0");
        Bad("no such text file", model, "--text", _dir.File("none.txt"), "-o", output);
        Bad("no such model", _dir.File("none.gguf"), "--text", text, "-o", output);
        Bad("needs at least 16384", model, "--text", text, "-o", output, "--ctx", "8192");
        Bad("the output is the input", model, "--text", text, "-o", model);
        Bad("the output is the --text file", model, "--text", text, "-o", text);
        var garbage = _dir.File("garbage.gguf");
        File.WriteAllBytes(garbage, [(byte)'G', (byte)'G', (byte)'U', (byte)'F', 3, 0, 0, 0, 1]);
        Bad(garbage, garbage, "--text", text, "-o", output);
        var r = CliRunner.Run("imatrix", model, "--text", text);
        Assert.Equal(2, r.ExitCode);
    }

    [Fact]
    public void An_existing_output_needs_force()
    {
        var model = FixtureGguf();
        var text = TextFile();
        var output = _dir.File("o.gguf");
        File.WriteAllText(output, "keep me");
        var r = CliRunner.Run("imatrix", model, "--text", text, "-o", output, "--ctx", "32", "--threads", "1");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--force", r.StdErr);
        Assert.Equal("keep me", File.ReadAllText(output));
        r = CliRunner.Run("imatrix", model, "--text", text, "-o", output, "--ctx", "32", "--threads", "1", "--force", "--no-ppl");
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.DoesNotContain("PPL", r.StdOut);
        Assert.Equal(32, ImportanceMatrix.Read(output).ChunkSize);
    }

    [Fact]
    public void Ctrl_c_is_exit_130_and_leaves_no_file()
    {
        var model = FixtureGguf();
        var text = TextFile();
        var output = _dir.File("o.gguf");
        using var cts = new CancellationTokenSource();
        var r = CliRunner.Run(["imatrix", model, "--text", text, "-o", output, "--ctx", "32", "--threads", "1"], loadModel: (p, t) =>
        {
            var m = ModelLoader.Load(p, t);
            cts.Cancel(); // as if Ctrl-C arrived once the model was loaded
            return m;
        }, cancellationToken: cts.Token);
        Assert.Equal(130, r.ExitCode);
        Assert.False(File.Exists(output));
        AssertNoTemporaries();
    }

    [Fact]
    public void Help_is_approved()
    {
        var r = CliRunner.Run("imatrix", "--help");
        Assert.Equal(0, r.ExitCode);
        Approvals.Verify("help.imatrix", r.StdOut);
    }
}
