using System.Text.Json;
using EdgeQuant.Cli.Tests.Eval;
using EdgeQuant.Cli.Tests.Infrastructure;
using EdgeQuant.Testing;
using EdgeQuant.Verification.Reference;

namespace EdgeQuant.Cli.Tests;

/// <summary><c>edgequant reference</c>: the file it writes (read back and checked), its report, and its argument errors.</summary>
public sealed class ReferenceCommandTests : IDisposable
{
    private const string Gguf = "models/stories260K/stories260K.gguf";
    private const string Text = "corpus/tinystories-sample.txt";

    private readonly TempDir _dir = new("vacc-refcmd");

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void Help_is_approved() => Approvals.Verify("help.reference", CliRunner.Run("reference", "--help").StdOut);

    [LlamaCppFact(Gguf, Text)]
    public void Full_reference_of_stories260K_reads_back_with_the_text_tokens_and_reports_its_size()
    {
        var output = _dir.File("ref.eqref");
        var r = CliRunner.Run("reference", SharedData.Require(Gguf), "--text", SharedData.Require(Text), "-o", output, "--ctx", "256",
            "--chunks", "2", "--threads", "1", "--json");
        Assert.True(r.ExitCode == 0, r.ToString());
        var json = JsonDocument.Parse(r.StdOut).RootElement;
        Assert.Equal("full", json.GetProperty("mode").GetString());
        Assert.Equal(2 * 127, json.GetProperty("n_scored").GetInt32());
        Assert.Equal(new FileInfo(output).Length, json.GetProperty("file_bytes").GetInt64());

        using var f = ReferenceFile.Open(output);
        Assert.Equal((ReferenceMode.Full, 512, 256, 2, 1), (f.Header.Mode, f.Header.NVocab, f.Header.NCtx, f.Header.NChunks, f.Header.Bos!.Value));
        Assert.Equal("stories260K.gguf", f.Header.ModelName);
        Assert.Equal(Convert.ToHexStringLower(ModelHash.Compute(SharedData.Require(Gguf))), json.GetProperty("model_sha256").GetString());
        // The stored tokens are the text's first 512 tokens as llama.cpp tokenizes it (BOS first).
        using var model = EdgeQuant.Runtimes.LlamaCpp.LlamaModel.Load(SharedData.Require(Gguf));
        var tokens = model.Tokenize(EdgeQuant.Runtimes.Evaluation.Perplexity.PrepareText(File.ReadAllText(SharedData.Require(Text))));
        Assert.Equal(tokens[..512], f.Tokens.ToArray());
        Assert.Equal(tokens.Length, f.Header.TextTokens);
        Assert.Equal(f.BytesPerScoredToken, json.GetProperty("bytes_per_scored_token").GetDouble(), 9);
    }

    [LlamaCppFact(Gguf, Text)]
    public void Top_k_reference_is_smaller_and_says_so()
    {
        var output = _dir.File("ref64.eqref");
        var r = CliRunner.Run("reference", SharedData.Require(Gguf), "--text", SharedData.Require(Text), "-o", output, "--ctx", "256",
            "--chunks", "1", "--top-k", "64", "--threads", "1");
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("top-K mode (K = 64): 1 chunks of 256, 127 scored positions, vocabulary 512", r.StdOut);
        using var f = ReferenceFile.Open(output);
        Assert.Equal(ReferenceMode.TopK, f.Header.Mode);
        // 8 + 8·64 bytes per position against 8 + 2·512 in full mode.
        Assert.InRange(f.BytesPerScoredToken, 520, 540);
    }

    /// <summary>
    /// What a reference costs for a 32k vocabulary (Llama-2/Mistral size): a random-weight Llama with 32,000 tokens
    /// (its own trained tokenizer) in llama.cpp, n_ctx 64, 4 chunks (124 scored positions), full and top-64.
    /// Full: 8 + 2·32,000 bytes per position; top-64: 8 + 8·64; each plus ~8.3 bytes of token ids (4·64/31) and the
    /// header and checksum spread over the positions.
    /// </summary>
    [LlamaCppFact(Text)]
    public void A_32k_vocabulary_reference_costs_64_KB_per_token_in_full_and_half_a_KB_with_top_64()
    {
        var fx = EdgeQuant.Fixtures.FixtureMaker.Write(new EdgeQuant.Fixtures.FixtureSpec
        {
            Layers = 1, Embd = 32, Heads = 4, KvHeads = 2, Ffn = 48, Vocab = 32000, Seed = 3,
        }, _dir.File("fx32k"), EdgeQuant.Fixtures.FixtureFormats.Gguf);
        var sizes = new Dictionary<string, double>();
        foreach (var (name, extra) in new[] { ("full", Array.Empty<string>()), ("top64", new[] { "--top-k", "64" }) })
        {
            var output = _dir.File(name + ".eqref");
            var r = CliRunner.Run(["reference", fx.GgufPath!, "--text", SharedData.Require(Text), "-o", output, "--ctx", "64", "--chunks", "4",
                "--threads", "1", "--json", .. extra]);
            Assert.True(r.ExitCode == 0, r.ToString());
            var json = JsonDocument.Parse(r.StdOut).RootElement;
            Assert.Equal(32000, json.GetProperty("n_vocab").GetInt32());
            Assert.Equal(124, json.GetProperty("n_scored").GetInt32());
            sizes[name] = json.GetProperty("bytes_per_scored_token").GetDouble();
            using var f = ReferenceFile.Open(output);
            Assert.Equal(new FileInfo(output).Length / 124.0, f.BytesPerScoredToken, 9);
        }
        Console.WriteLine($"vocab 32000: {sizes["full"]:F1} bytes per scored token in full mode, {sizes["top64"]:F1} with --top-k 64");
        Assert.InRange(sizes["full"], 64008 + 8.25, 64008 + 8.25 + 2);
        Assert.InRange(sizes["top64"], 520 + 8.25, 520 + 8.25 + 2);
        // Against float32 logits (128,000 bytes per position): 2x smaller in full mode, ~240x with top-64.
        Assert.True(sizes["full"] < 32000 * 4 / 1.99);
        Assert.True(sizes["top64"] < 32000 * 4 / 200.0);
    }

    [LlamaCppFact(Gguf, Text)]
    public void Bad_arguments_are_exit_2_with_one_line_and_leave_no_file()
    {
        var model = SharedData.Require(Gguf);
        var text = SharedData.Require(Text);
        var output = _dir.File("bad.eqref");
        var shortText = _dir.File("short.txt");
        File.WriteAllText(shortText, "Once upon a time there was a cat.");
        (string[] Args, string Expect)[] cases =
        [
            (["reference", model, "--text", text, "-o", output, "--ctx", "3"], "--ctx"),
            (["reference", model, "--text", text, "-o", output, "--top-k", "0"], "--top-k"),
            (["reference", model, "--text", text, "-o", output, "--ctx", "256", "--top-k", "513", "--chunks", "1"], "--top-k"),
            (["reference", model, "--text", text, "-o", output, "--chunks", "0"], "--chunks"),
            (["reference", model, "--text", _dir.File("missing.txt"), "-o", output], "no such text file"),
            (["reference", _dir.File("missing.gguf"), "--text", text, "-o", output], "no such model"),
            (["reference", model, "--text", text, "-o", text], "overwrite the input"),
            (["reference", model, "--text", text, "-o", _dir.File("nofolder/r.eqref")], "does not exist"),
            (["reference", model, "--text", shortText, "-o", output, "--ctx", "64"], "needs at least 128"),
            // 2 chunks of 16 score 14 tokens: below the 100 the statistics need.
            (["reference", model, "--text", text, "-o", output, "--ctx", "16", "--chunks", "2", "--threads", "1"], "at least 100"),
        ];
        foreach (var (args, expect) in cases)
        {
            var r = CliRunner.Run(args);
            Assert.True(r.ExitCode == 2, string.Join(' ', args) + "\n" + r);
            Assert.Single(r.ErrorLines);
            Assert.Contains(expect, r.StdErr);
            Assert.False(File.Exists(output), string.Join(' ', args));
        }
        Assert.Equal(["short.txt"], Directory.GetFiles(_dir.Path).Select(Path.GetFileName));
    }
}
