using System.Text;
using EdgeQuant.Formats.Gguf;
using EdgeQuant.Formats.Llama2c;
using EdgeQuant.Models.Loading;
using EdgeQuant.Models.Tokenizers;
using EdgeQuant.Testing;
using Xunit;

namespace EdgeQuant.Models.Tests.Tokenizers;

public sealed class SourcesAndRoundTripTests
{
    private const string Stories = "models/stories260K/stories260K.gguf";
    private const string Tok512 = "models/stories260K/tok512.bin";
    private const string Sample = "corpus/tinystories-sample.txt";

    /// <summary>
    /// REFERENCE.md: llama.cpp counts 100,707 tokens (with BOS) in the TinyStories sample, after dropping one trailing
    /// newline as llama-perplexity does. Both tokenizer sources must give that count and the very same ids.
    /// </summary>
    [SharedDataFact(Stories, Tok512, Sample)]
    public void Stories260K_gguf_and_tok512_give_identical_ids_and_llama_cpp_token_count()
    {
        var fromGguf = Tokenizer.FromGguf(SharedData.Require(Stories));
        var fromBin = Tokenizer.FromData(Llama2cModelLoader.ToTokenizerData(Llama2cTokenizerReader.Read(SharedData.Require(Tok512), 512)));
        var text = File.ReadAllText(SharedData.Require(Sample));
        if (text.EndsWith('\n')) text = text[..^1];
        var a = fromGguf.Encode(text);
        var b = fromBin.Encode(text);
        Assert.Equal(100_707, a.Length);
        Assert.Equal(a, b);
    }

    public static TheoryData<string, string> TokenizerCorpusPairs()
    {
        var data = new TheoryData<string, string>();
        foreach (var corpus in new[] { "corpus/tinystories-sample.txt", "corpus/wikitext-2-raw-test.txt", "corpus/tinyshakespeare.txt" })
            foreach (var tok in new[] { "gguf:llama-spm", "gguf:gpt-2", "gguf:llama-bpe", "gguf:qwen2", "json:tokenizers/phi3/tokenizer.json", "json:onnx/tiny-random-gpt2/tokenizer.json", "gguf-shared:" + Stories })
                data.Add(tok, corpus);
        return data;
    }

    private static Tokenizer Load(string source) => source.Split(':', 2) switch
    {
        ["gguf", var v] => Tokenizer.FromGguf(LlamaCppVectors.Vocab(v)),
        ["json", var p] => Tokenizer.FromHuggingFace(SharedData.Require(p)),
        ["gguf-shared", var p] => Tokenizer.FromGguf(SharedData.Require(p)),
        _ => throw new ArgumentException(source),
    };

    /// <summary>
    /// Decode(Encode(text)) gives the text back byte for byte; SentencePiece's dummy-prefix space is the one thing
    /// Decode removes (the documented leading-space rule). stories260K's 512-token vocabulary maps characters it
    /// lacks to &lt;unk&gt;-free byte tokens, so it round-trips too.
    /// </summary>
    [SharedDataTheory("corpus/tinystories-sample.txt", "corpus/wikitext-2-raw-test.txt", "corpus/tinyshakespeare.txt", "tokenizers/phi3/tokenizer.json", "onnx/tiny-random-gpt2/tokenizer.json", Stories)]
    [MemberData(nameof(TokenizerCorpusPairs))]
    public void Decode_of_encode_round_trips_the_corpus_byte_for_byte(string tokenizer, string corpus)
    {
        var tok = Load(tokenizer);
        var bytes = File.ReadAllBytes(SharedData.Require(corpus));
        var ids = tok.Encode(bytes);
        Assert.Equal(bytes, tok.DecodeBytes(ids));
    }

    public static TheoryData<string> WritableVocabs => new() { "llama-spm", "phi-3", "gpt-2", "llama-bpe", "qwen2", "deepseek-llm", "starcoder", "falcon" };

    /// <summary>A tokenizer written as GGUF metadata and read back encodes every test vector and a corpus the same.</summary>
    [LlamaCppVectorsTheory]
    [MemberData(nameof(WritableVocabs))]
    public void Gguf_metadata_written_and_read_back_encodes_the_same(string vocab)
    {
        var path = LlamaCppVectors.Vocab(vocab);
        var original = Tokenizer.FromGguf(path);
        using var dir = new TempDir("eqtokgguf");
        var file = dir.File("vocab.gguf");
        var metadata = new List<KeyValuePair<string, GgufValue>> { new("general.architecture", "llama") };
        metadata.AddRange(original.ToGgufMetadata());
        GgufWriter.Write(file, metadata, []);
        var reread = Tokenizer.FromGguf(file);
        AssertSameEncoding(original, reread, path);
    }

    /// <summary>A tokenizer written as tokenizer.json and read back encodes every test vector and a corpus the same.</summary>
    [LlamaCppVectorsTheory]
    [MemberData(nameof(WritableVocabs))]
    public void Tokenizer_json_written_and_read_back_encodes_the_same(string vocab)
    {
        var path = LlamaCppVectors.Vocab(vocab);
        var original = Tokenizer.FromGguf(path);
        using var dir = new TempDir("eqtokjson");
        original.WriteHuggingFace(dir.Path);
        var reread = Tokenizer.FromHuggingFace(dir.Path);
        Assert.Equal(original.AddBos, reread.AddBos);
        Assert.Equal(original.BosId, reread.BosId);
        Assert.Equal(original.EosId, reread.EosId);
        AssertSameEncoding(original, reread, path);
    }

    private static void AssertSameEncoding(Tokenizer a, Tokenizer b, string vocabPath)
    {
        Assert.Equal(a.VocabSize, b.VocabSize);
        foreach (var (text, _) in LlamaCppVectors.Cases(vocabPath))
            Assert.Equal(a.Encode(text, addSpecial: true), b.Encode(text, addSpecial: true));
        if (SharedData.IsCi || File.Exists(SharedData.PathOf("corpus/tinyshakespeare.txt")))
        {
            var corpus = File.ReadAllText(SharedData.Require("corpus/tinyshakespeare.txt"))[..200_000];
            Assert.Equal(a.Encode(corpus), b.Encode(corpus));
        }
    }
}

public sealed class FromModelTests
{
    /// <summary>A loaded model's tokenizer (GGUF and llama2.c sources) encodes like the one read straight from its file.</summary>
    [SharedDataFact("models/stories260K/stories260K.gguf", "models/stories260K/stories260K.bin", "corpus/tinystories-sample.txt")]
    public void Tokenizer_from_loaded_models_matches_the_file_tokenizer()
    {
        var text = File.ReadAllText(SharedData.Require("corpus/tinystories-sample.txt"))[..20_000];
        var expected = Tokenizer.FromGguf(SharedData.Require("models/stories260K/stories260K.gguf")).Encode(text);
        using (var gguf = ModelLoader.Load(SharedData.Require("models/stories260K/stories260K.gguf")))
            Assert.Equal(expected, Tokenizer.FromModel(gguf).Encode(text));
        using (var bin = ModelLoader.Load(SharedData.Require("models/stories260K/stories260K.bin")))
            Assert.Equal(expected, Tokenizer.FromModel(bin).Encode(text));
    }
}
