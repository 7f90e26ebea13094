using EdgeQuant.Compression.OnnxQuant;
using EdgeQuant.Export.Onnx;
using EdgeQuant.Export.Onnx.Quant;
using EdgeQuant.Fixtures;
using EdgeQuant.Formats.Onnx.Proto;
using EdgeQuant.Models;
using EdgeQuant.Models.Engine;
using EdgeQuant.Runtimes.OnnxRuntime;
using EdgeQuant.Testing;
using Google.Protobuf;
using Xunit.Abstractions;
using DataType = EdgeQuant.Formats.Onnx.Proto.TensorProto.Types.DataType;

namespace EdgeQuant.Export.Tests.Onnx;

/// <summary>
/// 4-bit weight-only export: EdgeQuant's packing run by the real ONNX Runtime MatMulNBits kernel, and whole decoders
/// exported with <see cref="MatMulNBitsLowering"/> compared with the engine running <see cref="Int4FakeQuant"/>'s
/// weights.
/// </summary>
/// <remarks>
/// Debian's onnx 1.12 checker has no schema for com.microsoft ops: <c>check_model(full_check=True)</c> still checks the
/// whole graph's structure (every value defined before use, initializers, the standard ops and their shapes), but it
/// does not judge MatMulNBits' attributes or input shapes. ORT does, when it loads the model (its CheckInputs refuses
/// a wrong B/scales/zero_points shape), so the ORT runs below are the validator for those nodes.
/// </remarks>
public sealed class MatMulNBitsTests(ITestOutputHelper output)
{
    // x·dequant(W)ᵀ in ORT (float FMA over dequantized blocks) vs the same product in double here: only float rounding
    // of K ≤ 300 products separates them (~1e-7 measured); 1e-5 is the bound asked for.
    private const double KernelTolerance = 1e-5;

    // ORT on the exported graph vs the engine on the fake-quantized weights: same weights, both float, different
    // summation orders, as the FP32 export (OnnxExportTests' 1e-4).
    private const double LogitsTolerance = 1e-4;

    public static TheoryData<int, bool, int, int, bool> KernelCases => new()
    {
        { 32, true, 64, 8, false },
        { 32, false, 40, 7, true },   // K = 40: second block 8 real + 24 padding; odd N; bias
        { 32, true, 172, 5, false },  // stories260K's ffn_down width: 6 blocks, last one 12 real
        { 64, true, 172, 9, true },
        { 64, false, 172, 9, false },
        { 64, false, 64, 3, false },
        { 128, true, 300, 3, false }, // 3 blocks, last 44 real; odd block count (zero points: half a byte unused)
        { 128, false, 300, 3, true },
        { 128, false, 64, 11, false }, // K < block: one block, half padding
    };

    [OnnxExportTheory]
    [MemberData(nameof(KernelCases))]
    public void Ort_matmulnbits_on_our_blocks_equals_x_times_our_dequantized_weights(int block, bool symmetric, int k, int n, bool bias)
    {
        var rng = new Random(block * 1000 + k * 10 + n);
        var w = Enumerable.Range(0, n * k).Select(_ => (float)(rng.NextDouble() * 2 - 1) * (rng.NextDouble() < 0.02 ? 4 : 1)).ToArray();
        var biasValues = bias ? Enumerable.Range(0, n).Select(_ => (float)rng.NextDouble()).ToArray() : null;
        const int m = 6;
        var x = Enumerable.Range(0, m * k).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var q = Int4Quantization.Quantize(w, n, k, block, symmetric);
        var deq = q.Dequantize();

        using var b = new OnnxGraphBuilder("matmulnbits");
        b.Input("A", DataType.Float, "batch", "seq", (long)k);
        string? biasName = biasValues is null ? null : b.Initializer("w.bias", biasValues, n);
        var lowering = new MatMulNBitsLowering(new Int4WeightOptions { BlockSize = block, Symmetric = symmetric, Layers = new LayerSelection(includeLmHead: true) });
        string y = lowering.Emit(b, new OnnxLinear("blk.0.ffn_down", "A", w, n, k, biasName, "blk.0.ffn_down.weight"))!;
        b.Node("Identity", [y], ["Y"]);
        b.Output("Y", DataType.Float, "batch", "seq", (long)n);
        var proto = b.Build("test", "0");
        var node = proto.Graph.Node.Single(nd => nd.OpType == "MatMulNBits");
        Assert.Equal("com.microsoft", node.Domain);
        Assert.Contains(proto.OpsetImport, o => o.Domain == "com.microsoft" && o.Version == 1);
        Assert.Equal(symmetric ? 3 : 4, node.Input.Count(i => i.Length > 0) - (bias ? 1 : 0));
        using var temp = new TempDir("eq-nbits");
        var path = temp.File("m.onnx");
        OnnxGraphBuilder.Save(proto, path);
        OnnxChecker.Check(path);

        using var session = OrtSession.FromFile(path, new OrtSessionSettings { IntraOpThreads = 1 });
        using var a = OrtValue.CreateTensor(x, [2, m / 2, k]);
        using var result = session.Run(("A", a));
        var actual = result["Y"].GetTensorData<float>().ToArray();
        var expected = new float[m * n];
        for (int i = 0; i < m; i++)
            for (int o = 0; o < n; o++)
            {
                double s = biasValues?[o] ?? 0;
                for (int j = 0; j < k; j++) s += (double)x[i * k + j] * deq[o * k + j];
                expected[i * n + o] = (float)s;
            }
        double rel = Numbers.RelativeL2(actual, expected);
        // The quantized product must differ from the float one (it is 4-bit), by what 4-bit blocks cost.
        var exact = new float[m * n];
        for (int i = 0; i < m; i++)
            for (int o = 0; o < n; o++)
            {
                double s = biasValues?[o] ?? 0;
                for (int j = 0; j < k; j++) s += (double)x[i * k + j] * w[o * k + j];
                exact[i * n + o] = (float)s;
            }
        double quantError = Numbers.RelativeL2(actual, exact);
        output.WriteLine($"block {block} {(symmetric ? "sym" : "asym")} K {k} N {n}{(bias ? " bias" : "")}: ORT vs x·dequant(W) {rel:E2}; vs float W {quantError:E2}");
        Assert.InRange(rel, 0, KernelTolerance);
        Assert.InRange(quantError, 1e-3, 0.3);
    }

    [OnnxExportFact]
    public void Accuracy_level_4_would_quantize_activations_so_the_lowering_keeps_level_0()
    {
        // Why accuracy_level 0: ORT's CPU kernel computes in float at levels 0/1 (checked above to 1e-5), while level 4
        // (SQNBIT_CompInt8) rounds A to int8 per block first — a second error the weight-only fake quant does not model.
        const int k = 128, n = 16, m = 4;
        var rng = new Random(5);
        var w = Enumerable.Range(0, n * k).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var x = Enumerable.Range(0, m * k).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var deq = Int4Quantization.Quantize(w, n, k, 32, true).Dequantize();
        var expected = new float[m * n];
        for (int i = 0; i < m; i++)
            for (int o = 0; o < n; o++)
            {
                double s = 0;
                for (int j = 0; j < k; j++) s += (double)x[i * k + j] * deq[o * k + j];
                expected[i * n + o] = (float)s;
            }
        double Run(long level)
        {
            using var b = new OnnxGraphBuilder("level");
            b.Input("A", DataType.Float, "m", (long)k);
            var y = new MatMulNBitsLowering(new Int4WeightOptions { BlockSize = 32 }).Emit(b, new OnnxLinear("blk.0.attn_q", "A", w, n, k, null, "blk.0.attn_q.weight"))!;
            b.Node("Identity", [y], ["Y"]);
            b.Output("Y", DataType.Float, "m", (long)n);
            var proto = b.Build("test", "0");
            proto.Graph.Node.Single(nd => nd.OpType == "MatMulNBits").Attribute.Single(a => a.Name == "accuracy_level").I = level;
            using var session = OrtSession.FromBytes(proto.ToByteArray(), new OrtSessionSettings { IntraOpThreads = 1 });
            using var a = OrtValue.CreateTensor(x, [m, k]);
            using var result = session.Run(("A", a));
            return Numbers.RelativeL2(result["Y"].GetTensorData<float>().ToArray(), expected);
        }
        double level0 = Run(MatMulNBitsLowering.AccuracyLevel), level4 = Run(4);
        output.WriteLine($"ORT vs x·dequant(W): accuracy_level 0 {level0:E2}, 4 {level4:E2}");
        Assert.Equal(0, MatMulNBitsLowering.AccuracyLevel);
        Assert.InRange(level0, 0, KernelTolerance);
        Assert.True(level4 > 100 * level0, $"accuracy_level 4 gave {level4:E2}: no int8 activation rounding seen");
    }

    public static TheoryData<string, FixtureSpec, int, bool> Fixtures => new()
    {
        { "llama gqa tied, ffn 172", new FixtureSpec { Layers = 2, Embd = 64, Heads = 4, KvHeads = 2, Ffn = 172, Vocab = 300, Seed = 61 }, 32, true },
        { "llama untied, head included", new FixtureSpec { Layers = 2, Embd = 96, Heads = 4, KvHeads = 1, HeadDim = 32, Ffn = 80, Vocab = 320, Untied = true, Seed = 62 }, 64, false },
        { "qwen2 biases", new FixtureSpec { Arch = FixtureArch.Qwen2, Layers = 2, Embd = 96, Heads = 6, KvHeads = 2, Ffn = 120, Vocab = 300, RopeTheta = 1e6f, Seed = 63 }, 128, false },
        { "llama tied, head included", new FixtureSpec { Layers = 1, Embd = 64, Heads = 4, KvHeads = 2, Ffn = 96, Vocab = 300, Seed = 65 }, 32, false },
        { "gpt2 fused qkv", new FixtureSpec { Arch = FixtureArch.Gpt2, Layers = 2, Embd = 64, Heads = 4, KvHeads = 4, Ffn = 256, Vocab = 320, ContextLength = 64, Seed = 64 }, 32, false },
    };

    [OnnxExportTheory]
    [MemberData(nameof(Fixtures))]
    public void Exported_fixture_runs_matmulnbits_in_ort_and_matches_the_fake_quantized_engine(string name, FixtureSpec spec, int block, bool symmetric) =>
        CompareWithFakeQuant(name, spec, block, symmetric, fusedAttention: false);

    /// <summary>The same with attention as ORT's GroupQueryAttention (--fused-attention): the MatMulNBits lowering is unchanged.</summary>
    [OnnxExportTheory]
    [MemberData(nameof(Fixtures))]
    public void Fixture_with_fused_attention_runs_matmulnbits_and_matches_the_fake_quantized_engine(string name, FixtureSpec spec, int block, bool symmetric) =>
        CompareWithFakeQuant(name + ", fused attention", spec, block, symmetric, fusedAttention: true);

    private void CompareWithFakeQuant(string name, FixtureSpec spec, int block, bool symmetric, bool fusedAttention)
    {
        using var temp = new TempDir("eq-nbits");
        using var model = ModelLoader.Load(FixtureMaker.Write(spec, temp.Path, FixtureFormats.Gguf).GgufPath!);
        bool head = name.Contains("head included");
        var options = new Int4WeightOptions { BlockSize = block, Symmetric = symmetric, Layers = new LayerSelection(includeLmHead: head) };
        var lowering = new MatMulNBitsLowering(options);
        var r = OnnxExporter.Export(model, temp.File("onnx"), new OnnxExportOptions { Linear = lowering, FusedAttention = fusedAttention });
        OnnxChecker.Check(r.ModelPath);
        int perBlock = spec.Arch == FixtureArch.Gpt2 ? 6 : 7;
        Assert.Equal(spec.Layers * perBlock + (head ? 1 : 0), lowering.QuantizedLayers.Count);

        var tokens = Numbers.RandomTokens(24, spec.Vocab, (int)spec.Seed);
        using var fake = Int4FakeQuant.Create(model, options);
        Assert.Null(fake.Hook);
        // The embedding lookup stays float even when a tied LM head is quantized (the engine gets an untied copy).
        Assert.Equal(model.Get("token_embd.weight").ToFloat32(), fake.Model.Get("token_embd.weight").ToFloat32());
        Assert.Equal(head && !spec.Untied, model.Config.TiedEmbeddings && !fake.Model.Config.TiedEmbeddings);
        var expected = ReferenceEngine.Load(fake.Model, new EngineOptions { Threads = 1 }).CreateSession(tokens.Length).DecodeAll(tokens);
        var fp32 = ReferenceEngine.Load(model, new EngineOptions { Threads = 1 }).CreateSession(tokens.Length).DecodeAll(tokens);
        var optimized = temp.File("optimized.onnx");
        float[] actual;
        using (var session = OrtSession.FromFile(r.ModelPath, new OrtSessionSettings { IntraOpThreads = 1, OptimizedModelPath = optimized }))
        using (var runner = new OrtLogitsRunner(session))
        {
            actual = new float[tokens.Length * spec.Vocab];
            runner.Evaluate(tokens, 0, Enumerable.Range(0, tokens.Length).ToArray(), actual);
        }
        double rel = Numbers.RelativeL2(actual, expected), fromFp32 = Numbers.RelativeL2(actual, fp32);
        output.WriteLine($"{name}: ORT MatMulNBits vs fake-quant engine {rel:E2}; vs FP32 engine {fromFp32:E2}");
        Assert.InRange(rel, 0, LogitsTolerance);
        Assert.True(fromFp32 > 10 * rel, "the 4-bit model should differ from the FP32 one far more than from its simulation");
        AssertOptimizedGraphIsQuantized(optimized, lowering.QuantizedLayers);
    }

    /// <summary>
    /// ORT's optimized graph keeps one MatMulNBits per quantized layer, and no float MatMul/Gemm computes a quantized
    /// layer: the float matrix products left are attention's (q·kᵀ, p·v) and, when excluded, the LM head.
    /// </summary>
    internal static void AssertOptimizedGraphIsQuantized(string optimizedPath, IReadOnlyList<string> quantizedLayers)
    {
        var graph = ModelProto.Parser.ParseFrom(File.ReadAllBytes(optimizedPath)).Graph;
        var nbits = graph.Node.Where(nd => nd.OpType == "MatMulNBits").ToList();
        Assert.Equal(quantizedLayers.Count, nbits.Count);
        var weights = new HashSet<string>(graph.Initializer.Where(t => t.DataType == (int)DataType.Float).Select(t => t.Name));
        foreach (var nd in graph.Node.Where(nd => nd.OpType is "MatMul" or "Gemm" or "FusedMatMul"))
        {
            Assert.DoesNotContain(nd.Input, i => quantizedLayers.Any(l => i.StartsWith(l + ".", StringComparison.Ordinal) && weights.Contains(i)));
            bool attention = nd.Name.Contains("attn_scores") || nd.Name.Contains("attn_out") || nd.Input.Any(i => i.Contains("attn_probs") || i.Contains("attn_k"));
            bool head = nd.Input.Any(i => i == "output.weight" || i == "token_embd.weight") && !quantizedLayers.Contains("output");
            Assert.True(attention || head, $"float {nd.OpType} '{nd.Name}' ({string.Join(", ", nd.Input)}) is left in the optimized graph");
        }
    }

    [OnnxExportFact]
    public void Excluded_layers_stay_float_matmuls_in_export_and_in_the_fake_quant_model()
    {
        using var temp = new TempDir("eq-nbits");
        var spec = new FixtureSpec { Layers = 2, Embd = 64, Heads = 4, KvHeads = 2, Ffn = 96, Vocab = 300, Seed = 66 };
        using var model = ModelLoader.Load(FixtureMaker.Write(spec, temp.Path, FixtureFormats.Gguf).GgufPath!);
        var options = new Int4WeightOptions { BlockSize = 64, Layers = LayerSelection.Parse(@"ffn_down|blk\.1\.attn_v") };
        var lowering = new MatMulNBitsLowering(options);
        var r = OnnxExporter.Export(model, temp.File("onnx"), new OnnxExportOptions { Linear = lowering });
        Assert.Equal(2 * 7 - 3, lowering.QuantizedLayers.Count);
        Assert.DoesNotContain(lowering.QuantizedLayers, l => l.EndsWith("ffn_down") || l == "blk.1.attn_v");
        var graph = ModelProto.Parser.ParseFrom(File.ReadAllBytes(r.ModelPath)).Graph;
        Assert.Contains(graph.Node, nd => nd.OpType == "MatMul" && nd.Input.Contains("blk.1.ffn_down.weight"));
        Assert.Contains(graph.Node, nd => nd.OpType == "MatMul" && nd.Input.Contains("blk.1.attn_v.weight"));

        using var fake = Int4FakeQuant.Create(model, options);
        Assert.Equal(model.Get("blk.0.ffn_down.weight").ToFloat32(), fake.Model.Get("blk.0.ffn_down.weight").ToFloat32());
        Assert.Equal(model.Get("blk.1.attn_v.weight").ToFloat32(), fake.Model.Get("blk.1.attn_v.weight").ToFloat32());
        Assert.Equal(model.Get("token_embd.weight").ToFloat32(), fake.Model.Get("token_embd.weight").ToFloat32());
        var w = model.Get("blk.0.attn_v.weight").ToFloat32();
        Assert.Equal(Int4Quantization.QuantizeDequantize(w, 32, 64, 64, true), fake.Model.Get("blk.0.attn_v.weight").ToFloat32());
        Assert.NotEqual(w, fake.Model.Get("blk.0.attn_v.weight").ToFloat32());

        var tokens = Numbers.RandomTokens(16, spec.Vocab, 7);
        var expected = ReferenceEngine.Load(fake.Model, new EngineOptions { Threads = 1 }).CreateSession(tokens.Length).DecodeAll(tokens);
        using var runner = OrtLogitsRunner.Open(r.ModelPath, new OrtLogitsRunnerOptions { Session = new OrtSessionSettings { IntraOpThreads = 1 } });
        var actual = new float[expected.Length];
        runner.Evaluate(tokens, 0, Enumerable.Range(0, tokens.Length).ToArray(), actual);
        Assert.InRange(Numbers.RelativeL2(actual, expected), 0, LogitsTolerance);
    }

    [OnnxExportFact]
    public void Gpt2_fused_qkv_can_keep_one_part_float()
    {
        // The exporter splits attn_qkv into three layers; excluding attn_k quantizes q and v rows of the fused tensor only.
        using var temp = new TempDir("eq-nbits");
        var spec = new FixtureSpec { Arch = FixtureArch.Gpt2, Layers = 1, Embd = 64, Heads = 4, KvHeads = 4, Ffn = 128, Vocab = 320, ContextLength = 64, Seed = 68 };
        using var model = ModelLoader.Load(FixtureMaker.Write(spec, temp.Path, FixtureFormats.Gguf).GgufPath!);
        var options = new Int4WeightOptions { BlockSize = 32, Symmetric = false, Layers = LayerSelection.Parse("attn_k") };
        var lowering = new MatMulNBitsLowering(options);
        var r = OnnxExporter.Export(model, temp.File("onnx"), new OnnxExportOptions { Linear = lowering });
        Assert.Equal(["blk.0.attn_q", "blk.0.attn_v", "blk.0.attn_output", "blk.0.ffn_up", "blk.0.ffn_down"], lowering.QuantizedLayers);
        using var fake = Int4FakeQuant.Create(model, options);
        var before = model.Get("blk.0.attn_qkv.weight").ToFloat32();
        var after = fake.Model.Get("blk.0.attn_qkv.weight").ToFloat32();
        Assert.Equal(before.AsSpan(64 * 64, 64 * 64).ToArray(), after.AsSpan(64 * 64, 64 * 64).ToArray());
        Assert.NotEqual(before.AsSpan(0, 64 * 64).ToArray(), after.AsSpan(0, 64 * 64).ToArray());
        var tokens = Numbers.RandomTokens(16, spec.Vocab, 8);
        var expected = ReferenceEngine.Load(fake.Model, new EngineOptions { Threads = 1 }).CreateSession(tokens.Length).DecodeAll(tokens);
        using var runner = OrtLogitsRunner.Open(r.ModelPath, new OrtLogitsRunnerOptions { Session = new OrtSessionSettings { IntraOpThreads = 1 } });
        var actual = new float[expected.Length];
        runner.Evaluate(tokens, 0, Enumerable.Range(0, tokens.Length).ToArray(), actual);
        Assert.InRange(Numbers.RelativeL2(actual, expected), 0, LogitsTolerance);

        // Naming the fused tensor keeps all three parts float, in both.
        var whole = new Int4WeightOptions { Layers = LayerSelection.Parse("attn_qkv") };
        var wholeLowering = new MatMulNBitsLowering(whole);
        OnnxExporter.Export(model, temp.File("onnx2"), new OnnxExportOptions { Linear = wholeLowering });
        Assert.Equal(["blk.0.attn_output", "blk.0.ffn_up", "blk.0.ffn_down"], wholeLowering.QuantizedLayers);
        using var wholeFake = Int4FakeQuant.Create(model, whole);
        Assert.Equal(before, wholeFake.Model.Get("blk.0.attn_qkv.weight").ToFloat32());
    }

    [Fact]
    public void Bad_options_and_imatrix_mismatches_are_refused()
    {
        using var temp = new TempDir("eq-nbits");
        var spec = new FixtureSpec { Layers = 1, Embd = 64, Heads = 4, KvHeads = 2, Ffn = 96, Vocab = 300, Seed = 67 };
        using var model = ModelLoader.Load(FixtureMaker.Write(spec, temp.Path, FixtureFormats.Gguf).GgufPath!);
        Assert.Contains("block", Assert.Throws<Core.Errors.BadInputException>(() => new MatMulNBitsLowering(new Int4WeightOptions { BlockSize = 16 })).Message);
        Assert.Contains("matches no linear layer", Assert.Throws<Core.Errors.BadInputException>(() =>
            Int4FakeQuant.Create(model, new Int4WeightOptions { Layers = LayerSelection.Parse("ffn_dwon") })).Message);
        // An imatrix whose entry for a layer has the wrong width (made for another model) is refused naming the entry.
        var wrong = Compression.Imatrix.ImportanceMatrix.FromSums([("blk.0.attn_q.weight", new float[48], new long[] { 10 })], ["x"], 1, 128);
        var options = new Int4WeightOptions { Importance = wrong };
        Assert.Contains("blk.0.attn_q.weight", Assert.Throws<Core.Errors.BadInputException>(() => Int4FakeQuant.Create(model, options)).Message);
        Assert.Throws<Core.Errors.BadInputException>(() => OnnxExporter.Export(model, temp.File("onnx"), new OnnxExportOptions { Linear = new MatMulNBitsLowering(options) }));
        Assert.False(Directory.Exists(temp.File("onnx")));
        Assert.Empty(Directory.GetDirectories(temp.Path, ".*.tmp"));
    }
}
