using System.Text.Json;
using EdgeQuant.Cli.Tests.Eval;
using EdgeQuant.Cli.Tests.Infrastructure;
using EdgeQuant.Formats.Onnx.Proto;
using EdgeQuant.Testing;

namespace EdgeQuant.Cli.Tests.Export;

/// <summary><c>edgequant export --format onnx --dtype fp16 --no-kv-cache</c>: what the folder holds, and the refusals.</summary>
public sealed class OnnxExportOptionsCommandTests : IDisposable
{
    private const string Gguf = "models/stories260K/stories260K.gguf";
    private const string Text = "corpus/tinystories-sample.txt";

    private readonly TempDir _dir = new("eqonnxopt");

    public void Dispose() => _dir.Dispose();

    [OnnxRuntimeFact(Gguf, Text)]
    public void Fp16_without_kv_cache_writes_half_the_bytes_and_evaluates_in_onnx_runtime()
    {
        string fp32 = _dir.File("fp32"), fp16 = _dir.File("fp16");
        var a = CliRunner.Run("export", SharedData.Require(Gguf), "--format", "onnx", "-o", fp32, "--dtype", "fp32", "--kv-cache", "--json");
        Assert.True(a.ExitCode == 0, a.ToString());
        var b = CliRunner.Run("export", SharedData.Require(Gguf), "--format", "onnx", "-o", fp16, "--dtype", "fp16", "--no-kv-cache", "--json");
        Assert.True(b.ExitCode == 0, b.ToString());
        Assert.Equal("F16", JsonDocument.Parse(b.StdOut).RootElement.GetProperty("file_type").GetString());
        Assert.Equal("F32", JsonDocument.Parse(a.StdOut).RootElement.GetProperty("file_type").GetString());

        var graph32 = ModelProto.Parser.ParseFrom(File.ReadAllBytes(Path.Combine(fp32, "model.onnx"))).Graph;
        var graph16 = ModelProto.Parser.ParseFrom(File.ReadAllBytes(Path.Combine(fp16, "model.onnx"))).Graph;
        Assert.Contains(graph32.Input, i => i.Name == "past_key_values.0.key");
        Assert.Equal(["input_ids", "attention_mask", "position_ids"], graph16.Input.Select(i => i.Name));
        Assert.Equal(["logits"], graph16.Output.Select(o => o.Name));
        double ratio = (double)new FileInfo(Path.Combine(fp16, "model.onnx")).Length / new FileInfo(Path.Combine(fp32, "model.onnx")).Length;
        Assert.InRange(ratio, 0.45, 0.6);

        // The cacheless FP16 graph runs under eval (the runner re-feeds each chunk whole); FP16 weights move the
        // perplexity only slightly.
        double Ppl(string model, string runtime)
        {
            var r = CliRunner.Run("eval", model, "--text", SharedData.Require(Text), "--ctx", "128", "--chunks", "4",
                "--runtime", runtime, "--threads", "1", "--json");
            Assert.True(r.ExitCode == 0, r.ToString());
            return JsonDocument.Parse(r.StdOut).RootElement.GetProperty("ppl").GetDouble();
        }
        double engine = Ppl(SharedData.Require(Gguf), "engine");
        double ort = Ppl(Path.Combine(fp16, "model.onnx"), "onnxruntime");
        Assert.True(Math.Abs(ort / engine - 1) <= 0.01, $"FP16 ONNX PPL {ort} vs FP32 engine {engine}");
    }

    [Theory]
    [InlineData("--dtype bf16", "not one of fp32, fp16")]
    [InlineData("--kv-cache --no-kv-cache", "contradict")]
    [InlineData("--attention-blocks 17", "--attention-blocks: 17 is outside 1..16")]
    [InlineData("--attention-blocks 2 --fused-attention", "--attention-blocks applies to standard-op attention")]
    public void Bad_onnx_options_exit_2_without_output(string extra, string message)
    {
        var args = new List<string> { "export", "missing-model.gguf", "--format", "onnx", "-o", _dir.File("o") };
        args.AddRange(extra.Split(' '));
        var r = CliRunner.Run(args.ToArray());
        Assert.Equal(2, r.ExitCode);
        Assert.Contains(message, r.StdErr);
        Assert.False(Directory.Exists(_dir.File("o")));
    }

    [Fact]
    public void Fused_attention_is_refused_for_other_formats()
    {
        var r = CliRunner.Run("export", "missing-model.gguf", "--format", "hf", "-o", _dir.File("o"), "--fused-attention");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--fused-attention applies to --format onnx", r.StdErr);
        Assert.False(Directory.Exists(_dir.File("o")));
    }

    /// <summary>stories260K's heads are 8 wide; ORT's GroupQueryAttention takes multiples of 16, so the export says so.</summary>
    [SharedDataFact(Gguf)]
    public void Fused_attention_with_a_head_size_ort_cannot_run_exits_2_without_output()
    {
        var r = CliRunner.Run("export", SharedData.Require(Gguf), "--format", "onnx", "-o", _dir.File("o"), "--fused-attention");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("head_dim 8 is not a multiple of 16", r.StdErr);
        Assert.False(Directory.Exists(_dir.File("o")));
    }

    [Fact]
    public void Onnx_options_are_refused_for_other_formats()
    {
        var r = CliRunner.Run("export", "missing-model.gguf", "--format", "gguf", "-o", _dir.File("o.gguf"), "--no-kv-cache");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--no-kv-cache applies to --format onnx", r.StdErr);
    }
}
