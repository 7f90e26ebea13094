using System.Runtime.InteropServices;
using EdgeQuant.Core.Tensors;
using EdgeQuant.Fixtures;
using EdgeQuant.Formats.Safetensors;
using EdgeQuant.Models.Loading;
using EdgeQuant.Testing;

namespace EdgeQuant.Models.Tests.Loading;

/// <summary>
/// The fixture maker writes one model twice, in HF layout (inverse Q/K permutation, Conv1D [in, out]) and in GGUF
/// layout. Loading both must give the same canonical tensors bit for bit: that proves the loader's transforms and
/// the writer's inverses agree (and the RoPE test in <see cref="TensorTransformTests"/> proves they are the right ones).
/// </summary>
public class FixtureRoundTripTests
{
    public static TheoryData<string> Specs => new() { "llama-gqa", "llama-untied-headdim-bias", "qwen2-bias", "gpt2", "llama-f16-mha", "gpt2-f16-untied" };

    private static FixtureSpec Spec(string name) => name switch
    {
        "llama-gqa" => FixtureSpec.Preset(FixtureArch.Llama, "demo") with { Seed = 7 },
        "llama-untied-headdim-bias" => FixtureSpec.Preset(FixtureArch.Llama, "tiny") with { Untied = true, HeadDim = 6, Heads = 4, KvHeads = 2, AttentionBias = true, Ffn = 37, Seed = 3 },
        "qwen2-bias" => FixtureSpec.Preset(FixtureArch.Qwen2, "demo") with { Layers = 1, Seed = 11 },
        "gpt2" => FixtureSpec.Preset(FixtureArch.Gpt2, "demo") with { Seed = 5 },
        "llama-f16-mha" => FixtureSpec.Preset(FixtureArch.Llama, "tiny") with { KvHeads = 2, Dtype = FixtureDtype.F16, Seed = 9 },
        "gpt2-f16-untied" => FixtureSpec.Preset(FixtureArch.Gpt2, "tiny") with { Dtype = FixtureDtype.F16, Untied = true, Vocab = 400, Seed = 2 },
        _ => throw new ArgumentException(name),
    };

    private static void AssertSameModel(Model hf, Model gguf, FixtureSpec spec)
    {
        var a = hf.Config;
        var b = gguf.Config;
        Assert.Equal(a with { SourceArchitecture = "", ContextLength = 0 }, b with { SourceArchitecture = "", ContextLength = 0 });
        Assert.Equal(spec.ContextLength, a.ContextLength);
        Assert.Equal(spec.ContextLength, b.ContextLength);
        Assert.Equal(!spec.Untied, a.TiedEmbeddings);

        Assert.Equal(gguf.Tensors.Select(t => t.Name).Order(), hf.Tensors.Select(t => t.Name).Order());
        foreach (var g in gguf.Tensors)
        {
            var h = hf.Get(g.Name);
            Assert.Equal(g.Shape, h.Shape);
            var gv = g.ToFloat32();
            var hv = h.ToFloat32();
            Assert.True(MemoryMarshal.AsBytes(gv.AsSpan()).SequenceEqual(MemoryMarshal.AsBytes(hv.AsSpan())), $"{g.Name} differs");
            if (g.Type == h.Type) Assert.True(g.RawBytes().SequenceEqual(h.RawBytes()), $"{g.Name} raw bytes differ");
        }

        var ta = hf.Tokenizer!;
        var tb = gguf.Tokenizer!;
        Assert.Equal(tb.Kind, ta.Kind);
        Assert.Equal(tb.Tokens, ta.Tokens);
        Assert.Equal(tb.TokenTypes, ta.TokenTypes);
        Assert.Equal(tb.BosId, ta.BosId);
        Assert.Equal(tb.EosId, ta.EosId);
        Assert.Equal(tb.AddBos, ta.AddBos);
        if (ta.Kind == "gpt2") Assert.Equal(tb.Merges, ta.Merges);
        Assert.Equal(spec.Vocab, tb.Tokens.Count);
    }

    [Theory]
    [MemberData(nameof(Specs))]
    public void Hf_folder_and_gguf_load_to_the_same_canonical_tensors(string name)
    {
        var spec = Spec(name);
        using var dir = new TempDir("fixture");
        var result = FixtureMaker.Write(spec, dir.Path, FixtureFormats.Both);
        using var hf = ModelLoader.Load(result.HuggingFaceDir!);
        using var gguf = ModelLoader.Load(result.GgufPath!);
        Assert.Equal(ModelFormat.HuggingFace, hf.Provenance.Format);
        Assert.Equal(ModelFormat.Gguf, gguf.Provenance.Format);
        AssertSameModel(hf, gguf, spec);
        Assert.Equal(result.ParameterCount, hf.ParameterCount);
    }

    [Fact]
    public void Hf_side_really_is_in_hf_layout()
    {
        var spec = Spec("llama-gqa");
        using var dir = new TempDir("fixture");
        var result = FixtureMaker.Write(spec, dir.Path, FixtureFormats.Both);
        using var st = SafetensorsReader.Open(Path.Combine(result.HuggingFaceDir!, "model.safetensors"));
        using var gguf = ModelLoader.Load(result.GgufPath!);

        // k_proj in HF layout: within each KV head, rows [0, hd/2) are GGUF's even rows and [hd/2, hd) its odd rows.
        int hd = spec.EffectiveHeadDim, cols = spec.Embd;
        var stored = MemoryMarshal.Cast<byte, float>(st.GetBytes(st.Get("model.layers.0.self_attn.k_proj.weight"))).ToArray();
        var canon = gguf.Get("blk.0.attn_k.weight").ToFloat32();
        for (int h = 0; h < spec.KvHeads; h++)
            for (int r = 0; r < hd; r++)
            {
                int ggufRow = r < hd / 2 ? 2 * r : 2 * (r - hd / 2) + 1;
                Assert.Equal(canon.AsSpan((h * hd + ggufRow) * cols, cols).ToArray(), stored.AsSpan((h * hd + r) * cols, cols).ToArray());
            }
        // v_proj is not permuted.
        Assert.Equal(gguf.Get("blk.0.attn_v.weight").ToFloat32(), MemoryMarshal.Cast<byte, float>(st.GetBytes(st.Get("model.layers.0.self_attn.v_proj.weight"))).ToArray());
    }

    [Fact]
    public void Gpt2_conv1d_weights_are_stored_in_by_out()
    {
        var spec = Spec("gpt2");
        using var dir = new TempDir("fixture");
        var result = FixtureMaker.Write(spec, dir.Path, FixtureFormats.HuggingFace);
        using var st = SafetensorsReader.Open(Path.Combine(result.HuggingFaceDir!, "model.safetensors"));
        Assert.Equal(new long[] { spec.Embd, 3 * spec.Embd }, st.Get("transformer.h.0.attn.c_attn.weight").Shape);
        Assert.Equal(new long[] { spec.Embd, spec.Ffn }, st.Get("transformer.h.1.mlp.c_fc.weight").Shape);
        Assert.Equal(new long[] { spec.Ffn, spec.Embd }, st.Get("transformer.h.1.mlp.c_proj.weight").Shape);
        Assert.Null(st.Find("lm_head.weight"));
    }

    [Fact]
    public void Sharded_hf_checkpoint_loads_like_the_single_file()
    {
        var spec = Spec("qwen2-bias");
        using var dir = new TempDir("fixture");
        var result = FixtureMaker.Write(spec, dir.Path, FixtureFormats.HuggingFace);
        var single = Path.Combine(result.HuggingFaceDir!, "model.safetensors");

        // Re-shard the single file in two, the way save_pretrained with a small max_shard_size would.
        var sharded = Path.Combine(dir.Path, "sharded");
        Directory.CreateDirectory(sharded);
        foreach (var f in new[] { "config.json", "tokenizer.json", "tokenizer_config.json" })
            File.Copy(Path.Combine(result.HuggingFaceDir!, f), Path.Combine(sharded, f));
        var map = new Dictionary<string, string>();
        using (var st = SafetensorsReader.Open(single))
        {
            var names = st.Tensors.Select(t => t.Name).ToList();
            for (int s = 0; s < 2; s++)
            {
                var shard = $"model-0000{s + 1}-of-00002.safetensors";
                var part = names.Where((_, i) => i % 2 == s).ToList();
                SafetensorsWriter.Write(Path.Combine(sharded, shard), part.Select(n => (new SafetensorsTensorSpec(n, st.Get(n).Type, st.Get(n).Shape), st.GetBytes(st.Get(n)).ToArray())));
                foreach (var n in part) map[n] = shard;
            }
        }
        SafetensorsIndex.Write(Path.Combine(sharded, SafetensorsConstants.IndexFileName), map, new FileInfo(single).Length);

        using var a = ModelLoader.Load(result.HuggingFaceDir!);
        using var b = ModelLoader.Load(sharded);
        Assert.Equal(a.Tensors.Select(t => t.Name).Order(), b.Tensors.Select(t => t.Name).Order());
        foreach (var t in a.Tensors) Assert.True(t.RawBytes().SequenceEqual(b.Get(t.Name).RawBytes()), t.Name);
    }

    [Fact]
    public void Same_seed_same_bytes_different_seed_different_weights()
    {
        using var dir = new TempDir("fixture");
        var spec = Spec("llama-f16-mha");
        var r1 = FixtureMaker.Write(spec, Path.Combine(dir.Path, "a"), FixtureFormats.Both);
        var r2 = FixtureMaker.Write(spec, Path.Combine(dir.Path, "b"), FixtureFormats.Both);
        var r3 = FixtureMaker.Write(spec with { Seed = spec.Seed + 1 }, Path.Combine(dir.Path, "c"), FixtureFormats.Gguf);
        Assert.Equal(File.ReadAllBytes(r1.GgufPath!), File.ReadAllBytes(r2.GgufPath!));
        Assert.Equal(File.ReadAllBytes(Path.Combine(r1.HuggingFaceDir!, "model.safetensors")), File.ReadAllBytes(Path.Combine(r2.HuggingFaceDir!, "model.safetensors")));
        Assert.NotEqual(File.ReadAllBytes(r1.GgufPath!), File.ReadAllBytes(r3.GgufPath!));
    }

    [Fact]
    public void Cli_writes_the_layout_make_demo_inspects()
    {
        using var dir = new TempDir("fixture");
        var (spec, outDir, formats) = FixtureCli.Parse(["--arch", "llama", "--preset", "demo", "--out", dir.Path, "--format", "both", "--seed", "7"]);
        FixtureMaker.Write(spec, outDir!, formats);
        Assert.True(File.Exists(Path.Combine(dir.Path, "gguf", "model.gguf")));
        foreach (var f in new[] { "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json" })
            Assert.True(File.Exists(Path.Combine(dir.Path, "hf", f)), f);
        Assert.Equal(7UL, spec.Seed);

        var custom = FixtureCli.Parse(["--arch", "qwen2", "--preset", "tiny", "--layers", "3", "--embd", "48", "--heads", "6", "--kv-heads", "3", "--ffn", "50", "--vocab", "400", "--head-dim", "10", "--untied", "--dtype", "f16", "--out", "x"]).Spec;
        Assert.Equal((FixtureArch.Qwen2, 3, 48, 6, 3, 50, 400, 10, true, FixtureDtype.F16), (custom.Arch, custom.Layers, custom.Embd, custom.Heads, custom.KvHeads, custom.Ffn, custom.Vocab, custom.EffectiveHeadDim, custom.Untied, custom.Dtype));
        Assert.Throws<EdgeQuant.Core.Errors.BadInputException>(() => FixtureCli.Parse(["--arch", "llama", "--kv-heads", "3", "--out", "x"]));
        Assert.Throws<EdgeQuant.Core.Errors.BadInputException>(() => FixtureCli.Parse(["--arch", "gpt2", "--preset", "huge", "--out", "x"]));
    }
}
