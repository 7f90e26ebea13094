using System.Text.Json;
using System.Text.Json.Nodes;
using EdgeQuant.Core.Errors;
using EdgeQuant.Core.Tensors;
using EdgeQuant.Fixtures;
using EdgeQuant.Formats.Safetensors;
using EdgeQuant.Models.Loading;
using EdgeQuant.Testing;

namespace EdgeQuant.Models.Tests.Loading;

public class HuggingFaceModelLoaderTests
{
    private static string MakeFixture(TempDir dir, FixtureSpec spec) => FixtureMaker.Write(spec, dir.Path, FixtureFormats.HuggingFace).HuggingFaceDir!;

    /// <summary>Rewrites model.safetensors with some tensors renamed, reshaped, dropped or added.</summary>
    private static void Rewrite(string hfDir, Func<string, SafetensorsTensorInfo, byte[], (string Name, long[] Shape, byte[] Data)?> edit, params (string Name, TensorType Type, long[] Shape, byte[] Data)[] extra)
    {
        var path = Path.Combine(hfDir, "model.safetensors");
        var list = new List<(SafetensorsTensorSpec, byte[])>();
        using (var st = SafetensorsReader.Open(path))
            foreach (var t in st.Tensors)
                if (edit(t.Name, t, st.GetBytes(t).ToArray()) is { } e)
                    list.Add((new SafetensorsTensorSpec(e.Name, t.Type, e.Shape), e.Data));
        list.AddRange(extra.Select(x => (new SafetensorsTensorSpec(x.Name, x.Type, x.Shape), x.Data)));
        SafetensorsWriter.Write(path, list);
    }

    [Fact]
    public void Config_metadata_and_tokenizer_are_carried()
    {
        using var dir = new TempDir("hf");
        var hf = MakeFixture(dir, FixtureSpec.Preset(FixtureArch.Llama, "tiny"));
        using var m = ModelLoader.Load(hf);
        Assert.Equal("LlamaForCausalLM", m.Config.SourceArchitecture);
        Assert.Equal(16L, m.Metadata["config.hidden_size"]);
        Assert.Equal("pt", m.Metadata["safetensors.format"]);
        Assert.Equal("llama", m.Tokenizer!.Kind);
        Assert.Equal(1, m.Tokenizer.BosId);
        Assert.Equal(true, m.Tokenizer.AddBos);
        Assert.EndsWith("tokenizer.json", m.Tokenizer.SourcePath);
    }

    [Fact]
    public void Shape_that_contradicts_config_names_file_tensor_and_offset()
    {
        using var dir = new TempDir("hf");
        var hf = MakeFixture(dir, FixtureSpec.Preset(FixtureArch.Llama, "tiny"));
        Rewrite(hf, (n, t, d) => n == "model.layers.0.mlp.up_proj.weight" ? (n, [t.Shape[1], t.Shape[0]], d) : (n, t.Shape, d));
        var e = Assert.Throws<FileFormatException>(() => ModelLoader.Load(hf));
        Assert.EndsWith("model.safetensors", e.FilePath);
        Assert.Contains("model.layers.0.mlp.up_proj.weight", e.Field);
        Assert.NotNull(e.Offset);
        Assert.Contains("config.json implies", e.Message);
    }

    [Fact]
    public void Missing_and_unknown_tensors_are_named()
    {
        using var dir = new TempDir("hf");
        var hf = MakeFixture(dir, FixtureSpec.Preset(FixtureArch.Llama, "tiny"));
        Rewrite(hf, (n, t, d) => n == "model.norm.weight" ? null : (n, t.Shape, d));
        var missing = Assert.Throws<BadInputException>(() => ModelLoader.Load(hf));
        Assert.Contains("'model.norm.weight'", missing.Message);

        using var dir2 = new TempDir("hf");
        var hf2 = MakeFixture(dir2, FixtureSpec.Preset(FixtureArch.Llama, "tiny"));
        Rewrite(hf2, (n, t, d) => (n, t.Shape, d), ("model.layers.0.mystery.weight", TensorType.F32, [2], new byte[8]));
        var unknown = Assert.Throws<FileFormatException>(() => ModelLoader.Load(hf2));
        Assert.Contains("model.layers.0.mystery.weight", unknown.Field);

        using var dir3 = new TempDir("hf");
        var hf3 = MakeFixture(dir3, FixtureSpec.Preset(FixtureArch.Llama, "tiny"));
        Rewrite(hf3, (n, t, d) => (n, t.Shape, d), ("model.layers.5.input_layernorm.weight", TensorType.F32, [16], new byte[64]));
        Assert.Contains("1 layers", Assert.Throws<FileFormatException>(() => ModelLoader.Load(hf3)).Message);
    }

    [Fact]
    public void Gpt2_checkpoint_without_transformer_prefix_and_with_mask_buffers_loads()
    {
        using var dir = new TempDir("hf");
        var spec = FixtureSpec.Preset(FixtureArch.Gpt2, "tiny");
        var hf = MakeFixture(dir, spec);
        using (var before = ModelLoader.Load(hf))
        {
            var expected = before.Tensors.ToDictionary(t => t.Name, t => t.ToFloat32());
            before.Dispose();
            // The original openai-community/gpt2 checkpoint: bare names, causal-mask buffers, an lm_head copy.
            byte[]? wte = null;
            Rewrite(hf, (n, t, d) =>
            {
                var bare = n.StartsWith("transformer.") ? n["transformer.".Length..] : n;
                if (bare == "wte.weight") wte = d;
                return (bare, t.Shape, d);
            }, ("h.0.attn.bias", TensorType.F32, [1, 1, 4, 4], new byte[64]), ("h.0.attn.masked_bias", TensorType.F32, [], new byte[4]));
            Rewrite(hf, (n, t, d) => (n, t.Shape, d), ("lm_head.weight", TensorType.F32, [spec.Vocab, spec.Embd], wte!));
            using var after = ModelLoader.Load(hf);
            Assert.Equal(expected.Keys.Order(), after.Tensors.Select(t => t.Name).Order());
            foreach (var (name, values) in expected) Assert.Equal(values, after.Get(name).ToFloat32());
            Assert.True(after.Config.TiedEmbeddings);
            Assert.Null(after.Find("output.weight"));
        }
    }

    [Theory]
    [InlineData(FixtureArch.Llama)]
    [InlineData(FixtureArch.Gpt2)]
    public void Bf16_checkpoint_gets_the_same_layout_transforms(FixtureArch arch)
    {
        using var dir = new TempDir("hf");
        var spec = FixtureSpec.Preset(arch, "tiny") with { Untied = true };
        var r = FixtureMaker.Write(spec, dir.Path, FixtureFormats.Both);
        // Convert the F32 safetensors to BF16, as most published checkpoints are stored.
        var path = Path.Combine(r.HuggingFaceDir!, "model.safetensors");
        var list = new List<(SafetensorsTensorSpec, byte[])>();
        using (var st = SafetensorsReader.Open(path))
            foreach (var t in st.Tensors)
            {
                var f32 = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(st.GetBytes(t)).ToArray();
                var bf16 = new byte[f32.Length * 2];
                HalfConversions.F32ToBF16(f32, bf16);
                list.Add((new SafetensorsTensorSpec(t.Name, TensorType.BF16, t.Shape), bf16));
            }
        SafetensorsWriter.Write(path, list);

        using var hf = ModelLoader.Load(r.HuggingFaceDir!);
        using var gguf = ModelLoader.Load(r.GgufPath!);
        foreach (var g in gguf.Tensors)
        {
            var h = hf.Get(g.Name);
            Assert.Equal(TensorType.BF16, h.Type);
            var expected = g.ToFloat32().Select(v => BitConverter.UInt32BitsToSingle((uint)HalfConversions.F32ToBF16(v) << 16)).ToArray();
            Assert.Equal(expected, h.ToFloat32());
        }
    }

    [Fact]
    public void Config_errors_surface_with_the_config_path()
    {
        using var dir = new TempDir("hf");
        var hf = MakeFixture(dir, FixtureSpec.Preset(FixtureArch.Llama, "tiny"));
        var cfgPath = Path.Combine(hf, "config.json");
        var node = JsonNode.Parse(File.ReadAllText(cfgPath))!;
        node["num_key_value_heads"] = 3;
        File.WriteAllText(cfgPath, node.ToJsonString());
        var e = Assert.Throws<FileFormatException>(() => ModelLoader.Load(hf));
        Assert.Equal(cfgPath, e.FilePath);
        Assert.Equal("num_key_value_heads", e.Field);
    }

    [Fact]
    public void Folder_without_weights_says_what_is_missing()
    {
        using var dir = new TempDir("hf");
        var hf = MakeFixture(dir, FixtureSpec.Preset(FixtureArch.Llama, "tiny"));
        File.Delete(Path.Combine(hf, "model.safetensors"));
        var e = Assert.Throws<BadInputException>(() => ModelLoader.Load(hf));
        Assert.Contains("model.safetensors", e.Message);
    }
}
