using EdgeQuant.Core.Errors;
using EdgeQuant.Core.Tensors;
using EdgeQuant.Formats.Gguf;
using EdgeQuant.Models;
using EdgeQuant.Models.Loading;
using EdgeQuant.Testing;

namespace EdgeQuant.Models.Tests.Loading;

public class GgufModelLoaderTests
{
    private const string Stories = "models/stories260K/stories260K.gguf";

    [SharedDataFact(Stories)]
    public void Stories260K_loads_through_ModelLoader_with_its_published_shape()
    {
        string path = SharedData.Require(Stories);
        Assert.Equal(ModelFormat.Gguf, ModelLoader.Detect(path));
        using var model = ModelLoader.Load(path);
        var c = model.Config;
        Assert.Equal(Architecture.Llama, c.Architecture);
        Assert.Equal("llama", c.SourceArchitecture);
        Assert.Equal(64, c.EmbeddingLength);
        Assert.Equal(5, c.BlockCount);
        Assert.Equal(8, c.HeadCount);
        Assert.Equal(4, c.HeadCountKv);
        Assert.Equal(172, c.FeedForwardLength);
        Assert.Equal(512, c.VocabSize);
        Assert.Equal(8, c.HeadDim);
        Assert.Equal(2048, c.ContextLength);
        Assert.Equal(1e-5f, c.NormEpsilon);
        Assert.False(c.TiedEmbeddings);
        Assert.False(c.AttentionBias);

        var tok = model.Tokenizer!;
        Assert.Equal("llama", tok.Kind);
        Assert.Equal(512, tok.Tokens.Count);
        Assert.Equal("<unk>", tok.Tokens[0]);
        Assert.Equal(512, tok.Scores!.Length);
        Assert.Equal(512, tok.TokenTypes!.Length);
        Assert.Equal(1, tok.BosId);
        Assert.Equal(2, tok.EosId);
        Assert.Equal(0, tok.UnknownId);
        Assert.Null(tok.PaddingId); // stored as u32 0xFFFFFFFF: "none"

        Assert.Equal(48, model.Tensors.Count);
        var emb = model.Get("token_embd.weight");
        Assert.Equal(new long[] { 512, 64 }, emb.Shape);
        Assert.Equal(TensorType.F32, emb.Type);
        Assert.Equal(new long[] { 64, 172 }, model.Get("blk.2.ffn_down.weight").Shape);
        Assert.Equal(new long[] { 172, 64 }, model.Get("blk.2.ffn_up.weight").Shape);
        Assert.Equal(model.Tensors.Sum(t => t.ElementCount), model.ParameterCount);
        Assert.Equal("llama", ((GgufValue)model.Metadata["general.architecture"]).AsString());

        // The tensor bytes are the file's bytes at the offset the header gives (no copy, no reinterpretation).
        using var f = GgufReader.Read(path);
        var info = f.FindTensor("blk.3.attn_v.weight")!;
        Assert.True(f.TensorData(info).SequenceEqual(model.Get("blk.3.attn_v.weight").RawBytes()));
        var floats = model.Get("output_norm.weight").ToFloat32();
        Assert.Equal(64, floats.Length);
        Assert.All(floats, x => Assert.True(float.IsFinite(x)));
    }

    private static string WriteModel(TempDir dir, string arch, bool withOutput, bool withBias, IEnumerable<KeyValuePair<string, GgufValue>>? extra = null)
    {
        var md = new List<KeyValuePair<string, GgufValue>>
        {
            new("general.architecture", arch),
            new($"{arch}.embedding_length", 8u),
            new($"{arch}.block_count", 1u),
            new($"{arch}.feed_forward_length", 16u),
            new($"{arch}.attention.head_count", 2u),
            new($"{arch}.context_length", 128u),
            new($"{arch}.rope.freq_base", 1000000f),
            new($"{arch}.attention.layer_norm_epsilon", 1e-6f),
            new("tokenizer.ggml.model", "gpt2"),
            new("tokenizer.ggml.pre", "qwen2"),
            new("tokenizer.ggml.tokens", GgufValue.Array(new[] { "a", "b", "ab", "<|end|>" })),
            new("tokenizer.ggml.token_type", GgufValue.Array(new[] { 1, 1, 1, 3 })),
            new("tokenizer.ggml.merges", GgufValue.Array(new[] { "a b" })),
            new("tokenizer.ggml.eos_token_id", 3u),
            new("tokenizer.ggml.add_bos_token", false),
            new("tokenizer.chat_template", "{{ messages }}"),
        };
        if (extra is not null) md.AddRange(extra);
        var zeros = new float[4 * 8];
        var tensors = new List<GgufTensorToWrite> { GgufTensorToWrite.FromFloats("token_embd.weight", TensorType.F32, [4, 8], () => zeros) };
        if (withOutput) tensors.Add(GgufTensorToWrite.FromFloats("output.weight", TensorType.F16, [4, 8], () => zeros));
        if (withBias) tensors.Add(GgufTensorToWrite.FromFloats("blk.0.attn_q.bias", TensorType.F32, [8], () => zeros.AsMemory(0, 8)));
        string path = dir.File($"{arch}.gguf");
        GgufWriter.Write(path, md, tensors);
        return path;
    }

    [Fact]
    public void Qwen2_style_file_gives_tied_embeddings_biases_and_byte_level_tokenizer()
    {
        using var dir = new TempDir();
        using var model = GgufModelLoader.Load(WriteModel(dir, "qwen2", withOutput: false, withBias: true));
        var c = model.Config;
        Assert.Equal(Architecture.Qwen2, c.Architecture);
        Assert.True(c.TiedEmbeddings);
        Assert.True(c.AttentionBias);
        Assert.Equal(2, c.HeadCountKv);
        Assert.Equal(4, c.HeadDim);
        Assert.Equal(4, c.VocabSize);
        Assert.Equal(1000000f, c.RopeTheta);
        Assert.Equal(1e-5f, c.NormEpsilon); // qwen2 reads the RMS key, absent here
        var t = model.Tokenizer!;
        Assert.Equal("gpt2", t.Kind);
        Assert.Equal("qwen2", t.Pre);
        Assert.Equal(new[] { "a b" }, t.Merges);
        Assert.Equal(3, t.EosId);
        Assert.Null(t.BosId);
        Assert.False(t.AddBos);
        Assert.Equal("{{ messages }}", t.ChatTemplate);
        Assert.Equal(new[] { 1, 1, 1, 3 }, t.TokenTypes);
    }

    [Fact]
    public void Gpt2_reads_layer_norm_epsilon_and_untied_output()
    {
        using var dir = new TempDir();
        using var model = GgufModelLoader.Load(WriteModel(dir, "gpt2", withOutput: true, withBias: false));
        Assert.Equal(Architecture.Gpt2, model.Config.Architecture);
        Assert.Equal(1e-6f, model.Config.NormEpsilon);
        Assert.False(model.Config.TiedEmbeddings);
        Assert.Equal(TensorType.F16, model.Get("output.weight").Type);
    }

    [Fact]
    public void Unsupported_architecture_names_the_file_and_the_key()
    {
        using var dir = new TempDir();
        string path = WriteModel(dir, "mamba", withOutput: true, withBias: false);
        var e = Assert.Throws<BadInputException>(() => ModelLoader.Load(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("general.architecture", e.Message);
        Assert.Contains("mamba", e.Message);
    }

    [Fact]
    public void Hyperparameter_of_the_wrong_type_is_a_format_error_at_its_offset()
    {
        using var dir = new TempDir();
        string path = WriteModel(dir, "llama", withOutput: true, withBias: false, [new("llama.attention.head_count_kv", "two")]);
        var e = Assert.Throws<FileFormatException>(() => ModelLoader.Load(path));
        Assert.Contains("llama.attention.head_count_kv", e.Message);
        Assert.Contains("byte offset", e.Message);
    }

    [Fact]
    public void Mutated_model_files_load_or_fail_with_BadInputException()
    {
        // A seeded mutator over a complete small model (hyperparameters, tokenizer, tensors): whatever the reader
        // accepts, the loader must turn into a model or reject as bad input, never crash on a key of the wrong type,
        // a count that disagrees with the vocabulary or a shape that contradicts the config.
        using var dir = new TempDir();
        var seed = File.ReadAllBytes(WriteModel(dir, "llama", withOutput: true, withBias: true,
            [new("tokenizer.ggml.scores", GgufValue.Array(new[] { 0f, -1f, -2f, -3f })), new("llama.attention.head_count_kv", 1u)]));
        var rng = new Random(424242);
        int loaded = 0, rejected = 0;
        for (int it = 0; it < 2000; it++)
        {
            var bytes = (byte[])seed.Clone();
            int n = 1 + rng.Next(3);
            for (int m = 0; m < n; m++)
            {
                int pos = rng.Next(bytes.Length);
                if (rng.Next(3) == 0) bytes[pos] ^= (byte)(1 << rng.Next(8));
                else if (pos + 4 <= bytes.Length) BitConverter.TryWriteBytes(bytes.AsSpan(pos), new[] { 0u, 1u, 2u, 3u, 4u, 5u, 6u, 8u, 9u, 0xFFFFFFFFu }[rng.Next(10)]);
            }
            try
            {
                using var file = GgufReader.Read(Formats.IO.MappedFile.FromBytes(bytes, "mutant.gguf"), ownsFile: true);
                try
                {
                    using var model = GgufModelLoader.Load(file);
                    foreach (var t in model.Tensors) _ = t.ToFloat32();
                    loaded++;
                }
                catch (BadInputException e)
                {
                    Assert.Contains("mutant.gguf", e.Message);
                    rejected++;
                }
            }
            catch (FileFormatException)
            {
                rejected++;
            }
        }
        Assert.True(loaded > 100 && rejected > 100, $"loaded {loaded}, rejected {rejected}");
    }
}
