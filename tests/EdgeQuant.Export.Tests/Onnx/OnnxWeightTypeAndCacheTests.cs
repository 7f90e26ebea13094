using System.Runtime.InteropServices;
using EdgeQuant.Core.Errors;
using EdgeQuant.Core.Tensors;
using EdgeQuant.Export.Onnx;
using EdgeQuant.Fixtures;
using EdgeQuant.Formats.Onnx.Proto;
using EdgeQuant.Models;
using EdgeQuant.Models.Engine;
using EdgeQuant.Runtimes.OnnxRuntime;
using EdgeQuant.Testing;
using Xunit.Abstractions;

namespace EdgeQuant.Export.Tests.Onnx;

/// <summary><c>--dtype fp16</c> (FP16 initializers cast to FP32) and <c>--no-kv-cache</c> exports, run in ONNX Runtime.</summary>
public sealed class OnnxWeightTypeAndCacheTests(ITestOutputHelper output)
{
    private static readonly OrtLogitsRunnerOptions OneThread = new() { Session = new OrtSessionSettings { IntraOpThreads = 1, InterOpThreads = 1 } };

    public static TheoryData<string, FixtureSpec> Fixtures => new()
    {
        { "llama gqa2 tied", new FixtureSpec { Layers = 2, Embd = 64, Heads = 4, KvHeads = 2, Ffn = 172, Vocab = 300, Seed = 71 } },
        { "qwen2 biases untied", new FixtureSpec { Arch = FixtureArch.Qwen2, Layers = 2, Embd = 96, Heads = 6, KvHeads = 2, Ffn = 120, Vocab = 300, RopeTheta = 1e6f, Untied = true, Seed = 72 } },
        { "gpt2", new FixtureSpec { Arch = FixtureArch.Gpt2, Layers = 2, Embd = 64, Heads = 4, KvHeads = 4, Ffn = 256, Vocab = 320, ContextLength = 64, Seed = 73 } },
    };

    [OnnxExportTheory]
    [MemberData(nameof(Fixtures))]
    public void Fp16_export_equals_the_engine_on_fp16_rounded_weights_at_half_the_size(string name, FixtureSpec spec)
    {
        using var temp = new TempDir("eq-onnx16");
        using var model = ModelLoader.Load(FixtureMaker.Write(spec, temp.Path, FixtureFormats.Gguf).GgufPath!);
        var fp32 = OnnxExporter.Export(model, temp.File("fp32"));
        var fp16 = OnnxExporter.Export(model, temp.File("fp16"), new OnnxExportOptions { WeightType = OnnxWeightType.Float16 });
        OnnxChecker.Check(fp16.ModelPath);
        var proto = ModelProto.Parser.ParseFrom(File.ReadAllBytes(fp16.ModelPath));
        Assert.Equal("fp16", proto.MetadataProps.Single(p => p.Key == "edgequant.dtype").Value);
        // Every matrix is FP16; only 1-D tensors (norms, biases, RoPE frequencies) and shape constants stay wider.
        Assert.All(proto.Graph.Initializer.Where(i => i.Dims.Count >= 2), i => Assert.Equal((int)TensorProto.Types.DataType.Float16, i.DataType));

        var tokens = Numbers.RandomTokens(20, spec.Vocab, seed: 9);
        using var rounded = RoundedToFp16(model);
        var expected = ReferenceEngine.Load(rounded, new EngineOptions { Threads = 1 }).CreateSession(tokens.Length).DecodeAll(tokens);
        var unrounded = ReferenceEngine.Load(model, new EngineOptions { Threads = 1 }).CreateSession(tokens.Length).DecodeAll(tokens);
        var logits = Run(fp16.ModelPath, tokens, [tokens.Length]);
        double rel = Numbers.RelativeL2(logits, expected), roundingEffect = Numbers.RelativeL2(expected, unrounded);
        long size32 = new FileInfo(fp32.ModelPath).Length, size16 = new FileInfo(fp16.ModelPath).Length;
        output.WriteLine($"{name}: rel. L2 vs FP16-rounded engine {rel:E2} (FP16 rounding itself moves logits {roundingEffect:E2}); size {size16} / {size32} = {(double)size16 / size32:F3}");
        Assert.InRange(rel, 0, 1e-4);
        Assert.True(roundingEffect > 10 * rel, "the comparison must be able to tell FP16-rounded weights from FP32 ones");
        Assert.InRange((double)size16 / size32, 0.45, 0.6);
        Assert.InRange(Numbers.RelativeL2(Run(fp16.ModelPath, tokens, [7, 1, 1, tokens.Length - 9]), expected), 0, 1e-4);
    }

    [OnnxExportFact]
    public void Fp16_overflow_is_refused()
    {
        using var temp = new TempDir("eq-onnx16");
        var spec = new FixtureSpec { Layers = 1, Embd = 32, Heads = 4, KvHeads = 2, Ffn = 64, Vocab = 300, Seed = 74 };
        using var model = ModelLoader.Load(FixtureMaker.Write(spec, temp.Path, FixtureFormats.Gguf).GgufPath!);
        var tensors = model.Tensors.Select(t => t.Name != "blk.0.ffn_up.weight" ? t : F32(t, t.ToFloat32().Select((v, i) => i == 5 ? 70000f : v).ToArray())).ToList();
        using var big = new Model(model.Config, tensors, model.Tokenizer, model.Provenance, model.Metadata);
        var e = Assert.Throws<BadInputException>(() => OnnxExporter.Export(big, temp.File("o"), new OnnxExportOptions { WeightType = OnnxWeightType.Float16 }));
        Assert.Contains("blk.0.ffn_up.weight", e.Message);
        Assert.Contains("overflows FP16", e.Message);
        Assert.False(Directory.Exists(temp.File("o")));
    }

    [OnnxExportTheory]
    [MemberData(nameof(Fixtures))]
    public void Without_kv_cache_the_graph_has_no_past_and_reruns_match_the_engine(string name, FixtureSpec spec)
    {
        using var temp = new TempDir("eq-onnxnc");
        using var model = ModelLoader.Load(FixtureMaker.Write(spec, temp.Path, FixtureFormats.Gguf).GgufPath!);
        var r = OnnxExporter.Export(model, temp.File("onnx"), new OnnxExportOptions { KvCache = false });
        OnnxChecker.Check(r.ModelPath);
        using (var session = OrtSession.FromFile(r.ModelPath))
        {
            Assert.Equal(["input_ids", "attention_mask", "position_ids"], session.Inputs.Select(i => i.Name));
            Assert.Equal(["logits"], session.Outputs.Select(o => o.Name));
        }
        var genai = File.ReadAllText(Path.Combine(r.Folder, OnnxExporter.GenaiConfigFileName));
        Assert.DoesNotContain("past_key_names", genai);
        Assert.DoesNotContain("present_key_names", genai);

        var tokens = Numbers.RandomTokens(18, spec.Vocab, seed: 11);
        var expected = ReferenceEngine.Load(model, new EngineOptions { Threads = 1 }).CreateSession(tokens.Length).DecodeAll(tokens);
        double full = Numbers.RelativeL2(Run(r.ModelPath, tokens, [tokens.Length]), expected);
        // The runner re-feeds the whole history on each call of a cacheless model.
        double stepped = Numbers.RelativeL2(Run(r.ModelPath, tokens, [6, 1, 1, tokens.Length - 8]), expected);
        output.WriteLine($"{name}: rel. L2 full {full:E2}, in pieces {stepped:E2}");
        Assert.InRange(full, 0, 1e-4);
        Assert.InRange(stepped, 0, 1e-4);
    }

    private static float[] Run(string modelPath, int[] tokens, int[] pieces)
    {
        using var runner = OrtLogitsRunner.Open(modelPath, OneThread);
        var logits = new float[tokens.Length * runner.VocabSize];
        int at = 0;
        foreach (int len in pieces)
        {
            runner.Evaluate(tokens.AsSpan(at, len), at, Enumerable.Range(0, len).ToArray(), logits.AsSpan(at * runner.VocabSize, len * runner.VocabSize));
            at += len;
        }
        return logits;
    }

    /// <summary>The model with every matrix rounded to FP16 and back (the independent reference for an FP16 export).</summary>
    private static Model RoundedToFp16(Model model)
    {
        var tensors = model.Tensors.Select(t => t.Shape.Length < 2 ? t : F32(t, t.ToFloat32().Select(v => (float)(Half)v).ToArray())).ToList();
        return new Model(model.Config, tensors, model.Tokenizer, model.Provenance, model.Metadata);
    }

    private static ModelTensor F32(ModelTensor t, float[] w) => new()
    {
        Name = t.Name,
        Shape = (long[])t.Shape.Clone(),
        Type = TensorType.F32,
        SourceName = t.SourceName,
        Storage = new ArrayTensorStorage(MemoryMarshal.AsBytes(w.AsSpan()).ToArray()),
    };
}
