using System.Text.Json;
using EdgeQuant.Cli.Tests.Infrastructure;
using EdgeQuant.Core.Tensors;
using EdgeQuant.Models;

namespace EdgeQuant.Cli.Tests.Inspect;

/// <summary><c>inspect</c> on a hand-made model, in-process: JSON fields, statistics, and the table snapshot.</summary>
public class InspectInProcessTests
{
    private static readonly Func<string, string?, Model> Tiny = TestModels.Loader(() => TestModels.Tiny());

    [Fact]
    public void Json_reports_config_counts_and_tensors_of_the_model()
    {
        var r = CliRunner.Run(["inspect", TestModels.FakePath, "--json"], Tiny);
        Assert.Equal(0, r.ExitCode);
        Assert.Equal("", r.StdErr);
        using var doc = JsonDocument.Parse(r.StdOut);
        var root = doc.RootElement;
        using var model = TestModels.Tiny();
        var c = model.Config;

        Assert.Equal("gguf", root.GetProperty("format").GetString());
        Assert.Equal("llama", root.GetProperty("architecture").GetString());
        var hp = root.GetProperty("hyperparameters");
        Assert.Equal(c.EmbeddingLength, hp.GetProperty("embedding_length").GetInt32());
        Assert.Equal(c.BlockCount, hp.GetProperty("block_count").GetInt32());
        Assert.Equal(c.HeadCount, hp.GetProperty("head_count").GetInt32());
        Assert.Equal(c.HeadCountKv, hp.GetProperty("head_count_kv").GetInt32());
        Assert.Equal(c.FeedForwardLength, hp.GetProperty("feed_forward_length").GetInt32());
        Assert.Equal(c.VocabSize, hp.GetProperty("vocab_size").GetInt32());

        long expectedParams = 0, expectedBytes = 0;
        foreach (var t in model.Tensors)
        {
            expectedParams += t.Shape.Aggregate(1L, (a, b) => a * b);
            expectedBytes += t.Storage.Bytes.Length;
        }
        Assert.Equal(expectedParams, root.GetProperty("parameter_count").GetInt64());
        Assert.Equal(expectedBytes, root.GetProperty("tensor_bytes").GetInt64());

        var tensors = root.GetProperty("tensors").EnumerateArray().ToList();
        Assert.Equal(model.Tensors.Select(t => t.Name), tensors.Select(t => t.GetProperty("name").GetString()));
        for (var i = 0; i < tensors.Count; i++)
        {
            Assert.Equal(model.Tensors[i].Shape, tensors[i].GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()));
            Assert.Equal(model.Tensors[i].Storage.Bytes.Length, tensors[i].GetProperty("bytes").GetInt64());
            Assert.False(tensors[i].TryGetProperty("stats", out _), "stats only with --stats");
        }

        // Bytes per dtype, summed independently from the stored bytes.
        var perDtype = root.GetProperty("bytes_per_dtype").EnumerateArray()
            .ToDictionary(e => e.GetProperty("dtype").GetString()!, e => e.GetProperty("bytes").GetInt64());
        var expectedPerDtype = model.Tensors.GroupBy(t => TensorTypes.Get(t.Type).Name)
            .ToDictionary(g => g.Key, g => g.Sum(t => (long)t.Storage.Bytes.Length));
        Assert.Equal(expectedPerDtype.OrderBy(kv => kv.Key), perDtype.OrderBy(kv => kv.Key));

        var tok = root.GetProperty("tokenizer");
        Assert.Equal("llama", tok.GetProperty("kind").GetString());
        Assert.Equal(c.VocabSize, tok.GetProperty("size").GetInt32());
    }

    [Fact]
    public void Stats_match_a_double_precision_reference_computed_here()
    {
        var r = CliRunner.Run(["inspect", TestModels.FakePath, "--json", "--stats"], Tiny);
        Assert.Equal(0, r.ExitCode);
        using var doc = JsonDocument.Parse(r.StdOut);
        using var model = TestModels.Tiny();
        var tensors = doc.RootElement.GetProperty("tensors").EnumerateArray().ToList();
        for (var i = 0; i < model.Tensors.Count; i++)
        {
            var t = model.Tensors[i];
            var json = tensors[i];
            if (t.Type == TensorType.I32)
            {
                Assert.False(json.TryGetProperty("stats", out _));
                Assert.Contains("I32", json.GetProperty("stats_error").GetString());
                continue;
            }
            var s = json.GetProperty("stats");
            var x = t.ToFloat32();
            var nonFinite = x.Count(v => !float.IsFinite(v));
            Assert.Equal(nonFinite, s.GetProperty("non_finite").GetInt64());
            Assert.Equal((double)x.Count(v => v == 0f) / x.Length, s.GetProperty("sparsity").GetDouble(), 12);
            if (nonFinite > 0)
            {
                // NaN propagates: serialized as the string "NaN".
                Assert.Equal("NaN", s.GetProperty("mean").GetString());
                Assert.Equal("NaN", s.GetProperty("min").GetString());
                continue;
            }
            var mean = x.Sum(v => (double)v) / x.Length;
            var std = Math.Sqrt(x.Sum(v => ((double)v - mean) * ((double)v - mean)) / x.Length);
            Assert.Equal(x.Min(), s.GetProperty("min").GetSingle());
            Assert.Equal(x.Max(), s.GetProperty("max").GetSingle());
            // Float sums over 1024-element runs accumulated in double: relative error well under 1e-6 of the
            // values' magnitude; compare to 1e-6 of the largest magnitude.
            var scale = Math.Max(x.Max(v => Math.Abs((double)v)), 1e-30);
            Assert.InRange(s.GetProperty("mean").GetDouble() - mean, -1e-6 * scale, 1e-6 * scale);
            Assert.InRange(s.GetProperty("std").GetDouble() - std, -1e-6 * scale, 1e-6 * scale);
        }
    }

    [Fact]
    public void Table_output_matches_the_approved_snapshot()
    {
        var r = CliRunner.Run(["inspect", TestModels.FakePath, "--stats"], Tiny);
        Assert.Equal(0, r.ExitCode);
        Assert.Equal("", r.StdErr);
        Approvals.Verify("inspect.tiny.stats", r.StdOut);
    }

    [Fact]
    public void Json_mode_writes_only_json_on_stdout_even_with_live_progress_on_stderr()
    {
        var console = new TestConsole { IsErrorTerminal = true };
        var r = CliRunner.Run(["inspect", TestModels.FakePath, "--json", "--stats"], Tiny, console: console);
        Assert.Equal(0, r.ExitCode);
        using var doc = JsonDocument.Parse(r.StdOut); // throws on anything but one JSON document
        Assert.Equal(JsonValueKind.Object, doc.RootElement.ValueKind);
        Assert.Contains("tensor statistics", r.StdErr);
    }

    [Fact]
    public void Redirected_stderr_gets_no_progress()
    {
        var r = CliRunner.Run(["inspect", TestModels.FakePath, "--stats"], Tiny);
        Assert.Equal("", r.StdErr);
    }

    [Fact]
    public void Tokenizer_option_on_a_non_llama2c_model_warns_on_stderr_only()
    {
        using var dir = new Testing.TempDir();
        var tok = dir.File("tok.bin");
        File.WriteAllBytes(tok, [0]);
        var r = CliRunner.Run(["inspect", TestModels.FakePath, "--json", "--tokenizer", tok], Tiny);
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("warning", Assert.Single(r.ErrorLines));
        using var _ = JsonDocument.Parse(r.StdOut);
    }
}
