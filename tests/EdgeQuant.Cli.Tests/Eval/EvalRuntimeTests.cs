using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using EdgeQuant.Cli.Tests.Infrastructure;
using EdgeQuant.Models.Tokenizers;
using EdgeQuant.Runtimes.OnnxRuntime;
using EdgeQuant.Testing;

namespace EdgeQuant.Cli.Tests.Eval;

/// <summary>
/// <c>eval --runtime engine</c> against llama.cpp's figure (../shared/data/REFERENCE.md), and <c>--runtime onnxruntime</c>
/// against a perplexity computed here from full-sequence ONNX Runtime calls.
/// </summary>
public sealed partial class EvalRuntimeTests
{
    private const string Gguf = "models/stories260K/stories260K.gguf";
    private const string Llama2c = "models/stories260K/stories260K.bin";
    private const string Llama2cTokenizer = "models/stories260K/tok512.bin";
    private const string Text = "corpus/tinystories-sample.txt";
    private const string Gpt2Dir = "onnx/tiny-random-gpt2";
    private const string Shakespeare = "corpus/tinyshakespeare.txt";

    /// <summary>llama-perplexity on stories260K.gguf, N = 256 (REFERENCE.md), and issue 5's tolerance.</summary>
    private const double LlamaCppPpl = 6.0482;
    private const double EngineTolerance = 1e-3;

    [SharedDataFact(Gguf, Text)]
    public void Engine_on_the_gguf_prints_llama_perplexity_figure_end_to_end()
    {
        var r = CliProcess.Run(["eval", SharedData.Require(Gguf), "--runtime", "engine", "--text", SharedData.Require(Text), "--ctx", "256",
            "--threads", "1"], timeout: TimeSpan.FromMinutes(10));
        Assert.True(r.ExitCode == 0, r.ToString());
        var m = PplLine().Match(r.StdOut);
        Assert.True(m.Success, r.ToString());
        double ppl = double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
        Assert.InRange(ppl, LlamaCppPpl * (1 - EngineTolerance), LlamaCppPpl * (1 + EngineTolerance));
        Assert.Contains("scored 49911 tokens in 393 chunks of 256 (100707 tokens in the text)", r.StdOut);
        Assert.Contains("runtime edgequant engine", r.StdOut);
    }

    [SharedDataFact(Llama2c, Llama2cTokenizer, Text)]
    public void The_llama2c_twin_gives_the_same_figure_through_the_default_runtime()
    {
        var r = CliRunner.Run("eval", SharedData.Require(Llama2c), "--text", SharedData.Require(Text), "--ctx", "256", "--threads", "1", "--json");
        Assert.True(r.ExitCode == 0, r.ToString());
        var json = JsonDocument.Parse(r.StdOut).RootElement;
        Assert.Equal("engine", json.GetProperty("runtime").GetString());
        Assert.InRange(json.GetProperty("ppl").GetDouble(), LlamaCppPpl * (1 - EngineTolerance), LlamaCppPpl * (1 + EngineTolerance));
        Assert.Equal(49911, json.GetProperty("n_scored").GetInt32());
        Assert.Equal(393, json.GetProperty("n_chunks").GetInt32());
        Assert.Equal(100707, json.GetProperty("n_tokens").GetInt32());
        Assert.True(json.GetProperty("ppl_unc").GetDouble() > 0);
        Assert.True(json.GetProperty("tokens_per_second").GetDouble() > 0);
    }

    [SharedDataFact(Gguf, Llama2cTokenizer)]
    public void Tokenizer_option_on_llama2c_must_exist_and_is_refused_for_gguf_in_the_engine()
    {
        using var dir = new TempDir();
        var text = dir.File("t.txt");
        File.WriteAllText(text, "Once upon a time.");
        var r = CliRunner.Run("eval", SharedData.Require(Gguf), "--runtime", "engine", "--text", text, "--tokenizer", SharedData.Require(Llama2cTokenizer));
        Assert.Equal(2, r.ExitCode);
        Assert.Single(r.ErrorLines);
        Assert.Contains("--tokenizer applies to llama2.c", r.StdErr);
    }

    /// <summary>
    /// The random GPT-2 has 1,000 logits but ships the real 50,257-token GPT-2 tokenizer, so real text cannot be scored
    /// with it; the test gives the model the same byte-level BPE cut to its first 1,000 ids (the 256 byte tokens and
    /// the 744 merges that make ids below 1,000), beside a copy of the model, where eval looks for it.
    /// </summary>
    [OnnxRuntimeFact(Gpt2Dir + "/past.onnx", Gpt2Dir + "/tokenizer.json", Gpt2Dir + "/genai_config.json", Shakespeare)]
    public void Onnx_lm_perplexity_equals_full_sequence_ort_calls_scored_here()
    {
        const int ctx = 64;
        using var dir = new TempDir();
        var model = dir.File("past.onnx");
        File.Copy(SharedData.Require(Gpt2Dir + "/past.onnx"), model);
        File.Copy(SharedData.Require(Gpt2Dir + "/genai_config.json"), dir.File("genai_config.json"));
        int kept = WriteTruncatedTokenizer(SharedData.Require(Gpt2Dir + "/tokenizer.json"), dir.File("tokenizer.json"), 1000);
        Assert.Equal(744, kept);
        var raw = File.ReadAllText(SharedData.Require(Shakespeare))[..4096];
        var textPath = dir.File("slice.txt");
        File.WriteAllText(textPath, raw);

        var r = CliRunner.Run("eval", model, "--text", textPath, "--ctx", ctx.ToString(CultureInfo.InvariantCulture), "--threads", "1", "--json");
        Assert.True(r.ExitCode == 0, r.ToString());
        var json = JsonDocument.Parse(r.StdOut).RootElement;
        Assert.Equal("onnxruntime", json.GetProperty("runtime").GetString());

        // Independent: tokens without BOS (GPT-2 adds none), each chunk one full-sequence Run with an empty past.
        var tokenizer = Tokenizer.FromHuggingFace(dir.File("tokenizer.json"));
        Assert.False(tokenizer.AddBos);
        var tokens = tokenizer.Encode(raw.EndsWith('\n') ? raw[..^1] : raw, addSpecial: true);
        Assert.All(tokens, t => Assert.InRange(t, 0, 999));
        int chunks = tokens.Length / ctx;
        Assert.True(chunks >= 20, $"{tokens.Length} tokens");
        using var session = OrtSession.FromFile(model, new OrtSessionSettings { IntraOpThreads = 1 });
        double nll = 0;
        int scored = 0;
        for (int c = 0; c < chunks; c++)
        {
            var logits = FullSequenceLogits(session, tokens.AsSpan(c * ctx, ctx), out int vocab);
            for (int i = ctx / 2; i <= ctx - 2; i++)
            {
                var row = logits.AsSpan(i * vocab, vocab);
                double max = double.NegativeInfinity;
                foreach (float x in row) max = Math.Max(max, x);
                double sum = 0;
                foreach (float x in row) sum += Math.Exp(x - max);
                nll += max + Math.Log(sum) - row[tokens[c * ctx + i + 1]];
                scored++;
            }
        }
        double expected = Math.Exp(nll / scored);
        Assert.Equal(chunks, json.GetProperty("n_chunks").GetInt32());
        Assert.Equal(scored, json.GetProperty("n_scored").GetInt32());
        Assert.Equal(tokens.Length, json.GetProperty("n_tokens").GetInt32());
        double ppl = json.GetProperty("ppl").GetDouble();
        Assert.True(Math.Abs(ppl - expected) <= 1e-4 * expected, $"eval {ppl}, computed here {expected}");
    }

    [OnnxRuntimeFact(Gpt2Dir + "/past.onnx", Gpt2Dir + "/tokenizer.json", Shakespeare)]
    public void Onnx_lm_whose_tokenizer_outgrows_its_logits_is_refused_naming_the_token()
    {
        var r = CliRunner.Run("eval", SharedData.Require(Gpt2Dir + "/past.onnx"), "--text", SharedData.Require(Shakespeare), "--ctx", "64",
            "--threads", "1");
        Assert.Equal(2, r.ExitCode);
        Assert.Single(r.ErrorLines);
        Assert.Contains("outside the vocabulary of 1000", r.StdErr);
    }

    /// <summary>Keeps ids below <paramref name="vocab"/> and the merges among them; returns the merges kept.</summary>
    private static int WriteTruncatedTokenizer(string source, string destination, int vocab)
    {
        var root = JsonNode.Parse(File.ReadAllText(source))!.AsObject();
        var model = root["model"]!.AsObject();
        var kept = new JsonObject();
        foreach (var (token, id) in model["vocab"]!.AsObject())
            if (id!.GetValue<int>() < vocab) kept[token] = id.GetValue<int>();
        var merges = new JsonArray();
        foreach (var m in model["merges"]!.AsArray())
        {
            var parts = m!.GetValue<string>().Split(' ');
            if (parts.Length == 2 && kept.ContainsKey(parts[0]) && kept.ContainsKey(parts[1]) && kept.ContainsKey(parts[0] + parts[1]))
                merges.Add(m.GetValue<string>());
        }
        model["vocab"] = kept;
        model["merges"] = merges;
        root["added_tokens"] = new JsonArray();
        File.WriteAllText(destination, root.ToJsonString());
        return merges.Count;
    }

    /// <summary>One Run over the whole sequence from an empty KV cache; logits [n, vocab].</summary>
    private static float[] FullSequenceLogits(OrtSession session, ReadOnlySpan<int> ids, out int vocab)
    {
        int n = ids.Length;
        var values = new List<OrtValue>();
        try
        {
            var inputs = new List<KeyValuePair<string, OrtValue>>();
            foreach (var input in session.Inputs)
            {
                OrtValue value;
                if (input.Name == "input_ids") value = Ids(input, ids.ToArray());
                else if (input.Name == "attention_mask") value = Ids(input, Enumerable.Repeat(1, n).ToArray());
                else if (input.Name == "position_ids") value = Ids(input, Enumerable.Range(0, n).ToArray());
                else if (input.Name.StartsWith("past", StringComparison.Ordinal))
                {
                    var shape = input.Shape.Select((d, i) => i == input.Shape.Count - 2 ? 0 : d < 0 ? 1 : d).ToArray();
                    value = OrtValue.Allocate(input.ElementType, shape);
                }
                else throw new InvalidOperationException($"unexpected input {input}");
                values.Add(value);
                inputs.Add(KeyValuePair.Create(input.Name, value));
            }
            using var result = session.Run(inputs, ["logits"]);
            var logits = result["logits"];
            Assert.Equal([1L, n], logits.Shape.Take(2));
            vocab = checked((int)logits.Shape[2]);
            return logits.GetTensorData<float>().ToArray();
        }
        finally
        {
            foreach (var v in values) v.Dispose();
        }
    }

    private static OrtValue Ids(OrtNodeInfo input, int[] ids) => input.ElementType == OrtElementType.Int64
        ? OrtValue.CreateTensor(ids.Select(i => (long)i).ToArray(), [1, ids.Length])
        : OrtValue.CreateTensor(ids, [1, ids.Length]);

    [GeneratedRegex(@"^PPL = (\d+\.\d{4}) ± (\d+\.\d{4})$", RegexOptions.Multiline)]
    private static partial Regex PplLine();
}
