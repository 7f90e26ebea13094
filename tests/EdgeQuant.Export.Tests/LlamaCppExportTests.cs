using EdgeQuant.Core.Tensors;
using EdgeQuant.Fixtures;
using EdgeQuant.Formats.Gguf;
using EdgeQuant.Models;
using EdgeQuant.Models.Engine;
using EdgeQuant.Runtimes.LlamaCpp;
using EdgeQuant.Runtimes.LlamaCpp.Native;
using EdgeQuant.Testing;
using Xunit.Abstractions;

namespace EdgeQuant.Export.Tests;

/// <summary>Exported GGUFs in the real llama.cpp (libllama of @node-llama-cpp/linux-x64@3.22.1 through the project's binding).</summary>
public class LlamaCppExportTests(ITestOutputHelper output)
{
    /// <summary>The bound: F32 implementations differing only in summation order stay near 1e-6.</summary>
    private const double MaxRelativeL2 = 1e-4;

    private const string Stories = "models/stories260K/stories260K.gguf";

    public static TheoryData<string, FixtureSpec> Fixtures => new()
    {
        { "llama gqa2 untied", new FixtureSpec { Layers = 2, Embd = 128, Heads = 4, KvHeads = 2, Ffn = 172, Vocab = 300, Untied = true, Seed = 41 } },
        { "llama gqa4 tied", new FixtureSpec { Layers = 2, Embd = 256, Heads = 4, KvHeads = 1, Ffn = 200, Vocab = 300, Seed = 42 } },
        { "llama head_dim 32 != embd/heads", new FixtureSpec { Layers = 2, Embd = 96, Heads = 4, KvHeads = 2, HeadDim = 32, Ffn = 100, Vocab = 300, RopeTheta = 500000f, Seed = 43 } },
        { "qwen2 biases", new FixtureSpec { Arch = FixtureArch.Qwen2, Layers = 2, Embd = 192, Heads = 6, KvHeads = 2, Ffn = 200, Vocab = 300, RopeTheta = 1000000f, Seed = 44 } },
    };

    /// <summary>
    /// The exported GGUF of an HF folder loads in llama.cpp, and its logits match the engine run on the HF folder
    /// itself (so the loader's permutation and the exporter's layout agree with llama.cpp's RoPE).
    /// </summary>
    [LlamaCppExportTheory]
    [MemberData(nameof(Fixtures))]
    public void Exported_gguf_of_an_hf_folder_matches_the_engine_on_the_folder(string name, FixtureSpec spec)
    {
        using var temp = new TempDir("eq-export-llama");
        var hf = FixtureMaker.Write(spec, temp.Path, FixtureFormats.HuggingFace).HuggingFaceDir!;
        var gguf = temp.File("model.gguf");
        var tokens = Numbers.RandomTokens(40, spec.Vocab, seed: (int)spec.Seed);
        float[] engine;
        using (var model = ModelLoader.Load(hf))
        {
            GgufExporter.Export(model, gguf, new GgufExportOptions { OutType = TensorType.F32 });
            engine = ReferenceEngine.Load(model, new EngineOptions { Threads = 2 }).CreateSession(tokens.Length).DecodeAll(tokens);
        }
        var llama = LlamaRuntime.Logits(gguf, tokens);
        double err = Numbers.RelativeL2(engine, llama);
        output.WriteLine($"{name}: relative L2 {err:E2}");
        Assert.True(err <= MaxRelativeL2, $"{name}: relative L2 {err:E2} > {MaxRelativeL2:E0}");
    }

    /// <summary>GPT-2: llama.cpp's GELU goes through an F16 table, so the engine reproduces it (as the engine's parity test does).</summary>
    [LlamaCppExportFact]
    public void Exported_gpt2_gguf_of_an_hf_folder_matches_the_engine()
    {
        var spec = new FixtureSpec { Arch = FixtureArch.Gpt2, Layers = 2, Embd = 128, Heads = 4, KvHeads = 4, Ffn = 512, Vocab = 400, ContextLength = 64, Seed = 45 };
        using var temp = new TempDir("eq-export-llama");
        var hf = FixtureMaker.Write(spec, temp.Path, FixtureFormats.HuggingFace).HuggingFaceDir!;
        var gguf = temp.File("model.gguf");
        var tokens = Numbers.RandomTokens(40, spec.Vocab, seed: 45);
        float[] engine;
        using (var model = ModelLoader.Load(hf))
        {
            GgufExporter.Export(model, gguf);
            engine = ReferenceEngine.Load(model, new EngineOptions { Threads = 2, Gelu = GeluMode.GgmlF16Table }).CreateSession(tokens.Length).DecodeAll(tokens);
        }
        double err = Numbers.RelativeL2(engine, LlamaRuntime.Logits(gguf, tokens));
        output.WriteLine($"gpt2: relative L2 {err:E2}");
        Assert.True(err <= MaxRelativeL2, $"gpt2: relative L2 {err:E2} > {MaxRelativeL2:E0}");
    }

    /// <summary>stories260K.gguf re-exported (GGUF → Model → GGUF) gives llama.cpp the very same logits, and the same tensor bytes.</summary>
    [LlamaCppExportFact(Stories)]
    public void Stories260K_reexport_gives_identical_logits()
    {
        var source = SharedData.Require(Stories);
        using var temp = new TempDir("eq-export-llama");
        var again = temp.File("stories-again.gguf");
        using (var model = ModelLoader.Load(source)) GgufExporter.Export(model, again);
        using (var x = GgufReader.Read(source))
        using (var y = GgufReader.Read(again))
        {
            Assert.Equal(x.Tensors.Select(t => t.Name).Order(), y.Tensors.Select(t => t.Name).Order());
            foreach (var tx in x.Tensors) Assert.True(x.TensorData(tx).SequenceEqual(y.TensorData(y.FindTensor(tx.Name)!)), tx.Name);
        }
        var tokens = Numbers.RandomTokens(64, 512, seed: 3);
        tokens[0] = 1;
        var expected = LlamaRuntime.Logits(source, tokens);
        var actual = LlamaRuntime.Logits(again, tokens);
        Assert.Equal(expected, actual);
    }

    /// <summary>stories260K from its llama2.c checkpoint exports to a GGUF that llama.cpp runs like the original GGUF.</summary>
    [LlamaCppExportFact("models/stories260K/stories260K.bin", "models/stories260K/tok512.bin", Stories)]
    public void Stories260K_from_llama2c_exports_to_an_equivalent_gguf()
    {
        using var temp = new TempDir("eq-export-llama");
        var gguf = temp.File("from-llama2c.gguf");
        using (var model = ModelLoader.Load(SharedData.Require("models/stories260K/stories260K.bin"), SharedData.Require("models/stories260K/tok512.bin")))
            GgufExporter.Export(model, gguf);
        var tokens = Numbers.RandomTokens(64, 512, seed: 4);
        tokens[0] = 1;
        Assert.Equal(LlamaRuntime.Logits(SharedData.Require(Stories), tokens), LlamaRuntime.Logits(gguf, tokens));
    }

    /// <summary>F16 export rounds exactly as llama.cpp's own F32 → F16 conversion (llama_model_quantize to MOSTLY_F16).</summary>
    [LlamaCppExportFact]
    public void F16_export_equals_llama_cpp_f16_rounding()
    {
        var spec = new FixtureSpec { Layers = 2, Embd = 64, Heads = 4, KvHeads = 2, Ffn = 172, Vocab = 300, Untied = true, Seed = 46 };
        using var temp = new TempDir("eq-export-llama");
        var f32 = FixtureMaker.Write(spec, temp.Path, FixtureFormats.Gguf).GgufPath!;
        string ours = temp.File("ours-f16.gguf"), theirs = temp.File("llama-f16.gguf");
        using (var model = ModelLoader.Load(f32)) GgufExporter.Export(model, ours, new GgufExportOptions { OutType = TensorType.F16 });
        LlamaRuntime.Configure();
        LlamaQuantizer.Quantize(f32, theirs, LlamaFileType.MostlyF16, threads: 2);
        using var a = GgufReader.Read(ours);
        using var b = GgufReader.Read(theirs);
        Assert.Equal(b.Tensors.Select(t => t.Name).Order(), a.Tensors.Select(t => t.Name).Order());
        int f16 = 0;
        foreach (var tb in b.Tensors)
        {
            var ta = a.FindTensor(tb.Name)!;
            Assert.Equal(tb.Type, ta.Type);
            Assert.True(a.TensorData(ta).SequenceEqual(b.TensorData(tb)), $"{tb.Name}: bytes differ from llama.cpp's {tb.Type}");
            if (tb.Type == TensorType.F16) f16++;
        }
        Assert.True(f16 >= 2 * spec.Layers * 7 / 2, $"only {f16} tensors were F16 in llama.cpp's output");
    }
}
