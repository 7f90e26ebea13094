using EdgeQuant.Models.Loading;
using EdgeQuant.Testing;

namespace EdgeQuant.Models.Tests.Loading;

public class Llama2cModelLoaderTests
{
    private const string Bin = "models/stories260K/stories260K.bin";
    private const string Tok = "models/stories260K/tok512.bin";
    private const string Gguf = "models/stories260K/stories260K.gguf";

    [SharedDataFact(Bin, Tok, Gguf)]
    public void Stories260K_llama2c_and_gguf_are_the_same_model_bit_for_bit()
    {
        using var l2c = ModelLoader.Load(SharedData.Require(Bin));
        using var gguf = ModelLoader.Load(SharedData.Require(Gguf));
        Assert.Equal(ModelFormat.Llama2c, l2c.Provenance.Format);
        Assert.Equal(ModelFormat.Gguf, gguf.Provenance.Format);

        // REFERENCE: dim 64, 5 layers, 8 heads, 4 KV heads, FFN 172, vocab 512.
        foreach (var c in new[] { l2c.Config, gguf.Config })
        {
            Assert.Equal(Architecture.Llama, c.Architecture);
            Assert.Equal((64, 5, 8, 4, 172, 512, 8), (c.EmbeddingLength, c.BlockCount, c.HeadCount, c.HeadCountKv, c.FeedForwardLength, c.VocabSize, c.HeadDim));
        }
        Assert.Equal(gguf.Config.NormEpsilon, l2c.Config.NormEpsilon);
        Assert.Equal(gguf.Config.RopeTheta, l2c.Config.RopeTheta);

        Assert.Equal(gguf.Tensors.Select(t => t.Name), l2c.Tensors.Select(t => t.Name));
        foreach (var g in gguf.Tensors)
        {
            var t = l2c.Get(g.Name);
            Assert.Equal(g.Shape, t.Shape);
            Assert.Equal(g.Type, t.Type);
            Assert.True(g.RawBytes().SequenceEqual(t.RawBytes()), $"{g.Name} differs");
        }
        Assert.Equal(gguf.ParameterCount, l2c.ParameterCount);
    }

    [SharedDataFact(Bin, Tok, Gguf)]
    public void Stories260K_tokenizer_bin_matches_the_gguf_vocabulary()
    {
        using var l2c = ModelLoader.Load(SharedData.Require(Bin));
        using var gguf = ModelLoader.Load(SharedData.Require(Gguf));
        var a = l2c.Tokenizer!;
        var b = gguf.Tokenizer!;
        Assert.Equal("llama", a.Kind);
        Assert.Equal(b.Kind, a.Kind);
        Assert.Equal(b.Tokens, a.Tokens);
        Assert.Equal(b.Scores, a.Scores);
        Assert.Equal(b.TokenTypes, a.TokenTypes);
        Assert.Equal(b.BosId, a.BosId);
        Assert.Equal(b.EosId, a.EosId);
        Assert.Equal(b.UnknownId, a.UnknownId);
    }

    [SharedDataFact(Bin)]
    public void Shared_classifier_is_the_embedding_bytes_not_a_copy()
    {
        using var m = Llama2cModelLoader.Load(SharedData.Require(Bin), tokenizerPath: null);
        Assert.True(m.Config.TiedEmbeddings);
        var emb = m.Get("token_embd.weight").RawBytes();
        var output = m.Get("output.weight").RawBytes();
        Assert.True(System.Runtime.CompilerServices.Unsafe.AreSame(ref System.Runtime.InteropServices.MemoryMarshal.GetReference(emb), ref System.Runtime.InteropServices.MemoryMarshal.GetReference(output)));
        Assert.Equal(512, m.Tokenizer!.Tokens.Count); // tok512.bin found beside the checkpoint
    }
}
