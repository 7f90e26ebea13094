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
/// Dynamic INT8 exports (<see cref="Int8DynamicLowering"/>) run in the real ONNX Runtime and are compared with the
/// same scheme simulated in the engine (<see cref="Int8DynamicFakeQuant"/>): logits, and KLD against the FP32 engine.
/// </summary>
public sealed class Int8DynamicExportTests(ITestOutputHelper output)
{
    public static TheoryData<string, FixtureSpec, bool> Fixtures => new()
    {
        { "llama gqa2 tied, per channel", new FixtureSpec { Layers = 2, Embd = 64, Heads = 4, KvHeads = 2, Ffn = 172, Vocab = 300, Seed = 61 }, true },
        { "qwen2 biases, per tensor", new FixtureSpec { Arch = FixtureArch.Qwen2, Layers = 2, Embd = 96, Heads = 6, KvHeads = 2, Ffn = 120, Vocab = 300, RopeTheta = 1e6f, Seed = 62 }, false },
        { "gpt2, per tensor", new FixtureSpec { Arch = FixtureArch.Gpt2, Layers = 2, Embd = 64, Heads = 4, KvHeads = 4, Ffn = 256, Vocab = 320, ContextLength = 64, Seed = 63 }, false },
        { "gpt2 untied, per channel", new FixtureSpec { Arch = FixtureArch.Gpt2, Layers = 1, Embd = 32, Heads = 2, KvHeads = 2, Ffn = 128, Vocab = 300, ContextLength = 64, Untied = true, Seed = 64 }, true },
    };

    [OnnxExportTheory]
    [MemberData(nameof(Fixtures))]
    public void Fixture_logits_match_the_fake_quant_engine(string name, FixtureSpec spec, bool perChannel) =>
        CompareWithFakeQuant(name, spec, perChannel, fusedAttention: false);

    /// <summary>The same with attention as ORT's GroupQueryAttention (--fused-attention): the lowering is unchanged.</summary>
    [OnnxExportTheory]
    [MemberData(nameof(Fixtures))]
    public void Fixture_with_fused_attention_matches_the_fake_quant_engine(string name, FixtureSpec spec, bool perChannel) =>
        CompareWithFakeQuant(name + ", fused attention", spec, perChannel, fusedAttention: true);

    private void CompareWithFakeQuant(string name, FixtureSpec spec, bool perChannel, bool fusedAttention)
    {
        using var temp = new TempDir("eq-int8");
        using var model = ModelLoader.Load(FixtureMaker.Write(spec, temp.Path, FixtureFormats.Gguf).GgufPath!);
        var options = new Int8DynamicOptions { PerChannel = perChannel };
        var lowering = new Int8DynamicLowering(options);
        var r = OnnxExporter.Export(model, temp.File("onnx"), new OnnxExportOptions { Linear = lowering, FusedAttention = fusedAttention });
        OnnxChecker.Check(r.ModelPath);
        int perBlock = spec.Arch == FixtureArch.Gpt2 ? 6 : 7;
        Assert.Equal(spec.Layers * perBlock + 1, lowering.QuantizedLayers.Count); // the LM head too, by default
        Assert.Contains("output", lowering.QuantizedLayers);

        var tokens = Numbers.RandomTokens(24, spec.Vocab, seed: 7);
        var fp32 = QuantLogits.Engine(model, null, tokens);
        using var fq = Int8DynamicFakeQuant.Create(model, options);
        var fake = QuantLogits.Engine(fq.Model, fq.Hook, tokens);
        var ort = QuantLogits.Ort(r.ModelPath, tokens);
        double vsFake = Numbers.RelativeL2(ort, fake), vsFp32 = Numbers.RelativeL2(ort, fp32), fakeVsFp32 = Numbers.RelativeL2(fake, fp32);
        output.WriteLine($"{name}: ORT vs fake quant {vsFake:E2}; vs FP32: ORT {vsFp32:E2}, fake quant {fakeVsFp32:E2}");
        // Quantization itself moves the logits by ~1e-2; the simulation must be two orders of magnitude closer.
        Assert.InRange(fakeVsFp32, 1e-4, 0.5);
        Assert.InRange(vsFake, 0, fakeVsFp32 / 30);

        // Through the KV cache: each call is one DynamicQuantizeLinear range in ORT and one micro-batch (one hook
        // call) in the engine, so the same pieces must agree as closely.
        int[] pieces = [9, 1, 1, 1, tokens.Length - 12];
        var engine = ReferenceEngine.Load(fq.Model, new EngineOptions { Threads = 1 });
        using var h = engine.AddHook(fq.Hook!);
        var session = engine.CreateSession(tokens.Length);
        int v = spec.Vocab;
        var fakeStepped = new float[tokens.Length * v];
        var ortStepped = new float[tokens.Length * v];
        using (var runner = OrtLogitsRunner.Open(r.ModelPath, new OrtLogitsRunnerOptions { Session = QuantLogits.OneThread }))
        {
            int at = 0;
            foreach (int len in pieces)
            {
                var rows = Enumerable.Range(0, len).ToArray();
                session.Decode(tokens.AsSpan(at, len), rows, fakeStepped.AsSpan(at * v, len * v));
                runner.Evaluate(tokens.AsSpan(at, len), at, rows, ortStepped.AsSpan(at * v, len * v));
                at += len;
            }
        }
        double stepped = Numbers.RelativeL2(ortStepped, fakeStepped);
        output.WriteLine($"{name}: in pieces {string.Join("+", pieces)}: ORT vs fake quant {stepped:E2}");
        Assert.InRange(stepped, 0, fakeVsFp32 / 30);
    }

    [OnnxExportFact]
    public void Ort_runs_integer_kernels_and_no_float_matmul_on_quantized_weights()
    {
        using var temp = new TempDir("eq-int8");
        var spec = new FixtureSpec { Layers = 2, Embd = 64, Heads = 4, KvHeads = 2, Ffn = 96, Vocab = 300, Untied = true, Seed = 65 };
        using var model = ModelLoader.Load(FixtureMaker.Write(spec, temp.Path, FixtureFormats.Gguf).GgufPath!);
        // Exclude one layer so the check also sees a float MatMul that is allowed to stay.
        var options = new Int8DynamicOptions { Layers = LayerSelection.Parse(@"^blk\.1\.ffn_down$") };
        var lowering = new Int8DynamicLowering(options);
        var r = OnnxExporter.Export(model, temp.File("onnx"), new OnnxExportOptions { Linear = lowering });
        string optimized = temp.File("optimized.onnx");
        using (var runner = OrtLogitsRunner.Open(r.ModelPath, new OrtLogitsRunnerOptions { Session = new OrtSessionSettings { IntraOpThreads = 1, OptimizedModelPath = optimized } }))
        {
            var logits = new float[3 * runner.VocabSize];
            runner.Evaluate([1, 2, 3], 0, [0, 1, 2], logits);
        }

        var graph = ModelProto.Parser.ParseFrom(File.ReadAllBytes(optimized)).Graph;
        var initializers = graph.Initializer.Select(i => i.Name).ToHashSet();
        var ops = graph.Node.GroupBy(n => n.OpType).ToDictionary(g => g.Key, g => g.Count());
        output.WriteLine(string.Join(", ", ops.OrderBy(kv => kv.Key).Select(kv => $"{kv.Key} {kv.Value}")));
        int integer = new[] { "MatMulInteger", "DynamicQuantizeMatMul", "MatMulIntegerToFloat" }.Sum(op => ops.GetValueOrDefault(op));
        Assert.Equal(lowering.QuantizedLayers.Count, integer);
        Assert.Equal(2 * 7 - 1, integer);

        // Float matrix products that read a weight initializer: only the excluded ffn_down and the LM head may.
        var floatOnWeights = graph.Node
            .Where(n => n.OpType is "MatMul" or "FusedMatMul" or "Gemm")
            .Where(n => n.Input.Skip(1).Any(initializers.Contains))
            .SelectMany(n => n.Input.Skip(1).Where(initializers.Contains))
            .OrderBy(s => s, StringComparer.Ordinal).ToList();
        Assert.Equal(["blk.1.ffn_down.weight", "output.weight"], floatOnWeights);
    }

    [Fact]
    public void Non_finite_weights_are_refused_naming_the_tensor()
    {
        // --allow-nonfinite lets NaN through the FP32 exporter, but an INT8 scale cannot be computed from it.
        using var temp = new TempDir("eq-int8");
        var spec = new FixtureSpec { Layers = 1, Embd = 32, Heads = 4, KvHeads = 2, Ffn = 64, Vocab = 300, Seed = 66 };
        using var model = ModelLoader.Load(FixtureMaker.Write(spec, temp.Path, FixtureFormats.Gguf).GgufPath!);
        var tensors = model.Tensors.Select(t => t.Name != "blk.0.ffn_gate.weight" ? t : new ModelTensor
        {
            Name = t.Name, Shape = t.Shape, Type = Core.Tensors.TensorType.F32, SourceName = t.SourceName,
            Storage = new ArrayTensorStorage(System.Runtime.InteropServices.MemoryMarshal.AsBytes(
                t.ToFloat32().Select((v, i) => i == 3 ? float.NaN : v).ToArray().AsSpan()).ToArray()),
        }).ToList();
        using var bad = new Model(model.Config, tensors, model.Tokenizer, model.Provenance, model.Metadata);
        var e = Assert.Throws<Core.Errors.BadInputException>(() => OnnxExporter.Export(bad, temp.File("o"),
            new OnnxExportOptions { AllowNonFinite = true, Linear = new Int8DynamicLowering(new Int8DynamicOptions()) }));
        Assert.Contains("blk.0.ffn_gate.weight", e.Message);
        Assert.False(Directory.Exists(temp.File("o")));
        Assert.Empty(Directory.GetDirectories(temp.Path, ".*.tmp"));
    }

    [OnnxExportFact("models/stories260K/stories260K.gguf", "corpus/tinystories-sample.txt")]
    public void Stories260K_kld_of_ort_and_fake_quant_agree()
    {
        const int ctx = 128, chunks = 6;
        using var temp = new TempDir("eq-int8");
        using var model = ModelLoader.Load(SharedData.Require("models/stories260K/stories260K.gguf"));
        var tokenizer = Tokenizer.FromModel(model);
        var text = Perplexity.PrepareText(File.ReadAllText(SharedData.Require("corpus/tinystories-sample.txt")));
        var all = tokenizer.Encode(text, addSpecial: false, parseSpecial: false);
        Assert.True(all.Length >= ctx * chunks);
        var chunkTokens = Enumerable.Range(0, chunks).Select(c =>
        {
            var t = all.AsSpan(c * ctx, ctx).ToArray();
            t[0] = tokenizer.BosId ?? t[0]; // llama-perplexity's chunk start
            return t;
        }).ToList();
        var engine = ReferenceEngine.Load(model, new EngineOptions { Threads = 1 });
        var reference = chunkTokens.Select(t => engine.CreateSession(ctx).DecodeAll(t)).ToList();

        foreach (bool perChannel in new[] { true, false })
            foreach (bool reduce in new[] { false, true })
            {
                var options = new Int8DynamicOptions { PerChannel = perChannel, ReduceRange = reduce };
                string dir = temp.File($"onnx-{perChannel}-{reduce}");
                var r = OnnxExporter.Export(model, dir, new OnnxExportOptions { Linear = new Int8DynamicLowering(options) });
                if (perChannel && !reduce) OnnxChecker.Check(r.ModelPath);
                using var fq = Int8DynamicFakeQuant.Create(model, options);
                var fakeEngine = ReferenceEngine.Load(fq.Model, new EngineOptions { Threads = 1 });
                using var hook = fakeEngine.AddHook(fq.Hook!);
                using var runner = OrtLogitsRunner.Open(r.ModelPath, new OrtLogitsRunnerOptions { Session = QuantLogits.OneThread });
                var ortStats = new DriftStats();
                var fakeStats = new DriftStats();
                double l2 = 0;
                for (int c = 0; c < chunks; c++)
                {
                    var t = chunkTokens[c];
                    var fake = fakeEngine.CreateSession(ctx).DecodeAll(t);
                    var ort = new float[fake.Length];
                    runner.Reset();
                    runner.Evaluate(t, 0, Enumerable.Range(0, ctx).ToArray(), ort); // the whole chunk as one batch, as the engine runs it
                    l2 = Math.Max(l2, Numbers.RelativeL2(ort, fake));
                    ortStats.AddSecondHalf(reference[c], ort, t, model.Config.VocabSize);
                    fakeStats.AddSecondHalf(reference[c], fake, t, model.Config.VocabSize);
                }
                output.WriteLine($"per_channel={perChannel} reduce_range={reduce}: KLD ORT {ortStats.MeanKld:F6}, fake quant {fakeStats.MeanKld:F6} " +
                                 $"(ratio {ortStats.MeanKld / fakeStats.MeanKld:F4}); PPL ORT {ortStats.Perplexity:F4}, fake {fakeStats.Perplexity:F4}, FP32 {fakeStats.ReferencePerplexity:F4}; " +
                                 $"max chunk rel. L2 ORT vs fake {l2:E2}; {ortStats.Count} scored tokens");
                Assert.InRange(ortStats.MeanKld / fakeStats.MeanKld, 0.9, 1.1);
                Assert.True(fakeStats.MeanKld > 0);
            }
    }
}
