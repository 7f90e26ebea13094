using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using EdgeQuant.Cli.Commands.Eval;
using EdgeQuant.Cli.Tests.Infrastructure;
using EdgeQuant.Runtimes.Evaluation;
using EdgeQuant.Runtimes.LlamaCpp;
using EdgeQuant.Testing;

namespace EdgeQuant.Cli.Tests.Eval;

/// <summary><c>edgequant eval</c> against llama.cpp's own perplexity figure (../shared/data/REFERENCE.md) and its argument errors.</summary>
public sealed partial class EvalCommandTests
{
    private const string Gguf = "models/stories260K/stories260K.gguf";
    private const string Text = "corpus/tinystories-sample.txt";

    /// <summary>The issue's tolerance for reproducing llama-perplexity's printed figure (see LlamaPerplexityTests).</summary>
    private const double RelativeTolerance = 5e-4;

    [LlamaCppFact(Gguf, Text)]
    public void Prints_llama_perplexity_figure_end_to_end()
    {
        var r = CliProcess.Run(["eval", SharedData.Require(Gguf), "--runtime", "llamacpp", "--text", SharedData.Require(Text), "--ctx", "256",
            "--threads", "1"], timeout: TimeSpan.FromMinutes(10));
        Assert.True(r.ExitCode == 0, r.ToString());
        var m = PplLine().Match(r.StdOut);
        Assert.True(m.Success, r.ToString());
        double ppl = double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
        Assert.InRange(ppl, 6.0482 * (1 - RelativeTolerance), 6.0482 * (1 + RelativeTolerance));
        Assert.Equal("0.0707", m.Groups[2].Value);
        Assert.Contains("scored 49911 tokens in 393 chunks of 256 (100707 tokens in the text)", r.StdOut);
        Assert.Equal("", r.StdErr); // llama.cpp's own logging stays quiet
    }

    [GeneratedRegex(@"^PPL = (\d+\.\d{4}) ± (\d+\.\d{4})$", RegexOptions.Multiline)]
    private static partial Regex PplLine();

    [LlamaCppFact(Gguf, Text)]
    public void Json_report_has_the_protocol_counts_and_matches_the_library()
    {
        var r = CliRunner.Run("eval", SharedData.Require(Gguf), "--text", SharedData.Require(Text), "--ctx", "128", "--chunks", "12",
            "--threads", "1", "--json");
        Assert.True(r.ExitCode == 0, r.ToString());
        var json = JsonDocument.Parse(r.StdOut).RootElement;
        Assert.Equal(12, json.GetProperty("n_chunks").GetInt32());
        Assert.Equal(12 * 63, json.GetProperty("n_scored").GetInt32());
        Assert.Equal("llamacpp", json.GetProperty("runtime").GetString());
        Assert.True(json.GetProperty("tokens_per_second").GetDouble() > 0);

        // The same measurement through the library directly (the CLI adds only argument handling around it).
        using var model = LlamaModel.Load(SharedData.Require(Gguf));
        var tokens = model.Tokenize(Perplexity.PrepareText(File.ReadAllText(SharedData.Require(Text))));
        using var runner = new LlamaCppRunner(model, new LlamaContextOptions { ContextSize = 128, Threads = 1 });
        var expected = Perplexity.Evaluate(runner, tokens, model.Bos, new PerplexityOptions(128, 12));
        Assert.Equal(expected.Perplexity, json.GetProperty("ppl").GetDouble(), 1e-9);
        Assert.Equal(expected.Uncertainty, json.GetProperty("ppl_unc").GetDouble(), 1e-9);
        Assert.Equal(tokens.Length, json.GetProperty("n_tokens").GetInt32());
    }

    [Fact]
    public void Argument_errors_exit_2_with_one_line()
    {
        using var dir = new TempDir();
        var text = dir.File("t.txt");
        File.WriteAllText(text, "hello");
        var notGguf = dir.File("m.bin");
        File.WriteAllText(notGguf, "not a model");
        foreach (var (args, expected) in new[]
        {
            (new[] { "eval", notGguf, "--text", dir.File("missing.txt") }, "no such text file"),
            (new[] { "eval", dir.File("missing.gguf"), "--text", text }, "no such model"),
            (new[] { "eval", notGguf, "--text", text, "--ctx", "2" }, "--ctx"),
            (new[] { "eval", notGguf, "--text", text, "--chunks", "0" }, "--chunks"),
            (new[] { "eval", notGguf, "--text", text, "--threads", "0" }, "--threads"),
            (new[] { "eval", notGguf, "--text", text, "--runtime", "llamacpp" }, "not one"),
            (new[] { "eval", notGguf, "--text", text, "--runtime", "tflite" }, "tflite"),
            (new[] { "eval", notGguf }, "--text"),
            (new[] { "eval", notGguf, "--text", text, "--tokenizer", dir.File("missing.json") }, "no such tokenizer file"),
            (new[] { "eval", dir.Path, "--text", text, "--runtime", "onnxruntime" }, "this is a folder"),
        })
        {
            var r = CliRunner.Run(args);
            Assert.True(r.ExitCode == 2, $"{string.Join(' ', args)}: {r}");
            Assert.Single(r.ErrorLines);
            Assert.Contains(expected, r.StdErr);
        }
    }

    [Fact]
    public void An_onnx_model_without_a_tokenizer_json_beside_it_names_the_expected_path()
    {
        using var dir = new TempDir();
        var text = dir.File("t.txt");
        File.WriteAllText(text, "hello");
        var model = dir.File("lm.onnx");
        File.WriteAllBytes(model, [8, 7]);
        // The tokenizer is looked for before ONNX Runtime is loaded, so this needs no runtime.
        var r = CliRunner.Run("eval", model, "--text", text);
        Assert.Equal(2, r.ExitCode);
        Assert.Single(r.ErrorLines);
        Assert.Contains(dir.File("tokenizer.json") + ": no tokenizer.json beside the ONNX model", r.StdErr);
        Assert.Equal("", r.StdOut);
    }

    [Fact]
    public void The_default_runtime_follows_the_model_format()
    {
        using var dir = new TempDir();
        var gguf = dir.File("m.gguf");
        File.WriteAllBytes(gguf, [.. "GGUF"u8, 3, 0, 0, 0]);
        var ggufNamedBin = dir.File("m2.bin");
        File.Copy(gguf, ggufNamedBin);
        var llama2c = dir.File("stories.bin");
        File.WriteAllBytes(llama2c, new byte[28]);
        Assert.Equal(EvalRuntime.Llamacpp, EvalRuntimes.DefaultFor(gguf));
        Assert.Equal(EvalRuntime.Llamacpp, EvalRuntimes.DefaultFor(ggufNamedBin));
        Assert.Equal(EvalRuntime.Engine, EvalRuntimes.DefaultFor(llama2c));
        Assert.Equal(EvalRuntime.Engine, EvalRuntimes.DefaultFor(dir.Path));
        Assert.Equal(EvalRuntime.Onnxruntime, EvalRuntimes.DefaultFor(dir.File("lm.onnx")));
    }

    [LlamaCppFact(Gguf, Text)]
    public void A_text_shorter_than_two_contexts_is_refused()
    {
        using var dir = new TempDir();
        var text = dir.File("short.txt");
        File.WriteAllText(text, "Once upon a time there was a cat.\n");
        var r = CliRunner.Run("eval", SharedData.Require(Gguf), "--text", text, "--ctx", "64");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("needs at least 128", r.StdErr);
    }

    [LlamaCppFact(Gguf)]
    public void A_missing_runtime_is_the_numbered_message_not_a_stack()
    {
        using var dir = new TempDir();
        var text = dir.File("t.txt");
        File.WriteAllText(text, "hello");
        var r = CliProcess.Run(["eval", SharedData.Require(Gguf), "--text", text],
            new Dictionary<string, string> { ["EDGEQUANT_RUNTIMES"] = dir.File("nowhere") });
        Assert.Equal(1, r.ExitCode);
        Assert.Single(r.ErrorLines);
        Assert.Matches(@"^edgequant: error: EQ-RT-00\d: llama\.cpp not found", r.StdErr);
        Assert.DoesNotContain("DllNotFoundException", r.StdErr);
        Assert.DoesNotContain("   at ", r.StdErr);
    }

    [LlamaCppFact]
    public void Verbose_shows_why_llama_cpp_refused_a_file_and_restores_the_quiet_default()
    {
        using var dir = new TempDir();
        var text = dir.File("t.txt");
        File.WriteAllText(text, "hello");
        var broken = dir.File("broken.gguf");
        File.WriteAllBytes(broken, [.. "GGUF"u8, 3, 0, 0, 0, 255, 255]);
        var r = CliRunner.Run("eval", broken, "--text", text, "--verbose");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("llama.cpp: ", r.StdErr);
        Assert.Contains("edgequant: error: " + broken + ": llama.cpp could not load the model", r.StdErr);
        Assert.Null(LlamaLog.Sink);

        var quiet = CliRunner.Run("eval", broken, "--text", text);
        Assert.Equal(2, quiet.ExitCode);
        Assert.Single(quiet.ErrorLines);
    }

    [Fact]
    public void Help_is_stable()
    {
        var r = CliRunner.Run("eval", "--help");
        Assert.Equal(0, r.ExitCode);
        Approvals.Verify("help.eval", r.StdOut);
    }
}
