using System.Text.Json;
using EdgeQuant.Compression.GgufQuant;
using EdgeQuant.Core.Errors;
using EdgeQuant.Core.Tensors;
using EdgeQuant.Export.Onnx;
using EdgeQuant.Export.Tests.Onnx;
using EdgeQuant.Fixtures;
using EdgeQuant.Formats.Gguf;
using EdgeQuant.Models;
using EdgeQuant.Models.Engine;
using EdgeQuant.Runtimes.LlamaCpp;
using EdgeQuant.Runtimes.LlamaCpp.Native;
using EdgeQuant.Runtimes.OnnxRuntime;
using EdgeQuant.Testing;
using Xunit.Abstractions;

namespace EdgeQuant.Export.Tests;

/// <summary>
/// A model whose layers differ in query heads, KV heads and FFN width (what structured pruning leaves), cut from a
/// random Llama fixture by <see cref="PerLayerSlicer"/>: exported as GGUF (llama.cpp's <c>deci</c>) it runs in the real
/// llama.cpp, exported as ONNX it runs in the real ONNX Runtime, both with the engine's logits; it round-trips through
/// GGUF; it quantizes as llama_model_quantize does; HF export refuses it.
/// </summary>
public sealed class PerLayerWidthExportTests(ITestOutputHelper output)
{
    /// <summary>The issue's bound; F32 implementations differing in summation order agree to ~1e-6.</summary>
    private const double MaxRelativeL2 = 1e-4;

    private static readonly FixtureSpec Spec = new() { Layers = 3, Embd = 64, Heads = 4, KvHeads = 2, Ffn = 172, Vocab = 300, Untied = true, Seed = 71 };

    /// <summary>Layer 0 narrower than the largest (llama.cpp derives defaults from layer 0); GQA ratios 2, 2, 1.</summary>
    private static IReadOnlyList<LayerSlice> Slices(int ffn, int seed)
    {
        var rng = new Random(seed);
        int[] Pick(int count) => [.. Enumerable.Range(0, ffn).OrderBy(_ => rng.Next()).Take(count)];
        return
        [
            new LayerSlice(KvHeads: [1], QueryHeads: [2, 3], Channels: [.. Pick(100).Order()]),
            new LayerSlice(KvHeads: [0, 1], QueryHeads: [0, 1, 2, 3], Channels: [.. Enumerable.Range(0, ffn)]),
            new LayerSlice(KvHeads: [0], QueryHeads: [1], Channels: Pick(40)), // unsorted: any consistent order is the same FFN
        ];
    }

    private static Model SlicedFixture(TempDir temp, FixtureSpec spec, IReadOnlyList<LayerSlice>? slices = null)
    {
        var gguf = FixtureMaker.Write(spec, temp.File("fixture"), FixtureFormats.Gguf).GgufPath!;
        using var source = ModelLoader.Load(gguf);
        return PerLayerSlicer.Slice(source, slices ?? Slices(spec.Ffn, (int)spec.Seed));
    }

    private static float[] EngineLogits(Model model, int[] tokens) =>
        ReferenceEngine.Load(model, new EngineOptions { Threads = 1 }).CreateSession(tokens.Length).DecodeAll(tokens);

    [LlamaCppExportFact]
    public void Gguf_export_is_deci_and_llama_cpp_gives_the_engines_logits()
    {
        using var temp = new TempDir("eq-perlayer");
        using var model = SlicedFixture(temp, Spec);
        Assert.Equal([2, 4, 1], model.Config.LayerHeadCounts!);
        var gguf = temp.File("pruned.gguf");
        GgufExporter.Export(model, gguf);
        using (var file = GgufReader.Read(gguf))
        {
            Assert.Equal("deci", file.Find("general.architecture")!.AsString());
            Assert.Equal([2L, 4, 1], file.Find("deci.attention.head_count")!.AsInt64Array()!);
            Assert.Equal([1L, 2, 1], file.Find("deci.attention.head_count_kv")!.AsInt64Array()!);
            Assert.Equal([100L, 172, 40], file.Find("deci.feed_forward_length")!.AsInt64Array()!);
            // Layer 0's head count (2) would give llama.cpp a head size of 64 / 2; the explicit keys say 16.
            Assert.True(file.Find("deci.attention.key_length")!.TryGetInt64(out long k) && k == 16);
            Assert.True(file.Find("deci.rope.dimension_count")!.TryGetInt64(out long rot) && rot == 16);
        }

        var tokens = Numbers.RandomTokens(48, Spec.Vocab, seed: 5);
        var engine = EngineLogits(model, tokens);
        LlamaRuntime.Configure();
        using var runner = LlamaCppRunner.Open(gguf, LlamaContextOptions.FullPrecision(tokens.Length, threads: 1));
        Assert.Equal(2, runner.Model.HeadCount); // llama_model_n_head reports layer 0
        var llama = new float[tokens.Length * runner.VocabSize];
        runner.Evaluate(tokens, 0, Enumerable.Range(0, tokens.Length).ToArray(), llama);
        double err = Numbers.RelativeL2(engine, llama);
        output.WriteLine($"deci GGUF in llama.cpp vs engine, {tokens.Length} positions: relative L2 {err:E2}");
        Assert.True(err <= MaxRelativeL2, $"relative L2 {err:E2} > {MaxRelativeL2:E0}");
    }

    [Fact]
    public void Gguf_round_trip_keeps_the_config_and_every_tensor()
    {
        using var temp = new TempDir("eq-perlayer");
        using var model = SlicedFixture(temp, Spec);
        var gguf = temp.File("pruned.gguf");
        GgufExporter.Export(model, gguf);
        using var again = ModelLoader.Load(gguf);
        var (a, b) = (model.Config, again.Config);
        Assert.Equal(Architecture.Llama, b.Architecture);
        Assert.Equal("deci", b.SourceArchitecture);
        Assert.Equal(a.LayerHeadCounts, b.LayerHeadCounts);
        Assert.Equal(a.LayerHeadCountsKv, b.LayerHeadCountsKv);
        Assert.Equal(a.LayerFeedForwardLengths, b.LayerFeedForwardLengths);
        Assert.Equal((a.HeadCount, a.HeadCountKv, a.FeedForwardLength, a.HeadDim, a.EmbeddingLength, a.BlockCount, a.VocabSize),
            (b.HeadCount, b.HeadCountKv, b.FeedForwardLength, b.HeadDim, b.EmbeddingLength, b.BlockCount, b.VocabSize));
        Assert.Equal((a.RopeTheta, a.NormEpsilon, a.TiedEmbeddings, a.AttentionBias), (b.RopeTheta, b.NormEpsilon, b.TiedEmbeddings, b.AttentionBias));
        Assert.Equal(model.Tensors.Select(t => t.Name).Order(), again.Tensors.Select(t => t.Name).Order());
        foreach (var t in model.Tensors)
        {
            var u = again.Get(t.Name);
            Assert.Equal(t.Shape, u.Shape);
            Assert.True(t.RawBytes().SequenceEqual(u.RawBytes()), t.Name);
        }
        var tokens = Numbers.RandomTokens(20, Spec.Vocab, seed: 6);
        Assert.Equal(EngineLogits(model, tokens), EngineLogits(again, tokens));

        // A uniform model stays llama, with scalar keys.
        using var uniform = ModelLoader.Load(FixtureMaker.Write(Spec, temp.File("uniform"), FixtureFormats.Gguf).GgufPath!);
        var plain = temp.File("uniform.gguf");
        GgufExporter.Export(uniform, plain);
        using var file = GgufReader.Read(plain);
        Assert.Equal("llama", file.Find("general.architecture")!.AsString());
        Assert.False(file.Find("llama.attention.head_count")!.IsArray);
    }

    [OnnxExportFact]
    public void Onnx_export_runs_in_onnx_runtime_with_the_engines_logits_full_and_through_the_cache()
    {
        using var temp = new TempDir("eq-perlayer");
        using var model = SlicedFixture(temp, Spec);
        var r = OnnxExporter.Export(model, temp.File("onnx"));
        OnnxChecker.Check(r.ModelPath);
        var tokens = Numbers.RandomTokens(40, Spec.Vocab, seed: 7);
        var expected = EngineLogits(model, tokens);
        double full = Numbers.RelativeL2(OrtLogits(r.ModelPath, tokens, [tokens.Length]), expected);
        double stepped = Numbers.RelativeL2(OrtLogits(r.ModelPath, tokens, [13, 1, 1, 1, 24]), expected);
        output.WriteLine($"ONNX in ORT vs engine: full {full:E2}, prefill + steps through the KV cache {stepped:E2}");
        Assert.InRange(full, 0, MaxRelativeL2);
        Assert.InRange(stepped, 0, MaxRelativeL2);

        using var genai = JsonDocument.Parse(File.ReadAllText(Path.Combine(r.Folder, OnnxExporter.GenaiConfigFileName)));
        var decoder = genai.RootElement.GetProperty("model").GetProperty("decoder");
        Assert.Equal(4, decoder.GetProperty("num_attention_heads").GetInt32());
        Assert.Equal(2, decoder.GetProperty("num_key_value_heads").GetInt32());
        var proto = Formats.Onnx.Proto.ModelProto.Parser.ParseFrom(File.ReadAllBytes(r.ModelPath));
        var meta = proto.MetadataProps.ToDictionary(p => p.Key, p => p.Value);
        Assert.Equal("2,4,1", meta["edgequant.layer_num_attention_heads"]);
        Assert.Equal("1,2,1", meta["edgequant.layer_num_key_value_heads"]);
        Assert.Equal("100,172,40", meta["edgequant.layer_intermediate_size"]);
        // The cache inputs are each layer's own size.
        var pastKv = proto.Graph.Input.Where(i => i.Name.EndsWith(".key", StringComparison.Ordinal))
            .Select(i => i.Type.TensorType.Shape.Dim[1].DimValue).ToArray();
        Assert.Equal([1L, 2, 1], pastKv);
    }

    [Fact]
    public void Hf_export_refuses_and_points_to_gguf_or_onnx()
    {
        using var temp = new TempDir("eq-perlayer");
        using var model = SlicedFixture(temp, Spec);
        var e = Assert.Throws<BadInputException>(() => HfExporter.Export(model, temp.File("hf")));
        Assert.Contains("GGUF", e.Message);
        Assert.Contains("ONNX", e.Message);
        Assert.False(Directory.Exists(temp.File("hf")));
    }

    [Fact]
    public void Gguf_with_bad_per_layer_arrays_is_refused_naming_the_key()
    {
        using var temp = new TempDir("eq-perlayer");
        using var model = SlicedFixture(temp, Spec);
        var good = temp.File("pruned.gguf");
        GgufExporter.Export(model, good);

        void Refused(string key, GgufValue value, string expected, string arch = "deci")
        {
            using var src = GgufReader.Read(good);
            var md = src.Metadata.Select(kv => new KeyValuePair<string, GgufValue>(kv.Key, kv.Key == key ? value : kv.Value))
                .Select(kv => arch == "deci" || !kv.Key.StartsWith("deci.", StringComparison.Ordinal) ? kv : new(arch + kv.Key[4..], kv.Value))
                .Select(kv => kv.Key == "general.architecture" ? new KeyValuePair<string, GgufValue>(kv.Key, arch) : kv)
                .ToList();
            var bad = temp.File($"bad-{Guid.NewGuid():N}.gguf");
            GgufWriter.Write(bad, md, GgufWriter.TensorsOf(src));
            var e = Assert.ThrowsAny<EdgeQuantException>(() => ModelLoader.Load(bad).Dispose());
            Assert.Contains(expected, e.Message);
        }
        Refused("deci.attention.head_count", GgufValue.Array(new[] { 2, 4 }), "2 per-layer values for 3 layers");
        Refused("deci.attention.head_count_kv", GgufValue.Array(new[] { 1, 3, 1 }), "layer 1: 4 heads are not a multiple of 3 KV heads");
        Refused("deci.feed_forward_length", GgufValue.Array(new[] { 100, 0, 40 }), "layers without attention or FFN are not supported");
        Refused("deci.attention.head_count", GgufValue.Array(new[] { "2", "4", "1" }), "array of integers");
        // Renamed to qwen2 after the replacement: the deci arrays become qwen2's.
        Refused("deci.attention.head_count", GgufValue.Array(new[] { 2, 4, 1 }), "llama/deci only", arch: "qwen2");
    }

    public static TheoryData<string> QuantTypes => new() { "Q8_0", "Q4_0", "Q2_K", "Q3_K_M", "Q4_K_M", "Q5_K_S" };

    /// <summary>
    /// The quantized deci GGUF equals llama_model_quantize's, tensor for tensor (types and bytes). Rows of 256 so every
    /// K-quant applies; layer 0 has GQA ratio 2 and the widest layer ratio 4, so the policy's n_gqa (layer 0 in
    /// llama.cpp) matters for Q2_K/Q3_K_M's attn_v.
    /// </summary>
    [LlamaCppExportTheory]
    [MemberData(nameof(QuantTypes))]
    public void Quantized_deci_equals_llama_model_quantize(string type)
    {
        var spec = new FixtureSpec { Layers = 3, Embd = 256, Heads = 8, KvHeads = 2, Ffn = 768, Vocab = 300, Untied = true, Seed = 72 };
        using var temp = new TempDir("eq-perlayer");
        IReadOnlyList<LayerSlice> slices =
        [
            new([1], [4, 5], [.. Enumerable.Range(0, 512)]),
            new([0, 1], [.. Enumerable.Range(0, 8)], [.. Enumerable.Range(0, 768)]),
            new([0], [0, 1, 2, 3], [.. Enumerable.Range(256, 256)]),
        ];
        string input = temp.File("pruned.gguf"), ours = temp.File("ours.gguf"), theirs = temp.File("llama.gguf");
        using (var model = SlicedFixture(temp, spec, slices)) GgufExporter.Export(model, input, new GgufExportOptions { OutType = TensorType.F16 });
        var fileType = QuantFileTypes.Parse(type);
        using (var model = ModelLoader.Load(input))
            GgufQuantizer.Quantize(model, ours, new GgufQuantizeOptions { FileType = fileType, Threads = 1 });
        LlamaRuntime.Configure();
        LlamaQuantizer.Quantize(input, theirs, (LlamaFileType)fileType.LlamaFtype, new LlamaQuantizeOptions { Threads = 1 });

        using var a = GgufReader.Read(ours);
        using var b = GgufReader.Read(theirs);
        Assert.Equal("deci", a.Find("general.architecture")!.AsString());
        Assert.Equal(b.Tensors.Select(t => t.Name), a.Tensors.Select(t => t.Name));
        foreach (var tb in b.Tensors)
        {
            var ta = a.FindTensor(tb.Name)!;
            Assert.True(tb.Type == ta.Type, $"{type}: {tb.Name} is {ta.Type} in ours, {tb.Type} in llama.cpp's");
            Assert.True(a.TensorData(ta).SequenceEqual(b.TensorData(tb)), $"{type}: {tb.Name} bytes differ");
        }
        output.WriteLine($"{type}: {b.Tensors.Count} tensors equal; attn_v types {string.Join(", ", b.Tensors.Where(t => t.Name.Contains("attn_v")).Select(t => t.Type))}");
    }

    /// <summary>All-position logits from ORT, the tokens fed in the given pieces (each extends the KV cache).</summary>
    private static float[] OrtLogits(string modelPath, int[] tokens, int[] pieces)
    {
        using var runner = OrtLogitsRunner.Open(modelPath, new OrtLogitsRunnerOptions { Session = new OrtSessionSettings { IntraOpThreads = 1, InterOpThreads = 1 } });
        var logits = new float[tokens.Length * runner.VocabSize];
        int at = 0;
        foreach (int len in pieces)
        {
            runner.Evaluate(tokens.AsSpan(at, len), at, Enumerable.Range(0, len).ToArray(), logits.AsSpan(at * runner.VocabSize, len * runner.VocabSize));
            at += len;
        }
        Assert.Equal(tokens.Length, at);
        return logits;
    }
}
