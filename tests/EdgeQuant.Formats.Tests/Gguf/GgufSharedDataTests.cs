using EdgeQuant.Core.Tensors;
using EdgeQuant.Formats.Gguf;
using EdgeQuant.Testing;

namespace EdgeQuant.Formats.Tests.Gguf;

public class GgufSharedDataTests
{
    private const string Stories = "models/stories260K/stories260K.gguf";

    [SharedDataFact(Stories)]
    public void Stories260K_header_matches_the_published_shape()
    {
        using var f = GgufReader.Read(SharedData.Require(Stories));
        Assert.Equal(3u, f.Version);
        Assert.Equal("llama", f.Architecture);
        Assert.Equal(64u, f.Find("llama.embedding_length")!.Value);
        Assert.Equal(5u, f.Find("llama.block_count")!.Value);
        Assert.Equal(8u, f.Find("llama.attention.head_count")!.Value);
        Assert.Equal(4u, f.Find("llama.attention.head_count_kv")!.Value);
        Assert.Equal(172u, f.Find("llama.feed_forward_length")!.Value);
        Assert.Equal(512, f.Find("tokenizer.ggml.tokens")!.ArrayLength);
        Assert.Equal(3 + 9 * 5, f.Tensors.Count);
        Assert.All(f.Tensors, t => Assert.Equal(TensorType.F32, t.Type));
        Assert.Equal(new long[] { 512, 64 }, f.FindTensor("token_embd.weight")!.Shape);
        Assert.Equal(new long[] { 64, 172 }, f.FindTensor("blk.4.ffn_down.weight")!.Shape);
        Assert.Equal(new long[] { 32, 64 }, f.FindTensor("blk.0.attn_k.weight")!.Shape);
        var last = f.Tensors[^1];
        Assert.Equal(f.File.Length, last.AbsoluteOffset + last.ByteLength);
    }

    [SharedDataFact(Stories)]
    public void Stories260K_rewritten_is_byte_identical()
    {
        using var dir = new TempDir();
        string src = SharedData.Require(Stories);
        string dst = dir.File("copy.gguf");
        using (var f = GgufReader.Read(src)) GgufWriter.Rewrite(f, dst);
        Assert.Equal(File.ReadAllBytes(src), File.ReadAllBytes(dst));
    }
}
