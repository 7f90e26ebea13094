using System.Diagnostics;
using EdgeQuant.Core.Errors;
using EdgeQuant.Export.Onnx;
using EdgeQuant.Fixtures;
using EdgeQuant.Models;
using EdgeQuant.Models.Engine;
using EdgeQuant.Models.Tokenizers;
using EdgeQuant.Runtimes;
using EdgeQuant.Runtimes.Evaluation;
using EdgeQuant.Runtimes.OnnxRuntime;
using EdgeQuant.Testing;
using Xunit.Abstractions;

namespace EdgeQuant.Export.Tests.Onnx;

/// <summary>
/// Exported ONNX decoders run in the real ONNX Runtime (through the project's binding) and are compared with the
/// reference engine on the same model: all-position logits in one pass, then the same positions fed in pieces
/// through the KV cache.
/// </summary>
public sealed class OnnxExportTests(ITestOutputHelper output)
{
    // The engine and ORT both compute in F32 but sum in different orders (packed SGEMM vs MLAS, softmax and norm
    // reductions); measured agreement is ~1e-6, and 1e-4 is the bar.
    private const double LogitsTolerance = 1e-4;

    public static TheoryData<string, FixtureSpec, bool> Fixtures => new()
    {
        { "llama gqa2 tied (gguf)", new FixtureSpec { Layers = 2, Embd = 64, Heads = 4, KvHeads = 2, Ffn = 172, Vocab = 300, Seed = 31 }, false },
        { "llama gqa4 untied, attention_bias, head_dim 32 (hf)", new FixtureSpec { Layers = 2, Embd = 96, Heads = 4, KvHeads = 1, HeadDim = 32, Ffn = 80, Vocab = 320, Untied = true, AttentionBias = true, Seed = 32 }, true },
        { "mistral-like gqa theta 1e6 (gguf)", new FixtureSpec { Layers = 2, Embd = 64, Heads = 8, KvHeads = 2, Ffn = 96, Vocab = 300, Untied = true, RopeTheta = 1e6f, Seed = 33 }, false },
        { "qwen2 biases (hf)", new FixtureSpec { Arch = FixtureArch.Qwen2, Layers = 2, Embd = 96, Heads = 6, KvHeads = 2, Ffn = 120, Vocab = 300, RopeTheta = 1e6f, Seed = 34 }, true },
        { "gpt2 (gguf)", new FixtureSpec { Arch = FixtureArch.Gpt2, Layers = 2, Embd = 64, Heads = 4, KvHeads = 4, Ffn = 256, Vocab = 320, ContextLength = 64, Seed = 35 }, false },
        { "gpt2 untied (hf)", new FixtureSpec { Arch = FixtureArch.Gpt2, Layers = 1, Embd = 32, Heads = 2, KvHeads = 2, Ffn = 128, Vocab = 300, ContextLength = 64, Untied = true, Seed = 36 }, true },
    };

    [OnnxExportTheory]
    [MemberData(nameof(Fixtures))]
    public void Fixture_logits_match_the_engine_full_and_through_the_kv_cache(string name, FixtureSpec spec, bool fromHf)
    {
        using var temp = new TempDir("eq-onnx");
        var written = FixtureMaker.Write(spec, temp.Path, fromHf ? FixtureFormats.HuggingFace : FixtureFormats.Gguf);
        using var model = ModelLoader.Load(fromHf ? written.HuggingFaceDir! : written.GgufPath!);
        var tokens = Numbers.RandomTokens(40, spec.Vocab, seed: spec.GetHashCode());
        var (full, stepped) = CompareWithEngine(model, temp.File("onnx"), tokens);
        output.WriteLine($"{name}: rel. L2 full {full:E2}, through the cache {stepped:E2}");
    }

    /// <summary>
    /// The same fixtures with attention as ORT's fused com.microsoft GroupQueryAttention (RoPE from cos/sin caches,
    /// causal masking and the cache inside the kernel): same logits as the engine, in one call and through the cache.
    /// </summary>
    [OnnxExportTheory]
    [MemberData(nameof(Fixtures))]
    public void Fused_attention_logits_match_the_engine_full_and_through_the_kv_cache(string name, FixtureSpec spec, bool fromHf)
    {
        using var temp = new TempDir("eq-onnx-gqa");
        var written = FixtureMaker.Write(spec, temp.Path, fromHf ? FixtureFormats.HuggingFace : FixtureFormats.Gguf);
        using var model = ModelLoader.Load(fromHf ? written.HuggingFaceDir! : written.GgufPath!);
        var tokens = Numbers.RandomTokens(40, spec.Vocab, seed: spec.GetHashCode());
        if (model.Config.HeadDim % 16 != 0)
        {
            // ORT's kernel takes head sizes in multiples of 16: refused up front, nothing left behind.
            var e = Assert.Throws<BadInputException>(() => OnnxExporter.Export(model, temp.File("onnx"), new OnnxExportOptions { FusedAttention = true }));
            Assert.Contains("multiple of 16", e.Message);
            Assert.False(Directory.Exists(temp.File("onnx")));
            return;
        }
        var (full, stepped) = CompareWithEngine(model, temp.File("onnx"), tokens, new OnnxExportOptions { FusedAttention = true });
        var graph = EdgeQuant.Formats.Onnx.Proto.ModelProto.Parser.ParseFrom(File.ReadAllBytes(Path.Combine(temp.File("onnx"), OnnxExporter.ModelFileName)));
        Assert.Equal(model.Config.BlockCount, graph.Graph.Node.Count(n => n.OpType == "GroupQueryAttention" && n.Domain == "com.microsoft"));
        Assert.DoesNotContain(graph.Graph.Node, n => n.OpType == "Softmax");
        output.WriteLine($"{name} (GroupQueryAttention): rel. L2 full {full:E2}, through the cache {stepped:E2}");
    }

    /// <summary>
    /// Standard attention split into N causal query blocks (the default is 4, used by every other test here): one block,
    /// an uneven split, and more blocks than a piece has tokens (later blocks empty) all give the engine's logits, full
    /// and through the cache (whose single-token steps take the If's single-block branch).
    /// </summary>
    [OnnxExportTheory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(16)]
    public void Attention_in_query_blocks_matches_the_engine_for_any_block_count(int blocks)
    {
        using var temp = new TempDir("eq-onnx-blocks");
        var spec = new FixtureSpec { Layers = 2, Embd = 64, Heads = 4, KvHeads = 2, Ffn = 96, Vocab = 300, Seed = 37 };
        using var model = ModelLoader.Load(FixtureMaker.Write(spec, temp.Path, FixtureFormats.Gguf).GgufPath!);
        var tokens = Numbers.RandomTokens(40, spec.Vocab, seed: 370 + blocks);
        var (full, stepped) = CompareWithEngine(model, temp.File("onnx"), tokens, new OnnxExportOptions { AttentionBlocks = blocks });
        var graph = EdgeQuant.Formats.Onnx.Proto.ModelProto.Parser.ParseFrom(File.ReadAllBytes(Path.Combine(temp.File("onnx"), OnnxExporter.ModelFileName)));
        // Blocks live in an If's then-branch beside a single-block else-branch (taken by one-position calls).
        static IEnumerable<EdgeQuant.Formats.Onnx.Proto.NodeProto> All(EdgeQuant.Formats.Onnx.Proto.GraphProto g) =>
            g.Node.Concat(g.Node.SelectMany(n => n.Attribute.Where(a => a.G is not null).SelectMany(a => All(a.G))));
        Assert.Equal(spec.Layers * (blocks == 1 ? 1 : blocks + 1), All(graph.Graph).Count(n => n.OpType == "Softmax"));
        Assert.Equal(blocks == 1 ? 0 : spec.Layers, graph.Graph.Node.Count(n => n.OpType == "If"));
        output.WriteLine($"{blocks} block(s): rel. L2 full {full:E2}, through the cache {stepped:E2}");
    }

    [OnnxExportFact("models/stories260K/stories260K.gguf")]
    public void Stories260K_logits_match_the_engine_and_the_folder_is_complete()
    {
        using var temp = new TempDir("eq-onnx");
        using var model = ModelLoader.Load(SharedData.Require("models/stories260K/stories260K.gguf"));
        var tokenizer = Tokenizer.FromModel(model);
        var tokens = tokenizer.Encode("Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends.", addSpecial: true, parseSpecial: false);
        var (full, stepped) = CompareWithEngine(model, temp.File("onnx"), tokens);
        output.WriteLine($"stories260K ({tokens.Length} tokens): rel. L2 full {full:E2}, through the cache {stepped:E2}");

        var dir = temp.File("onnx");
        Assert.True(File.Exists(Path.Combine(dir, "tokenizer.json")));
        Assert.Equal(tokens, Tokenizer.FromHuggingFace(Path.Combine(dir, "tokenizer.json")).Encode(
            "Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends.", addSpecial: true, parseSpecial: false));
        using var runner = OrtLogitsRunner.Open(Path.Combine(dir, OnnxExporter.ModelFileName));
        Assert.Equal(model.Config.ContextLength, runner.ContextLength); // read from genai_config.json
        Assert.True(runner.HasKvCache);
        Assert.Single(Directory.GetDirectories(temp.Path)); // no temporary folder left behind
    }

    [OnnxExportFact("models/stories260K/stories260K.gguf", "corpus/tinystories-sample.txt")]
    public void Stories260K_perplexity_in_onnx_runtime_equals_the_engines()
    {
        using var temp = new TempDir("eq-onnx");
        string gguf = SharedData.Require("models/stories260K/stories260K.gguf");
        using (var model = ModelLoader.Load(gguf)) OnnxExporter.Export(model, temp.File("onnx"));
        var text = Perplexity.PrepareText(File.ReadAllText(SharedData.Require("corpus/tinystories-sample.txt")));
        var options = new PerplexityOptions(128, MaxChunks: 8);

        var (engineRunner, engineTokens, engineBos) = EngineLogitsRunner.OpenForText(gguf, text, 128, threads: 1);
        PerplexityResult engine;
        using (engineRunner) engine = Perplexity.Evaluate(engineRunner, engineTokens, engineBos, options);

        // As `eval --runtime onnxruntime` does: the tokenizer.json beside the model, BOS when it adds one.
        var tokenizer = Tokenizer.FromHuggingFace(Path.Combine(temp.File("onnx"), "tokenizer.json"));
        var tokens = tokenizer.Encode(text, addSpecial: true, parseSpecial: false);
        Assert.Equal(engineTokens, tokens);
        PerplexityResult ort;
        using (var runner = OrtLogitsRunner.Open(Path.Combine(temp.File("onnx"), OnnxExporter.ModelFileName),
                   new OrtLogitsRunnerOptions { Session = new OrtSessionSettings { IntraOpThreads = 1, InterOpThreads = 1 } }))
            ort = Perplexity.Evaluate(runner, tokens, tokenizer.AddBos ? tokenizer.BosId : null, options);

        output.WriteLine($"PPL engine {engine.Perplexity:F4} ± {engine.Uncertainty:F4}, ORT {ort.Perplexity:F4} ({ort.ScoredTokens} tokens)");
        Assert.Equal(engine.ScoredTokens, ort.ScoredTokens);
        Assert.InRange(Math.Abs(ort.Perplexity / engine.Perplexity - 1), 0, 0.001);
    }

    [OnnxExportFact]
    public void Batched_left_padded_rows_match_their_unpadded_runs()
    {
        // The runner feeds batch 1 only; this drives the session directly: two rows, the second left-padded, whose
        // logits at real positions must equal the unpadded single-row run (the padding mask really masks).
        using var temp = new TempDir("eq-onnx");
        var spec = new FixtureSpec { Layers = 2, Embd = 64, Heads = 4, KvHeads = 2, Ffn = 96, Vocab = 300, Seed = 41 };
        using var model = ModelLoader.Load(FixtureMaker.Write(spec, temp.Path, FixtureFormats.Gguf).GgufPath!);
        var r = OnnxExporter.Export(model, temp.File("onnx"));
        using var session = OrtSession.FromFile(r.ModelPath);
        int[] a = Numbers.RandomTokens(8, spec.Vocab, 1), shortRow = Numbers.RandomTokens(5, spec.Vocab, 2);
        int pad = a.Length - shortRow.Length, v = spec.Vocab;

        float[] Run(long[][] ids, long[][] mask, long[][] positions)
        {
            int batch = ids.Length, n = ids[0].Length;
            var inputs = new List<KeyValuePair<string, OrtValue>>
            {
                new("input_ids", OrtValue.CreateTensor(ids.SelectMany(x => x).ToArray(), [batch, n])),
                new("attention_mask", OrtValue.CreateTensor(mask.SelectMany(x => x).ToArray(), [batch, n])),
                new("position_ids", OrtValue.CreateTensor(positions.SelectMany(x => x).ToArray(), [batch, n])),
            };
            for (int l = 0; l < spec.Layers; l++)
                foreach (var kind in new[] { "key", "value" })
                    inputs.Add(new($"past_key_values.{l}.{kind}", OrtValue.Allocate(OrtElementType.Float, [batch, spec.KvHeads, 0, spec.Embd / spec.Heads])));
            try
            {
                using var result = session.Run(inputs);
                return result["logits"].GetTensorData<float>().ToArray();
            }
            finally
            {
                foreach (var i in inputs) i.Value.Dispose();
            }
        }

        long[] L(IEnumerable<int> x) => x.Select(t => (long)t).ToArray();
        var single = Run([L(shortRow)], [L(Enumerable.Repeat(1, shortRow.Length))], [L(Enumerable.Range(0, shortRow.Length))]);
        var first = Run([L(a)], [L(Enumerable.Repeat(1, a.Length))], [L(Enumerable.Range(0, a.Length))]);
        var batched = Run(
            [L(a), L(Enumerable.Repeat(0, pad).Concat(shortRow))],
            [L(Enumerable.Repeat(1, a.Length)), L(Enumerable.Repeat(0, pad).Concat(Enumerable.Repeat(1, shortRow.Length)))],
            [L(Enumerable.Range(0, a.Length)), L(Enumerable.Repeat(1, pad).Concat(Enumerable.Range(0, shortRow.Length)))]);
        Assert.InRange(Numbers.RelativeL2(batched.AsSpan(0, a.Length * v), first), 0, LogitsTolerance);
        Assert.InRange(Numbers.RelativeL2(batched.AsSpan((a.Length + pad) * v, shortRow.Length * v), single), 0, LogitsTolerance);
    }

    [OnnxExportFact]
    public void External_data_is_written_beside_the_model_and_loads()
    {
        using var temp = new TempDir("eq-onnx");
        var spec = new FixtureSpec { Layers = 1, Embd = 32, Heads = 4, KvHeads = 2, Ffn = 64, Vocab = 300, Seed = 42 };
        using var model = ModelLoader.Load(FixtureMaker.Write(spec, temp.Path, FixtureFormats.Gguf).GgufPath!);
        var r = OnnxExporter.Export(model, temp.File("onnx"), new OnnxExportOptions { ExternalDataThresholdBytes = 1 });
        Assert.True(r.ExternalData);
        var data = Path.Combine(r.Folder, OnnxExporter.ExternalDataFileName);
        Assert.True(new FileInfo(data).Length >= r.WeightBytes - 64 * 1024);
        Assert.True(new FileInfo(r.ModelPath).Length < 64 * 1024);
        var tokens = Numbers.RandomTokens(12, spec.Vocab, 3);
        var expected = EngineLogits(model, tokens);
        Assert.InRange(Numbers.RelativeL2(OrtLogits(r.ModelPath, tokens, [tokens.Length]), expected), 0, LogitsTolerance);
        OnnxChecker.Check(r.ModelPath);
    }

    [Fact]
    public void Bad_input_is_refused_without_leaving_a_folder()
    {
        using var temp = new TempDir("eq-onnx");
        var spec = new FixtureSpec { Layers = 1, Embd = 32, Heads = 4, KvHeads = 2, Ffn = 64, Vocab = 300, Seed = 43 };
        var gguf = FixtureMaker.Write(spec, temp.Path, FixtureFormats.Gguf).GgufPath!;
        using var model = ModelLoader.Load(gguf);
        var existing = Directory.CreateDirectory(temp.File("exists")).FullName;
        Assert.Contains("already exists", Assert.Throws<BadInputException>(() => OnnxExporter.Export(model, existing)).Message);
        Assert.Contains("output is the input", Assert.Throws<BadInputException>(() => OnnxExporter.Export(model, gguf)).Message);
        Assert.Contains("17..21", Assert.Throws<BadInputException>(() => OnnxExporter.Export(model, temp.File("o"), new OnnxExportOptions { Opset = 12 })).Message);
        Assert.Contains("--attention-blocks: 0 is outside 1..16", Assert.Throws<BadInputException>(() => OnnxExporter.Export(model, temp.File("o"), new OnnxExportOptions { AttentionBlocks = 0 })).Message);
        Assert.Contains("--attention-blocks: 17 is outside 1..16", Assert.Throws<BadInputException>(() => OnnxExporter.Export(model, temp.File("o"), new OnnxExportOptions { AttentionBlocks = 17 })).Message);
        Assert.False(Directory.Exists(temp.File("o")));
        Assert.Empty(Directory.GetDirectories(temp.Path, ".*.tmp"));
    }

    /// <summary>Exports, checks, and returns (full-sequence, through-the-cache) relative L2 against the engine; asserts both.</summary>
    private static (double Full, double Stepped) CompareWithEngine(Model model, string dir, int[] tokens, OnnxExportOptions? options = null)
    {
        var r = OnnxExporter.Export(model, dir, options);
        Assert.False(r.ExternalData);
        OnnxChecker.Check(r.ModelPath);
        var expected = EngineLogits(model, tokens);
        double full = Numbers.RelativeL2(OrtLogits(r.ModelPath, tokens, [tokens.Length]), expected);
        // Uneven pieces: a prefill, single tokens (the decode path), then a short batch on top of the cache.
        int n = tokens.Length;
        int[] pieces = [n / 3, 1, 1, 1, n - n / 3 - 3];
        double stepped = Numbers.RelativeL2(OrtLogits(r.ModelPath, tokens, pieces), expected);
        Assert.InRange(full, 0, LogitsTolerance);
        Assert.InRange(stepped, 0, LogitsTolerance);
        return (full, stepped);
    }

    private static float[] EngineLogits(Model model, int[] tokens)
    {
        var engine = ReferenceEngine.Load(model, new EngineOptions { Threads = 1 });
        return engine.CreateSession(tokens.Length).DecodeAll(tokens);
    }

    /// <summary>All-position logits from ORT, feeding the tokens in the given pieces (each piece extends the KV cache).</summary>
    private static float[] OrtLogits(string modelPath, int[] tokens, int[] pieces)
    {
        using var runner = OrtLogitsRunner.Open(modelPath, new OrtLogitsRunnerOptions { Session = new OrtSessionSettings { IntraOpThreads = 1, InterOpThreads = 1 } });
        var logits = new float[tokens.Length * runner.VocabSize];
        int at = 0;
        foreach (int len in pieces)
        {
            var rows = Enumerable.Range(0, len).ToArray();
            runner.Evaluate(tokens.AsSpan(at, len), at, rows, logits.AsSpan(at * runner.VocabSize, len * runner.VocabSize));
            at += len;
        }
        Assert.Equal(tokens.Length, at);
        return logits;
    }
}
