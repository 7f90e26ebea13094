using System.Text.Json;
using EdgeQuant.Cli.Tests.Infrastructure;
using EdgeQuant.Testing;

namespace EdgeQuant.Cli.Tests.Inspect;

/// <summary>
/// <c>inspect --json</c> on the real stories260K twins through the real process: the figures the data README states
/// (dim 64, 5 layers, 8 heads, 4 KV heads, FFN 172, vocab 512) and the same tensor table in both formats.
/// </summary>
public class InspectSharedDataTests
{
    private const string Gguf = "models/stories260K/stories260K.gguf";
    private const string Bin = "models/stories260K/stories260K.bin";
    private const string Tok = "models/stories260K/tok512.bin";

    private static JsonElement InspectJson(params string[] args)
    {
        var r = CliProcess.Run(["inspect", .. args, "--json"]);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Equal("", r.StdErr);
        return JsonDocument.Parse(r.StdOut).RootElement.Clone();
    }

    private static void AssertStories260KArchitecture(JsonElement report)
    {
        Assert.Equal("llama", report.GetProperty("architecture").GetString());
        var hp = report.GetProperty("hyperparameters");
        Assert.Equal(64, hp.GetProperty("embedding_length").GetInt32());
        Assert.Equal(5, hp.GetProperty("block_count").GetInt32());
        Assert.Equal(8, hp.GetProperty("head_count").GetInt32());
        Assert.Equal(4, hp.GetProperty("head_count_kv").GetInt32());
        Assert.Equal(172, hp.GetProperty("feed_forward_length").GetInt32());
        Assert.Equal(512, hp.GetProperty("vocab_size").GetInt32());
        var tok = report.GetProperty("tokenizer");
        Assert.Equal("llama", tok.GetProperty("kind").GetString());
        Assert.Equal(512, tok.GetProperty("size").GetInt32());
    }

    private static List<(string Name, long[] Shape, string Dtype)> TensorTable(JsonElement report) =>
        report.GetProperty("tensors").EnumerateArray()
            .Select(t => (t.GetProperty("name").GetString()!,
                t.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()).ToArray(),
                t.GetProperty("dtype").GetString()!))
            .ToList();

    [SharedDataFact(Gguf, Bin, Tok)]
    public void Gguf_and_llama2c_twins_report_the_same_architecture_and_tensors()
    {
        var gguf = InspectJson(SharedData.Require(Gguf));
        var bin = InspectJson(SharedData.Require(Bin), "--tokenizer", SharedData.Require(Tok));
        Assert.Equal("gguf", gguf.GetProperty("format").GetString());
        Assert.Equal("llama2c", bin.GetProperty("format").GetString());
        AssertStories260KArchitecture(gguf);
        AssertStories260KArchitecture(bin);

        var a = TensorTable(gguf);
        var b = TensorTable(bin);
        Assert.Equal(a.Select(t => t.Name), b.Select(t => t.Name));
        for (var i = 0; i < a.Count; i++)
        {
            Assert.Equal(a[i].Shape, b[i].Shape);
            Assert.Equal(a[i].Dtype, b[i].Dtype);
        }
        // 5 blocks of 9 tensors plus token_embd, output_norm and output.
        Assert.Equal(5 * 9 + 3, a.Count);
        Assert.Contains(a, t => t.Name == "blk.4.ffn_down.weight" && t.Shape.SequenceEqual([64L, 172L]));
        Assert.Contains(a, t => t.Name == "blk.0.attn_k.weight" && t.Shape.SequenceEqual([32L, 64L]));
    }

    [SharedDataFact(Bin, Tok)]
    public void The_llama2c_shared_classifier_is_listed_but_counted_once()
    {
        var bin = InspectJson(SharedData.Require(Bin));
        var tensors = bin.GetProperty("tensors").EnumerateArray().ToList();
        var output = tensors.Single(t => t.GetProperty("name").GetString() == "output.weight");
        Assert.Equal("token_embd.weight", output.GetProperty("alias_of").GetString());
        var unique = tensors.Where(t => !t.TryGetProperty("alias_of", out _)).Sum(t => t.GetProperty("elements").GetInt64());
        Assert.Equal(unique, bin.GetProperty("parameter_count").GetInt64());
        // llama2.c's legacy file is the 28-byte header, the F32 weights each stored once, and the unused RoPE tables
        // freq_cis_real/imag (seq_len x head_dim/2 floats each), which are not tensors of the model.
        var hp = bin.GetProperty("hyperparameters");
        var freqCisBytes = 2L * hp.GetProperty("context_length").GetInt32() * (hp.GetProperty("head_dim").GetInt32() / 2) * 4;
        Assert.Equal(new FileInfo(SharedData.Require(Bin)).Length - 28 - freqCisBytes, bin.GetProperty("tensor_bytes").GetInt64());
    }

    [SharedDataFact(Gguf)]
    public void Stats_over_the_real_gguf_agree_with_a_reference_computed_from_the_file()
    {
        var report = InspectJson(SharedData.Require(Gguf), "--stats");
        using var model = EdgeQuant.Models.ModelLoader.Load(SharedData.Require(Gguf));
        foreach (var t in report.GetProperty("tensors").EnumerateArray())
        {
            var x = model.Get(t.GetProperty("name").GetString()!).ToFloat32();
            var s = t.GetProperty("stats");
            var mean = x.Sum(v => (double)v) / x.Length;
            var std = Math.Sqrt(x.Sum(v => (v - mean) * (v - mean)) / x.Length);
            Assert.Equal(x.Min(), s.GetProperty("min").GetSingle());
            Assert.Equal(x.Max(), s.GetProperty("max").GetSingle());
            var scale = x.Max(v => Math.Abs((double)v));
            Assert.InRange(s.GetProperty("mean").GetDouble() - mean, -1e-6 * scale, 1e-6 * scale);
            Assert.InRange(s.GetProperty("std").GetDouble() - std, -1e-6 * scale, 1e-6 * scale);
            Assert.Equal((double)x.Count(v => v == 0) / x.Length, s.GetProperty("sparsity").GetDouble(), 12);
        }
    }

    [SharedDataFact(Gguf)]
    public void Table_output_lists_every_tensor()
    {
        var r = CliProcess.Run("inspect", SharedData.Require(Gguf));
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("blk.4.ffn_norm.weight", r.StdOut);
        Assert.Contains("[172, 64]", r.StdOut);
        Assert.DoesNotContain(r.StdOut.Split('\n'), l => l.EndsWith(' '));
    }
}
