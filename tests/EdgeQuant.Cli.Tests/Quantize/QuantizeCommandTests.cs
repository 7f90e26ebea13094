using System.Runtime.InteropServices;
using System.Text.Json;
using EdgeQuant.Cli.Tests.Infrastructure;
using EdgeQuant.Compression.GgufQuant;
using EdgeQuant.Compression.Imatrix;
using EdgeQuant.Core.Tensors;
using EdgeQuant.Export;
using EdgeQuant.Fixtures;
using EdgeQuant.Formats.Gguf;
using EdgeQuant.Models;
using EdgeQuant.Testing;

namespace EdgeQuant.Cli.Tests.Quantize;

/// <summary><c>edgequant quantize</c>: the library quantizer's bytes, the per-tensor report, and exit-2 refusals that leave nothing behind.</summary>
public sealed class QuantizeCommandTests : IDisposable
{
    private readonly TempDir _dir = new("eqquant");

    public void Dispose() => _dir.Dispose();

    private static readonly FixtureSpec Llama = new() { Layers = 2, Embd = 256, Heads = 4, KvHeads = 2, Ffn = 512, Vocab = 300, Untied = true, Dtype = FixtureDtype.F16, Seed = 71 };

    private FixtureResult Fixture(string name = "fx") => FixtureMaker.Write(Llama, _dir.File(name), FixtureFormats.Both);

    private static void AssertOnlyEntries(string folder, params string[] names) =>
        Assert.Equal(names.Order(), Directory.EnumerateFileSystemEntries(folder).Select(Path.GetFileName).Order());

    [Fact]
    public void Writes_the_library_quantizers_bytes_and_reports_every_tensor()
    {
        var fx = Fixture();
        var cli = _dir.File("cli.gguf");
        var lib = _dir.File("lib.gguf");
        var r = CliRunner.Run("quantize", fx.GgufPath!, "-o", cli, "--type", "q4_k_m", "--json");
        Assert.True(r.ExitCode == 0, r.ToString());
        string expectedHash;
        using (var m = ModelLoader.Load(fx.GgufPath!))
        {
            GgufQuantizer.Quantize(m, lib, new GgufQuantizeOptions { FileType = QuantFileTypes.Parse("Q4_K_M") });
            // The hash computed during the pass equals a separate pass over the source tensors in the file's order.
            var order = QuantizationPolicy.LlamaQuantizeOrder(m.Tensors.Select(t => t.Name).ToList()).Select(i => m.Tensors[i]);
            expectedHash = GgufExporter.SourceSha256(order);
        }
        Assert.Equal(File.ReadAllBytes(lib), File.ReadAllBytes(cli));

        using var doc = JsonDocument.Parse(r.StdOut);
        var root = doc.RootElement;
        Assert.Equal("Q4_K_M", root.GetProperty("type").GetString());
        Assert.Equal(new FileInfo(cli).Length, root.GetProperty("file_bytes").GetInt64());
        Assert.Equal(expectedHash, root.GetProperty("source_sha256").GetString());
        using var gguf = GgufReader.Read(cli);
        Assert.Equal(expectedHash, gguf.Find(GgufExporter.SourceHashKey)?.AsString());
        var reported = root.GetProperty("tensors").EnumerateArray().ToDictionary(t => t.GetProperty("name").GetString()!, t => t.GetProperty("type").GetString());
        Assert.Equal(gguf.Tensors.Count, reported.Count);
        foreach (var t in gguf.Tensors) Assert.Equal(TensorTypes.Get(t.Type).Name, reported[t.Name]);
        // A K-quant mix: most weights Q4_K, some (attn_v/ffn_down of the use_more_bits layers, the output) more bits.
        Assert.Contains(gguf.Tensors, t => t.Type == TensorType.Q4_K);
        Assert.Contains(gguf.Tensors, t => t.Type == TensorType.Q6_K);
    }

    [Fact]
    public void An_hf_folder_quantizes_to_the_same_file_as_its_gguf_export()
    {
        var fx = Fixture();
        string fromHf = _dir.File("hf.gguf"), fromGguf = _dir.File("gguf.gguf");
        Assert.Equal(0, CliRunner.Run("quantize", fx.HuggingFaceDir!, "-o", fromHf, "--type", "Q8_0").ExitCode);
        Assert.Equal(0, CliRunner.Run("quantize", fx.GgufPath!, "-o", fromGguf, "--type", "Q8_0").ExitCode);
        using var a = GgufReader.Read(fromHf);
        using var b = GgufReader.Read(fromGguf);
        Assert.Equal(b.Tensors.Select(t => (t.Name, t.Type)), a.Tensors.Select(t => (t.Name, t.Type)));
        foreach (var t in b.Tensors) Assert.True(a.TensorData(a.FindTensor(t.Name)!).SequenceEqual(b.TensorData(t)), t.Name);
    }

    [Fact]
    public void Imatrix_is_used_and_its_hash_recorded()
    {
        var fx = Fixture();
        var rng = new Random(3);
        ImportanceMatrix im;
        using (var m = ModelLoader.Load(fx.GgufPath!))
            im = ImportanceMatrix.FromSums(m.Tensors.Where(t => t.Shape.Length == 2 && t.Name != "token_embd.weight")
                .Select(t => (t.Name, Enumerable.Range(0, (int)t.Shape[1]).Select(_ => (float)rng.NextDouble() * 4).ToArray(), new long[] { 2 })), ["test.txt"], 5, 64);
        var imPath = _dir.File("test.imatrix");
        im.Write(imPath);
        var read = ImportanceMatrix.Read(imPath);

        string plain = _dir.File("plain.gguf"), weighted = _dir.File("weighted.gguf");
        Assert.Equal(0, CliRunner.Run("quantize", fx.GgufPath!, "-o", plain, "--type", "Q4_K_M").ExitCode);
        var r = CliRunner.Run("quantize", fx.GgufPath!, "-o", weighted, "--type", "Q4_K_M", "--imatrix", imPath, "--json");
        Assert.True(r.ExitCode == 0, r.ToString());
        using var doc = JsonDocument.Parse(r.StdOut);
        Assert.Equal(read.ContentSha256, doc.RootElement.GetProperty("calibration_sha256").GetString());
        Assert.Contains(doc.RootElement.GetProperty("tensors").EnumerateArray(), t => t.GetProperty("imatrix").GetBoolean());

        using var a = GgufReader.Read(plain);
        using var b = GgufReader.Read(weighted);
        Assert.Equal(read.ContentSha256, b.Find(GgufQuantizer.CalibrationHashKey)?.AsString());
        Assert.Equal("test.imatrix", b.Find(GgufQuantizer.ImatrixFileKey)?.AsString());
        Assert.Null(a.Find(GgufQuantizer.CalibrationHashKey));
        // The weights change where an importance applied, and only there.
        Assert.False(a.TensorData("blk.0.attn_q.weight").SequenceEqual(b.TensorData("blk.0.attn_q.weight")));
        Assert.True(a.TensorData("token_embd.weight").SequenceEqual(b.TensorData("token_embd.weight")));
    }

    [Fact]
    public void Output_equal_to_input_and_existing_output_are_exit_2()
    {
        var fx = Fixture();
        var before = File.ReadAllBytes(fx.GgufPath!);
        var same = CliRunner.Run("quantize", fx.GgufPath!, "-o", fx.GgufPath!, "--type", "Q8_0", "--force");
        Assert.Equal(2, same.ExitCode);
        Assert.Contains("the output is the input", same.StdErr);
        Assert.Equal(before, File.ReadAllBytes(fx.GgufPath!));

        var target = _dir.File("exists.gguf");
        File.WriteAllText(target, "keep me");
        var r = CliRunner.Run("quantize", fx.GgufPath!, "-o", target, "--type", "Q8_0");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--force", r.StdErr);
        Assert.Equal("keep me", File.ReadAllText(target));
        Assert.Equal(0, CliRunner.Run("quantize", fx.GgufPath!, "-o", target, "--type", "Q8_0", "--force").ExitCode);
        AssertOnlyEntries(Path.GetDirectoryName(fx.GgufPath!)!, "model.gguf");
    }

    [Fact]
    public void Unsupported_architecture_is_exit_2()
    {
        var src = _dir.File("falcon");
        Directory.CreateDirectory(src);
        File.WriteAllText(Path.Combine(src, "config.json"),
            """{"architectures": ["FalconForCausalLM"], "model_type": "falcon", "hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 2, "vocab_size": 300}""");
        var outDir = _dir.File("out");
        Directory.CreateDirectory(outDir);
        var r = CliRunner.Run("quantize", src, "-o", Path.Combine(outDir, "x.gguf"), "--type", "Q4_0");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("falcon", r.StdErr, StringComparison.OrdinalIgnoreCase);
        AssertOnlyEntries(outDir);
    }

    /// <summary>A copy of the fixture GGUF with one tensor replaced (same name and type, other shape or values).</summary>
    private string Tampered(string source, string name, Func<GgufTensorInfo, (long[] Shape, byte[] Data)> change)
    {
        var path = _dir.File($"tampered-{Guid.NewGuid():N}.gguf");
        using var file = GgufReader.Read(source);
        var tensors = file.Tensors.Select(t =>
        {
            if (t.Name != name) return GgufTensorToWrite.FromBytes(t.Name, t.Type, t.Shape, file.TensorData(t).ToArray());
            var (shape, data) = change(t);
            return GgufTensorToWrite.FromBytes(t.Name, t.Type, shape, data);
        }).ToList();
        GgufWriter.Write(path, file.Metadata.Select(kv => new KeyValuePair<string, GgufValue>(kv.Key, kv.Value)), tensors);
        return path;
    }

    [Fact]
    public void Non_finite_weight_is_refused_unless_allowed()
    {
        var fx = Fixture();
        var bad = Tampered(fx.GgufPath!, "blk.1.ffn_up.weight", t =>
        {
            var data = File.ReadAllBytes(fx.GgufPath!).AsSpan((int)t.AbsoluteOffset, (int)t.ByteLength).ToArray();
            MemoryMarshal.Cast<byte, Half>(data.AsSpan())[1234] = Half.NaN;
            return (t.Shape, data);
        });
        var outDir = _dir.File("nan-out");
        Directory.CreateDirectory(outDir);
        var r = CliRunner.Run("quantize", bad, "-o", Path.Combine(outDir, "x.gguf"), "--type", "Q4_K_M");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("blk.1.ffn_up.weight", r.StdErr);
        Assert.Contains("1234", r.StdErr);
        Assert.Contains("--allow-nonfinite", r.StdErr);
        AssertOnlyEntries(outDir);
        Assert.Equal(0, CliRunner.Run("quantize", bad, "-o", Path.Combine(outDir, "x.gguf"), "--type", "Q4_K_M", "--allow-nonfinite").ExitCode);
    }

    [Fact]
    public void Tensor_shape_contradicting_the_config_is_exit_2()
    {
        var fx = Fixture();
        var bad = Tampered(fx.GgufPath!, "blk.0.ffn_down.weight", t => ([t.Shape[0], t.Shape[1] / 2], new byte[t.ByteLength / 2]));
        var outDir = _dir.File("shape-out");
        Directory.CreateDirectory(outDir);
        var r = CliRunner.Run("quantize", bad, "-o", Path.Combine(outDir, "x.gguf"), "--type", "Q4_0");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("blk.0.ffn_down.weight", r.StdErr);
        AssertOnlyEntries(outDir);
    }

    [Fact]
    public void Requantizing_needs_allow_requantize()
    {
        var fx = Fixture();
        var q8 = _dir.File("q8.gguf");
        Assert.Equal(0, CliRunner.Run("quantize", fx.GgufPath!, "-o", q8, "--type", "Q8_0").ExitCode);
        var r = CliRunner.Run("quantize", q8, "-o", _dir.File("q4.gguf"), "--type", "Q4_0");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--allow-requantize", r.StdErr);
        Assert.False(File.Exists(_dir.File("q4.gguf")));
        Assert.Equal(0, CliRunner.Run("quantize", q8, "-o", _dir.File("q4.gguf"), "--type", "Q4_0", "--allow-requantize").ExitCode);
    }

    [Theory]
    [InlineData("--type", "Q9_K", "--type")]
    [InlineData("--tensor-type", "attn_v", "--tensor-type")]
    [InlineData("--tensor-type", "attn_v=q9", "--tensor-type")]
    [InlineData("--tensor-type", "([=q8_0", "--tensor-type")]
    [InlineData("--output-tensor-type", "int3", "--output-tensor-type")]
    [InlineData("--threads", "-3", "--threads")]
    public void Bad_option_values_are_exit_2(string option, string value, string named)
    {
        var fx = Fixture();
        var outDir = _dir.File("bad");
        Directory.CreateDirectory(outDir);
        var args = new List<string> { "quantize", fx.GgufPath!, "-o", Path.Combine(outDir, "x.gguf") };
        if (option != "--type") args.AddRange(["--type", "Q4_0"]);
        args.AddRange([option, value]);
        var r = CliRunner.Run([.. args]);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains(named, r.StdErr);
        AssertOnlyEntries(outDir);
    }

    [Fact]
    public void Imatrix_of_another_model_is_exit_2()
    {
        var fx = Fixture();
        var im = ImportanceMatrix.FromSums([("blk.0.attn_q.weight", new float[100], new long[] { 1 })], [], 1, 1);
        var imPath = _dir.File("other.imatrix");
        im.Write(imPath);
        var outDir = _dir.File("im-out");
        Directory.CreateDirectory(outDir);
        var r = CliRunner.Run("quantize", fx.GgufPath!, "-o", Path.Combine(outDir, "x.gguf"), "--type", "Q4_K_M", "--imatrix", imPath);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("blk.0.attn_q.weight", r.StdErr);
        AssertOnlyEntries(outDir);
    }

    [Fact]
    public void Cancellation_leaves_no_file_behind()
    {
        var fx = Fixture();
        var outDir = _dir.File("cancel");
        Directory.CreateDirectory(outDir);
        using var cts = new CancellationTokenSource();
        using var model = ModelLoader.Load(fx.GgufPath!);
        Assert.ThrowsAny<OperationCanceledException>(() => GgufQuantizer.Quantize(model, Path.Combine(outDir, "x.gguf"), new GgufQuantizeOptions
        {
            FileType = QuantFileTypes.Parse("Q4_K_M"),
            TensorWritten = (done, _, _) => { if (done == 3) cts.Cancel(); },
        }, cts.Token));
        AssertOnlyEntries(outDir);
    }

    [Fact]
    public void Help_matches_the_approved_snapshot()
    {
        var r = CliRunner.Run("quantize", "--help");
        Assert.Equal(0, r.ExitCode);
        Approvals.Verify("help.quantize", r.StdOut);
    }
}
