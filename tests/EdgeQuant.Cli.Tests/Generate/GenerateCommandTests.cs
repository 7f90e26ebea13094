using System.Text.Json;
using EdgeQuant.Cli.Tests.Infrastructure;
using EdgeQuant.Testing;

namespace EdgeQuant.Cli.Tests.Generate;

/// <summary>
/// <c>edgequant generate</c> on stories260K against llama.cpp's greedy continuation (../shared/data/REFERENCE.md),
/// plus argument errors.
/// </summary>
public class GenerateCommandTests
{
    private const string Gguf = "models/stories260K/stories260K.gguf";
    private const string Bin = "models/stories260K/stories260K.bin";
    private const string Reference = "REFERENCE.md";

    /// <summary>The quoted continuation under "## Greedy continuation" in REFERENCE.md, lines joined by newlines.</summary>
    private static string ReferenceText()
    {
        var lines = File.ReadAllLines(SharedData.Require(Reference));
        int start = Array.FindIndex(lines, l => l.StartsWith("## Greedy continuation", StringComparison.Ordinal));
        Assert.True(start >= 0, "REFERENCE.md has no greedy continuation section");
        return string.Join('\n', lines.Skip(start).SkipWhile(l => !l.StartsWith("> ", StringComparison.Ordinal))
            .TakeWhile(l => l.StartsWith("> ", StringComparison.Ordinal)).Select(l => l[2..]));
    }

    private static int[] ReferenceIds()
    {
        var line = File.ReadLines(SharedData.Require(Reference)).Single(l => l.StartsWith("Token ids:", StringComparison.Ordinal));
        return line["Token ids:".Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToArray();
    }

    [SharedDataFact(Gguf, Reference)]
    public void Greedy_generation_prints_the_llama_cpp_reference_continuation()
    {
        var r = CliRunner.Run("generate", SharedData.Require(Gguf), "--prompt", "Once upon a time", "-n", "100", "--threads", "2");
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Equal(ReferenceText(), r.StdOut.TrimEnd('\n'));
        Assert.Contains("generated 100 tokens", r.StdErr);
        Assert.Contains("stop: length", r.StdErr);
    }

    [SharedDataFact(Bin, Reference)]
    public void Json_output_carries_the_reference_token_ids_from_the_llama2c_twin()
    {
        var r = CliProcess.Run(["generate", SharedData.Require(Bin), "--prompt", "Once upon a time", "-n", "100", "--json"]);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Equal("", r.StdErr);
        var json = JsonDocument.Parse(r.StdOut).RootElement;
        var ids = ReferenceIds();
        Assert.Equal(ids[..5], json.GetProperty("prompt_tokens").EnumerateArray().Select(e => e.GetInt32()));
        Assert.Equal(ids[5..], json.GetProperty("tokens").EnumerateArray().Select(e => e.GetInt32()));
        Assert.Equal(100, json.GetProperty("n_generated").GetInt32());
        Assert.Equal("length", json.GetProperty("stop_reason").GetString());
        Assert.StartsWith(", there was a little girl named Lily.", json.GetProperty("text").GetString());
    }

    [SharedDataFact(Gguf)]
    public void Sampling_with_a_seed_repeats_itself()
    {
        string[] args = ["generate", SharedData.Require(Gguf), "--prompt", "Once upon a time", "-n", "40", "--temp", "0.9", "--top-k", "40", "--top-p", "0.95", "--seed", "42", "--json"];
        var a = CliRunner.Run(args);
        var b = CliRunner.Run(args);
        Assert.True(a.ExitCode == 0, a.ToString());
        static string Tokens(string json) => JsonDocument.Parse(json).RootElement.GetProperty("tokens").GetRawText();
        Assert.Equal(Tokens(a.StdOut), Tokens(b.StdOut));
        Assert.Equal(40, JsonDocument.Parse(a.StdOut).RootElement.GetProperty("tokens").GetArrayLength());
    }

    [SharedDataTheory(Gguf)]
    [InlineData("-n", "-1", "--n-predict")]
    [InlineData("--temp", "-0.5", "--temp")]
    [InlineData("--top-p", "0", "--top-p")]
    [InlineData("--ctx", "3", "--prompt")]
    [InlineData("--threads", "0", "--threads")]
    public void Bad_arguments_exit_2_naming_the_option(string option, string value, string named)
    {
        var r = CliRunner.Run("generate", SharedData.Require(Gguf), "--prompt", "Once upon a time", option, value);
        Assert.True(r.ExitCode == 2, r.ToString());
        Assert.Contains(named, r.StdErr);
        Assert.Equal("", r.StdOut);
    }

    [Fact]
    public void A_missing_model_exits_2()
    {
        var r = CliRunner.Run("generate", "/nonexistent/model.gguf", "--prompt", "hi");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("/nonexistent/model.gguf", r.StdErr);
    }
}
