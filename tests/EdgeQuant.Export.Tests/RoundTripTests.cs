using EdgeQuant.Core.Tensors;
using EdgeQuant.Fixtures;
using EdgeQuant.Formats.Gguf;
using EdgeQuant.Models;
using EdgeQuant.Models.Tokenizers;
using EdgeQuant.Testing;

namespace EdgeQuant.Export.Tests;

/// <summary>HF → GGUF → HF and GGUF → HF → GGUF on fixtures of several shapes, compared byte for byte.</summary>
public class RoundTripTests
{
    public static TheoryData<string, FixtureSpec> Shapes => new()
    {
        { "llama gqa2 tied", new FixtureSpec { Layers = 2, Embd = 64, Heads = 4, KvHeads = 2, Ffn = 172, Vocab = 300, Seed = 21 } },
        { "llama gqa4 untied", new FixtureSpec { Layers = 2, Embd = 128, Heads = 4, KvHeads = 1, Ffn = 100, Vocab = 320, Untied = true, Seed = 22 } },
        { "llama head_dim != embd/heads, attention_bias", new FixtureSpec { Layers = 1, Embd = 96, Heads = 4, KvHeads = 2, HeadDim = 32, Ffn = 80, Vocab = 300, AttentionBias = true, Seed = 23 } },
        { "mistral-like gqa", new FixtureSpec { Layers = 2, Embd = 64, Heads = 8, KvHeads = 2, Ffn = 96, Vocab = 300, Untied = true, RopeTheta = 1e6f, Seed = 24 } },
        { "qwen2 biases", new FixtureSpec { Arch = FixtureArch.Qwen2, Layers = 2, Embd = 96, Heads = 6, KvHeads = 2, Ffn = 120, Vocab = 300, RopeTheta = 1e6f, Seed = 25 } },
        { "gpt2", new FixtureSpec { Arch = FixtureArch.Gpt2, Layers = 2, Embd = 64, Heads = 4, KvHeads = 4, Ffn = 256, Vocab = 320, ContextLength = 64, Seed = 26 } },
        { "gpt2 untied", new FixtureSpec { Arch = FixtureArch.Gpt2, Layers = 1, Embd = 32, Heads = 2, KvHeads = 2, Ffn = 128, Vocab = 300, ContextLength = 32, Untied = true, Seed = 27 } },
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Hf_to_gguf_to_hf_round_trips_every_tensor_bit_exactly(string name, FixtureSpec spec)
    {
        using var temp = new TempDir("eq-export");
        var hf = FixtureMaker.Write(spec, temp.Path, FixtureFormats.HuggingFace).HuggingFaceDir!;
        var gguf = temp.File("out.gguf");
        var back = temp.File("back");
        using (var source = ModelLoader.Load(hf))
            GgufExporter.Export(source, gguf, new GgufExportOptions { OutType = TensorType.F32 });
        using (var mid = ModelLoader.Load(gguf))
            HfExporter.Export(mid, back, new HfExportOptions { OutType = TensorType.F32 });

        using var a = ModelLoader.Load(hf);
        using var b = ModelLoader.Load(back);
        Assert.Equal(a.Config with { SourceArchitecture = "" }, b.Config with { SourceArchitecture = "" });
        Assert.Equal(a.Tensors.Select(t => t.SourceName).Order(), b.Tensors.Select(t => t.SourceName).Order());
        foreach (var ta in a.Tensors)
        {
            var tb = b.Get(ta.Name);
            Assert.Equal(ta.SourceName, tb.SourceName);
            Assert.Equal(ta.Type, tb.Type);
            // The stored (HF-layout) bytes, before any loader transform: the inverse permutation/transpose must restore them.
            Assert.True(ta.Storage.Bytes.SequenceEqual(tb.Storage.Bytes), $"{name}: {ta.SourceName} differs after HF → GGUF → HF");
        }
        // The tokenizer survives both hops: same pieces, same ids for a sample text.
        var ta1 = Tokenizer.FromModel(a);
        var tb1 = Tokenizer.FromModel(b);
        Assert.Equal(ta1.VocabSize, tb1.VocabSize);
        const string text = "Once upon a time, Mia saw a small cat in the park.";
        Assert.Equal(ta1.Encode(text), tb1.Encode(text));
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Gguf_to_hf_to_gguf_keeps_tensor_bytes(string name, FixtureSpec spec)
    {
        using var temp = new TempDir("eq-export");
        var gguf = FixtureMaker.Write(spec, temp.Path, FixtureFormats.Gguf).GgufPath!;
        var hf = temp.File("hf");
        var again = temp.File("again.gguf");
        using (var source = ModelLoader.Load(gguf)) HfExporter.Export(source, hf);
        using (var mid = ModelLoader.Load(hf)) GgufExporter.Export(mid, again);
        using var x = GgufReader.Read(gguf);
        using var y = GgufReader.Read(again);
        Assert.Equal(x.Tensors.Select(t => t.Name), y.Tensors.Select(t => t.Name));
        foreach (var tx in x.Tensors)
        {
            var ty = y.FindTensor(tx.Name)!;
            Assert.Equal(tx.Type, ty.Type);
            Assert.Equal(tx.Shape, ty.Shape);
            Assert.True(x.TensorData(tx).SequenceEqual(y.TensorData(ty)), $"{name}: {tx.Name} differs after GGUF → HF → GGUF");
        }
        // The architecture keys the fixture maker wrote (llama.cpp's) come back with the same values.
        foreach (var kv in x.Metadata.Where(k => k.Key.StartsWith(x.Find("general.architecture")!.AsString() + ".", StringComparison.Ordinal)))
            Assert.Equal(kv.Value, y.Find(kv.Key));
    }

    [Fact]
    public void Progress_callback_counts_every_written_tensor()
    {
        var spec = new FixtureSpec { Layers = 2, Embd = 32, Heads = 2, KvHeads = 1, Ffn = 48, Vocab = 300, Seed = 32 };
        using var temp = new TempDir("eq-export");
        var gguf = FixtureMaker.Write(spec, temp.Path, FixtureFormats.Gguf).GgufPath!;
        var seen = new List<(int Done, int Total)>();
        using var m = ModelLoader.Load(gguf);
        var r = GgufExporter.Export(m, temp.File("p.gguf"), new GgufExportOptions { TensorWritten = (d, n) => seen.Add((d, n)) });
        Assert.Equal(Enumerable.Range(1, r.TensorCount).Select(i => (i, r.TensorCount)), seen);
        seen.Clear();
        var h = HfExporter.Export(m, temp.File("p-hf"), new HfExportOptions { TensorWritten = (d, n) => seen.Add((d, n)) });
        Assert.Equal(Enumerable.Range(1, h.TensorCount).Select(i => (i, h.TensorCount)), seen);
    }

    [Fact]
    public void Provenance_keys_are_written_and_the_source_hash_is_container_independent()
    {
        var spec = new FixtureSpec { Layers = 1, Embd = 32, Heads = 2, KvHeads = 1, Ffn = 48, Vocab = 300, Seed = 31, Name = "prov" };
        using var temp = new TempDir("eq-export");
        var both = FixtureMaker.Write(spec, temp.Path, FixtureFormats.Both);
        string fromHf = temp.File("a.gguf"), fromGguf = temp.File("b.gguf"), f16 = temp.File("c.gguf");
        using (var m = ModelLoader.Load(both.HuggingFaceDir!)) GgufExporter.Export(m, fromHf, new GgufExportOptions { Name = "prov" });
        using (var m = ModelLoader.Load(both.GgufPath!))
        {
            GgufExporter.Export(m, fromGguf);
            GgufExporter.Export(m, f16, new GgufExportOptions { OutType = TensorType.F16 });
        }
        using var a = GgufReader.Read(fromHf);
        using var b = GgufReader.Read(fromGguf);
        using var c = GgufReader.Read(f16);
        string hash = a.Find(GgufExporter.SourceHashKey)!.AsString()!;
        Assert.Matches("^[0-9a-f]{64}$", hash);
        // The same F32 weights hash alike whether they came from safetensors (permuted) or GGUF.
        Assert.Equal(hash, b.Find(GgufExporter.SourceHashKey)!.AsString());
        Assert.Equal(hash, c.Find(GgufExporter.SourceHashKey)!.AsString());
        Assert.Equal("prov", a.Find("general.name")!.AsString());
        Assert.Equal(0u, a.Find("general.file_type")!.Value);
        Assert.Equal(1u, c.Find("general.file_type")!.Value);
        Assert.Equal(2u, a.Find("general.quantization_version")!.Value);
        Assert.False(string.IsNullOrEmpty(a.Find(GgufExporter.VersionKey)!.AsString()));
        Assert.Equal("HuggingFace", a.Find(GgufExporter.SourceFormatKey)!.AsString());
        // F16 export: 2-D weights F16, 1-D tensors F32 (as llama.cpp's converter keeps norms).
        foreach (var t in c.Tensors) Assert.Equal(t.Ne.Count == 1 ? TensorType.F32 : TensorType.F16, t.Type);
        Assert.True(a.Find(GgufTokenizerKeys.AddBos) is not null && a.Find(GgufTokenizerKeys.Tokens) is not null);
    }
}

/// <summary>The real stories260K (a trained Llama with GQA) through the HF exporter and back.</summary>
public class Stories260KHfTests
{
    private const string Stories = "models/stories260K/stories260K.gguf";

    /// <summary>
    /// GGUF → HF folder → engine gives the very logits the engine gives on the GGUF (the HF loader's permutation undoes
    /// the exporter's inverse exactly), and HF → GGUF gives back every tensor byte of the original.
    /// </summary>
    [SharedDataFact(Stories)]
    public void Stories260K_to_hf_and_back_is_exact()
    {
        var source = SharedData.Require(Stories);
        using var temp = new TempDir("eq-export-stories");
        var hf = temp.File("hf");
        var back = temp.File("back.gguf");
        var tokens = Numbers.RandomTokens(48, 512, seed: 5);
        tokens[0] = 1;
        float[] expected, actual;
        using (var m = ModelLoader.Load(source))
        {
            HfExporter.Export(m, hf);
            expected = Models.Engine.ReferenceEngine.Load(m, new Models.Engine.EngineOptions { Threads = 2 }).CreateSession(tokens.Length).DecodeAll(tokens);
        }
        using (var h = ModelLoader.Load(hf))
        {
            Assert.Equal(Architecture.Llama, h.Config.Architecture);
            actual = Models.Engine.ReferenceEngine.Load(h, new Models.Engine.EngineOptions { Threads = 2 }).CreateSession(tokens.Length).DecodeAll(tokens);
            GgufExporter.Export(h, back);
        }
        Assert.Equal(expected, actual);
        using var x = GgufReader.Read(source);
        using var y = GgufReader.Read(back);
        foreach (var tx in x.Tensors)
        {
            // A shared classifier is not stored in HF (tie_word_embeddings), so it comes back only if the source had it separately.
            if (y.FindTensor(tx.Name) is not { } ty) { Assert.Equal("output.weight", tx.Name); continue; }
            Assert.True(x.TensorData(tx).SequenceEqual(y.TensorData(ty)), tx.Name);
        }
        Assert.Equal(Tokenizers(x), Tokenizers(y));
    }

    private static string Tokenizers(GgufFile f) =>
        string.Join("\n", f.Find(GgufTokenizerKeys.Tokens)!.AsArray<string>()!) + f.Find(GgufTokenizerKeys.BosId);
}
