using EdgeQuant.Compression.OnnxQuant;
using EdgeQuant.Core.Errors;
using EdgeQuant.Fixtures;
using EdgeQuant.Models;
using EdgeQuant.Testing;

namespace EdgeQuant.Compression.Tests.OnnxQuant;

/// <summary>
/// What <see cref="Int8DynamicFakeQuant"/> changes in a model and in the layer inputs, checked against
/// <see cref="Int8Math"/> applied by hand. Agreement with ONNX Runtime on exported models is in
/// EdgeQuant.Export.Tests (Int8DynamicExportTests).
/// </summary>
public sealed class Int8DynamicFakeQuantTests
{
    [Fact]
    public void Selected_weights_become_their_dequantized_int8_values_and_the_rest_is_shared()
    {
        using var temp = new TempDir("eq-fq8");
        var spec = new FixtureSpec { Layers = 2, Embd = 32, Heads = 4, KvHeads = 2, Ffn = 48, Vocab = 300, Untied = true, Seed = 81 };
        using var model = ModelLoader.Load(FixtureMaker.Write(spec, temp.Path, FixtureFormats.Gguf).GgufPath!);
        var options = new Int8DynamicOptions { PerChannel = true, ReduceRange = true, Layers = LayerSelection.Parse(@"^blk\.1\.attn_v$") };
        using var fq = Int8DynamicFakeQuant.Create(model, options);

        foreach (var t in model.Tensors)
        {
            var replaced = fq.Model.Get(t.Name);
            bool quantized = t.Name.StartsWith("blk.", StringComparison.Ordinal) && t.Shape.Length == 2 && t.Name != "blk.1.attn_v.weight";
            if (!quantized)
            {
                Assert.Same(t, replaced); // excluded layers, norms, embeddings and the LM head stay as they are
                continue;
            }
            var w = t.ToFloat32();
            var expected = Int8Math.QuantizeWeights(w, (int)t.Shape[0], (int)t.Shape[1], perChannel: true, reduceRange: true).Dequantize();
            Assert.Equal(expected, replaced.ToFloat32());
            Assert.NotEqual(w, expected);
        }
        Assert.Equal(model.Tensors.Count, fq.Model.Tensors.Count);
    }

    [Fact]
    public void The_hook_quantizes_included_inputs_per_call_and_leaves_the_others()
    {
        using var temp = new TempDir("eq-fq8");
        var spec = new FixtureSpec { Layers = 1, Embd = 32, Heads = 4, KvHeads = 2, Ffn = 48, Vocab = 300, Seed = 82 };
        using var model = ModelLoader.Load(FixtureMaker.Write(spec, temp.Path, FixtureFormats.Gguf).GgufPath!);
        using var fq = Int8DynamicFakeQuant.Create(model, new Int8DynamicOptions { Layers = LayerSelection.Parse("ffn_down") });
        var hook = Assert.IsAssignableFrom<Models.Engine.ILinearInputHook>(fq.Hook);
        var rng = new Random(3);
        var x = Enumerable.Range(0, 3 * 32).Select(_ => (float)(rng.NextDouble() * 4 - 1.5)).ToArray();

        var q = x.ToArray();
        hook.OnInput("blk.0.attn_q", q, 3, 32);
        var expected = x.ToArray();
        var p = Int8Math.DynamicQuantizeDequantize(expected);
        Assert.Equal(expected, q);
        Assert.True(p.ZeroPoint > 0); // the inputs had negatives: asymmetric UINT8
        Assert.NotEqual(x, q);

        foreach (var untouched in new[] { "blk.0.ffn_down", "output" })
        {
            var y = x.ToArray();
            hook.OnInput(untouched, y, 3, 32);
            Assert.Equal(x, y);
        }
    }

    [Fact]
    public void A_tied_lm_head_is_quantized_as_an_untied_copy()
    {
        using var temp = new TempDir("eq-fq8");
        var spec = new FixtureSpec { Layers = 1, Embd = 32, Heads = 4, KvHeads = 2, Ffn = 48, Vocab = 300, Seed = 83 };
        using var model = ModelLoader.Load(FixtureMaker.Write(spec, temp.Path, FixtureFormats.Gguf).GgufPath!);
        Assert.True(model.Config.TiedEmbeddings);
        using var fq = Int8DynamicFakeQuant.Create(model, new Int8DynamicOptions { PerChannel = false, Layers = new LayerSelection(includeLmHead: true) });
        Assert.False(fq.Model.Config.TiedEmbeddings);
        var embd = model.Get("token_embd.weight");
        Assert.Same(embd, fq.Model.Get("token_embd.weight")); // the lookup stays float, as in the exported graph
        var expected = Int8Math.QuantizeWeights(embd.ToFloat32(), spec.Vocab, spec.Embd, perChannel: false, reduceRange: false).Dequantize();
        Assert.Equal(expected, fq.Model.Get("output.weight").ToFloat32());
    }

    [Fact]
    public void Gpt2_fused_qkv_per_tensor_has_one_scale_per_part()
    {
        using var temp = new TempDir("eq-fq8");
        var spec = new FixtureSpec { Arch = FixtureArch.Gpt2, Layers = 1, Embd = 32, Heads = 2, KvHeads = 2, Ffn = 64, Vocab = 300, ContextLength = 32, Seed = 84 };
        using var model = ModelLoader.Load(FixtureMaker.Write(spec, temp.Path, FixtureFormats.Gguf).GgufPath!);
        using var fq = Int8DynamicFakeQuant.Create(model, new Int8DynamicOptions { PerChannel = false });
        var w = model.Get("blk.0.attn_qkv.weight").ToFloat32();
        var got = fq.Model.Get("blk.0.attn_qkv.weight").ToFloat32();
        int part = 32 * 32;
        for (int i = 0; i < 3; i++)
        {
            var expected = Int8Math.QuantizeWeights(w.AsSpan(i * part, part), 32, 32, perChannel: false, reduceRange: false).Dequantize();
            Assert.Equal(expected, got.AsSpan(i * part, part).ToArray());
        }
        Assert.Contains("blk.0.attn_qkv", Int8DynamicFakeQuant.HookLayers(model));
    }

    [Fact]
    public void An_exclude_pattern_naming_no_layer_is_refused()
    {
        using var temp = new TempDir("eq-fq8");
        var spec = new FixtureSpec { Layers = 1, Embd = 32, Heads = 4, KvHeads = 2, Ffn = 48, Vocab = 300, Seed = 85 };
        using var model = ModelLoader.Load(FixtureMaker.Write(spec, temp.Path, FixtureFormats.Gguf).GgufPath!);
        var e = Assert.Throws<BadInputException>(() => Int8DynamicFakeQuant.Create(model, new Int8DynamicOptions { Layers = LayerSelection.Parse("attn_qq") }));
        Assert.Contains("matches no linear layer", e.Message);
    }
}
