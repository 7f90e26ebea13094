using EdgeQuant.Compression.OnnxQuant;
using EdgeQuant.Export.Onnx;
using EdgeQuant.Export.Onnx.Quant;
using EdgeQuant.Fixtures;
using EdgeQuant.Formats.Onnx.Proto;
using EdgeQuant.Models;
using EdgeQuant.Models.Engine;
using EdgeQuant.Models.Tokenizers;
using EdgeQuant.Runtimes.Evaluation;
using EdgeQuant.Runtimes.OnnxRuntime;
using EdgeQuant.Testing;
using Xunit.Abstractions;

namespace EdgeQuant.Export.Tests.Onnx;

/// <summary>
/// Static INT8 (QDQ) exports (<see cref="QdqLowering"/>) checked by onnx.checker, run in the real ONNX Runtime and
/// compared with the same scheme simulated in the engine (<see cref="QdqFakeQuant"/>) and with the FP32 engine.
/// </summary>
public sealed class QdqExportTests(ITestOutputHelper output)
{
    public static TheoryData<string, FixtureSpec, bool, bool> Fixtures => new()
    {
        { "llama gqa2 tied, per channel, uint8", new FixtureSpec { Layers = 2, Embd = 64, Heads = 4, KvHeads = 2, Ffn = 172, Vocab = 300, Seed = 71 }, true, false },
        { "qwen2 biases, per tensor, uint8", new FixtureSpec { Arch = FixtureArch.Qwen2, Layers = 2, Embd = 96, Heads = 6, KvHeads = 2, Ffn = 120, Vocab = 300, RopeTheta = 1e6f, Seed = 72 }, false, false },
        { "qwen2 biases, per channel, int8 symmetric", new FixtureSpec { Arch = FixtureArch.Qwen2, Layers = 2, Embd = 96, Heads = 6, KvHeads = 2, Ffn = 120, Vocab = 300, RopeTheta = 1e6f, Seed = 73 }, true, true },
        { "gpt2, per tensor, uint8", new FixtureSpec { Arch = FixtureArch.Gpt2, Layers = 2, Embd = 64, Heads = 4, KvHeads = 4, Ffn = 256, Vocab = 320, ContextLength = 64, Seed = 74 }, false, false },
        { "gpt2 untied, per channel, int8 symmetric", new FixtureSpec { Arch = FixtureArch.Gpt2, Layers = 1, Embd = 32, Heads = 2, KvHeads = 2, Ffn = 128, Vocab = 300, ContextLength = 64, Untied = true, Seed = 75 }, true, true },
    };

    [OnnxExportTheory]
    [MemberData(nameof(Fixtures))]
    public void Fixture_logits_match_the_fake_quant_engine(string name, FixtureSpec spec, bool perChannel, bool symmetric) =>
        CompareWithFakeQuant(name, spec, perChannel, symmetric, fusedAttention: false);

    /// <summary>The same with attention as ORT's GroupQueryAttention (--fused-attention): the QDQ lowering is unchanged.</summary>
    [OnnxExportTheory]
    [MemberData(nameof(Fixtures))]
    public void Fixture_with_fused_attention_matches_the_fake_quant_engine(string name, FixtureSpec spec, bool perChannel, bool symmetric) =>
        CompareWithFakeQuant(name + ", fused attention", spec, perChannel, symmetric, fusedAttention: true);

    private void CompareWithFakeQuant(string name, FixtureSpec spec, bool perChannel, bool symmetric, bool fusedAttention)
    {
        using var temp = new TempDir("eq-qdq");
        using var model = ModelLoader.Load(FixtureMaker.Write(spec, temp.Path, FixtureFormats.Gguf).GgufPath!);
        var options = new Int8StaticOptions { PerChannel = perChannel, SymmetricActivations = symmetric, Method = CalibrationMethod.Percentile, Percentile = 99.9 };
        var calib = Enumerable.Range(0, 3).Select(s => Numbers.RandomTokens(32, spec.Vocab, seed: 100 + s)).ToList();
        var ranges = ActivationCalibrator.Collect(model, calib, options, 1, null, CancellationToken.None);
        var lowering = new QdqLowering(ranges, options);
        var r = OnnxExporter.Export(model, temp.File("onnx"), new OnnxExportOptions { Linear = lowering, FusedAttention = fusedAttention });
        OnnxChecker.Check(r.ModelPath);
        int perBlock = spec.Arch == FixtureArch.Gpt2 ? 6 : 7;
        Assert.Equal(spec.Layers * perBlock, lowering.QuantizedLayers.Count);
        int biases = spec.Arch == FixtureArch.Gpt2 ? spec.Layers * perBlock : spec.Arch == FixtureArch.Qwen2 ? spec.Layers * 3 : 0;
        Assert.Equal(biases, lowering.Int32Biases);

        var tokens = Numbers.RandomTokens(24, spec.Vocab, seed: 7);
        var fp32 = QuantLogits.Engine(model, null, tokens);
        using var fq = QdqFakeQuant.Create(model, ranges, options);
        var fake = QuantLogits.Engine(fq.Model, fq.Hook, tokens);
        var ort = QuantLogits.Ort(r.ModelPath, tokens);
        double vsFake = Numbers.RelativeL2(ort, fake), vsFp32 = Numbers.RelativeL2(ort, fp32), fakeVsFp32 = Numbers.RelativeL2(fake, fp32);
        output.WriteLine($"{name}: ORT vs fake quant {vsFake:E2}; vs FP32: ORT {vsFp32:E2}, fake quant {fakeVsFp32:E2}");
        Assert.InRange(fakeVsFp32, 1e-4, 0.5);
        Assert.InRange(vsFake, 0, fakeVsFp32 / 30);
    }

    [OnnxExportTheory]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(false, false)]
    [InlineData(true, true)]
    public void Ort_runs_integer_kernels_and_no_float_matmul_on_quantized_weights(bool perChannel, bool symmetric)
    {
        using var temp = new TempDir("eq-qdq");
        var spec = new FixtureSpec { Layers = 2, Embd = 64, Heads = 4, KvHeads = 2, Ffn = 96, Vocab = 300, Untied = true, Seed = 76 };
        using var model = ModelLoader.Load(FixtureMaker.Write(spec, temp.Path, FixtureFormats.Gguf).GgufPath!);
        var options = new Int8StaticOptions { PerChannel = perChannel, SymmetricActivations = symmetric, Layers = LayerSelection.Parse(@"^blk\.1\.ffn_down$") };
        var ranges = ActivationCalibrator.Collect(model, [Numbers.RandomTokens(40, spec.Vocab, seed: 3)], options, 1, null, CancellationToken.None);
        var lowering = new QdqLowering(ranges, options);
        var r = OnnxExporter.Export(model, temp.File("onnx"), new OnnxExportOptions { Linear = lowering });
        var (ops, floatOnWeights) = OptimizedGraph(r.ModelPath, temp.File("optimized.onnx"));
        output.WriteLine(string.Join(", ", ops.OrderBy(kv => kv.Key).Select(kv => $"{kv.Key} {kv.Value}")));
        output.WriteLine("float on weights: " + string.Join(", ", floatOnWeights));
        Assert.Equal(2 * 7 - 1, lowering.QuantizedLayers.Count);
        Assert.Equal(lowering.QuantizedLayers.Count, IntegerMatMuls(ops));
        Assert.Equal(["blk.1.ffn_down.weight", "output.weight"], floatOnWeights);
        Assert.Equal(0, ops.GetValueOrDefault("DequantizeLinear")); // every weight DQ was fused into an integer kernel
    }

    [OnnxExportFact]
    public void A_tied_lm_head_quantized_on_request_matches_the_fake_quant_engine()
    {
        using var temp = new TempDir("eq-qdq");
        var spec = new FixtureSpec { Layers = 1, Embd = 64, Heads = 4, KvHeads = 2, Ffn = 96, Vocab = 300, Seed = 77 };
        using var model = ModelLoader.Load(FixtureMaker.Write(spec, temp.Path, FixtureFormats.Gguf).GgufPath!);
        Assert.True(model.Config.TiedEmbeddings);
        var options = new Int8StaticOptions { Layers = new LayerSelection(includeLmHead: true) };
        var tokens = Numbers.RandomTokens(24, spec.Vocab, seed: 8);
        var ranges = ActivationCalibrator.Collect(model, [Numbers.RandomTokens(40, spec.Vocab, seed: 4)], options, 1, null, CancellationToken.None);
        var lowering = new QdqLowering(ranges, options);
        var r = OnnxExporter.Export(model, temp.File("onnx"), new OnnxExportOptions { Linear = lowering });
        Assert.Contains("output", lowering.QuantizedLayers);
        using var fq = QdqFakeQuant.Create(model, ranges, options);
        var fake = QuantLogits.Engine(fq.Model, fq.Hook, tokens);
        var fp32 = QuantLogits.Engine(model, null, tokens);
        double vsFake = Numbers.RelativeL2(QuantLogits.Ort(r.ModelPath, tokens), fake), fakeVsFp32 = Numbers.RelativeL2(fake, fp32);
        output.WriteLine($"tied head quantized: ORT vs fake quant {vsFake:E2}; fake quant vs FP32 {fakeVsFp32:E2}");
        Assert.InRange(vsFake, 0, fakeVsFp32 / 30);
        // The embedding table itself stays float in the fake model, as in the export.
        Assert.Equal(model.Get("token_embd.weight").ToFloat32(), fq.Model.Get("token_embd.weight").ToFloat32());
    }

    private static int IntegerMatMuls(Dictionary<string, int> ops) =>
        new[] { "QLinearMatMul", "MatMulIntegerToFloat", "MatMulInteger", "DynamicQuantizeMatMul" }.Sum(op => ops.GetValueOrDefault(op));

    /// <summary>Op counts of ORT's optimized graph, and the weight initializers float matrix products still read.</summary>
    private static (Dictionary<string, int> Ops, List<string> FloatOnWeights) OptimizedGraph(string modelPath, string optimized)
    {
        using (var runner = OrtLogitsRunner.Open(modelPath, new OrtLogitsRunnerOptions { Session = new OrtSessionSettings { IntraOpThreads = 1, OptimizedModelPath = optimized } }))
        {
            var logits = new float[3 * runner.VocabSize];
            runner.Evaluate([1, 2, 3], 0, [0, 1, 2], logits);
        }
        var graph = ModelProto.Parser.ParseFrom(File.ReadAllBytes(optimized)).Graph;
        var initializers = graph.Initializer.Select(i => i.Name).ToHashSet();
        var ops = graph.Node.GroupBy(n => n.OpType).ToDictionary(g => g.Key, g => g.Count());
        // A float product on a quantized weight would read the weight's DequantizeLinear output or a folded copy of it.
        var floatOnWeights = graph.Node
            .Where(n => n.OpType is "MatMul" or "FusedMatMul" or "Gemm")
            .SelectMany(n => n.Input.Skip(1).Where(i => initializers.Contains(i) || i.Contains(".weight", StringComparison.Ordinal)))
            .OrderBy(s => s, StringComparer.Ordinal).ToList();
        return (ops, floatOnWeights);
    }

    [OnnxExportFact("models/stories260K/stories260K.gguf", "corpus/tinystories-sample.txt")]
    public void Stories260K_every_method_with_and_without_smoothquant()
    {
        const int ctx = 128, chunks = 6, calibSequences = 16;
        using var temp = new TempDir("eq-qdq");
        using var model = ModelLoader.Load(SharedData.Require("models/stories260K/stories260K.gguf"));
        var tokenizer = Tokenizer.FromModel(model);
        var text = Perplexity.PrepareText(File.ReadAllText(SharedData.Require("corpus/tinystories-sample.txt")));
        var all = tokenizer.Encode(text, addSpecial: false, parseSpecial: false);
        Assert.True(all.Length >= ctx * (chunks + calibSequences));
        int[] Chunk(int c)
        {
            var t = all.AsSpan(c * ctx, ctx).ToArray();
            t[0] = tokenizer.BosId ?? t[0];
            return t;
        }
        // Evaluation chunks first, calibration sequences after them: calibration never sees the scored text.
        var eval = Enumerable.Range(0, chunks).Select(Chunk).ToList();
        var calib = Enumerable.Range(chunks, calibSequences).Select(Chunk).ToList();
        var engine = ReferenceEngine.Load(model, new EngineOptions { Threads = 1 });
        var reference = eval.Select(t => engine.CreateSession(ctx).DecodeAll(t)).ToList();

        output.WriteLine("| method | SmoothQuant | KLD ORT | KLD fake quant | ratio | PPL ORT | PPL FP32 | top-1 ORT |");
        output.WriteLine("|---|---|---|---|---|---|---|---|");
        bool checkedGraph = false;
        foreach (double? alpha in new double?[] { null, 0.5 })
        {
            using var smoothed = alpha is { } a ? SmoothQuant.Apply(model, calib, a, 1, CancellationToken.None) : null;
            var source = smoothed ?? model;
            foreach (var method in Enum.GetValues<CalibrationMethod>())
            {
                var options = new Int8StaticOptions { Method = method };
                var ranges = ActivationCalibrator.Collect(source, calib, options, 1, null, CancellationToken.None);
                string dir = temp.File($"onnx-{method}-{alpha}");
                var lowering = new QdqLowering(ranges, options);
                var r = OnnxExporter.Export(source, dir, new OnnxExportOptions { Linear = lowering });
                Assert.Equal(35, lowering.QuantizedLayers.Count);
                OnnxChecker.Check(r.ModelPath);
                if (!checkedGraph)
                {
                    var (ops, floatOnWeights) = OptimizedGraph(r.ModelPath, temp.File("optimized.onnx"));
                    output.WriteLine("optimized graph: " + string.Join(", ", ops.OrderBy(kv => kv.Key).Select(kv => $"{kv.Key} {kv.Value}")));
                    Assert.Equal(35, IntegerMatMuls(ops));
                    Assert.DoesNotContain(floatOnWeights, w => w != "token_embd.weight" && w != "output.weight");
                    checkedGraph = true;
                }

                using var fq = QdqFakeQuant.Create(source, ranges, options);
                var fakeEngine = ReferenceEngine.Load(fq.Model, new EngineOptions { Threads = 1 });
                using var hook = fakeEngine.AddHook(fq.Hook!);
                using var runner = OrtLogitsRunner.Open(r.ModelPath, new OrtLogitsRunnerOptions { Session = QuantLogits.OneThread });
                var ortStats = new DriftStats();
                var fakeStats = new DriftStats();
                for (int c = 0; c < chunks; c++)
                {
                    var t = eval[c];
                    var fake = fakeEngine.CreateSession(ctx).DecodeAll(t);
                    var ort = new float[fake.Length];
                    runner.Reset();
                    runner.Evaluate(t, 0, Enumerable.Range(0, ctx).ToArray(), ort);
                    ortStats.AddSecondHalf(reference[c], ort, t, model.Config.VocabSize);
                    fakeStats.AddSecondHalf(reference[c], fake, t, model.Config.VocabSize);
                }
                double ratio = ortStats.MeanKld / fakeStats.MeanKld;
                output.WriteLine($"| {ActivationRanges.MethodName(method)} | {(alpha is null ? "-" : $"α={alpha}")} | {ortStats.MeanKld:F5} | {fakeStats.MeanKld:F5} | {ratio:F3} | " +
                                 $"{ortStats.Perplexity:F4} | {ortStats.ReferencePerplexity:F4} | {ortStats.Top1:P2} |");
                Assert.True(fakeStats.MeanKld > 0);
                Assert.InRange(ratio, 0.9, 1.1);
            }
        }
        output.WriteLine($"({chunks} chunks of {ctx}, second halves scored; calibration: {calibSequences} × {ctx} other tokens)");
    }
}
