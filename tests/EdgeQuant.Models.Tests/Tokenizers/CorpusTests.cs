using EdgeQuant.Models.Tokenizers;
using EdgeQuant.Testing;
using Xunit;
using Xunit.Abstractions;

namespace EdgeQuant.Models.Tests.Tokenizers;

public sealed class CorpusTests(ITestOutputHelper output)
{
    public static TheoryData<string> Corpora => new()
    {
        "corpus/tinystories-sample.txt", "corpus/wikitext-2-raw-test.txt", "corpus/tinyshakespeare.txt",
    };

    private static int FirstDifference(int[] a, int[] b)
    {
        int n = Math.Min(a.Length, b.Length);
        for (int i = 0; i < n; i++) if (a[i] != b[i]) return i;
        return a.Length == b.Length ? -1 : n;
    }

    private void AssertSameIds(int[] expected, int[] actual, string what)
    {
        int d = FirstDifference(expected, actual);
        output.WriteLine($"{what}: {expected.Length} vs {actual.Length} tokens, first difference at {d}");
        Assert.True(d < 0, $"{what}: first difference at token {d}: expected [{string.Join(' ', expected.Skip(Math.Max(0, d - 3)).Take(8))}] got [{string.Join(' ', actual.Skip(Math.Max(0, d - 3)).Take(8))}]");
    }

    [SharedDataTheory("tokenizers/phi3/tokenizer.json", "corpus/tinystories-sample.txt", "corpus/wikitext-2-raw-test.txt", "corpus/tinyshakespeare.txt")]
    [MemberData(nameof(Corpora))]
    public void Phi3_tokenizer_json_encodes_like_llama_cpp_phi3_vocab(string corpus)
    {
        var hf = Tokenizer.FromHuggingFace(SharedData.Require("tokenizers/phi3/tokenizer.json"));
        var gguf = Tokenizer.FromGguf(LlamaCppVectors.Vocab("phi-3"));
        var bytes = File.ReadAllBytes(SharedData.Require(corpus));
        AssertSameIds(gguf.Encode(bytes), hf.Encode(bytes), corpus);
    }

    [SharedDataTheory("onnx/tiny-random-gpt2/tokenizer.json", "corpus/tinystories-sample.txt", "corpus/wikitext-2-raw-test.txt", "corpus/tinyshakespeare.txt")]
    [MemberData(nameof(Corpora))]
    public void Gpt2_tokenizer_json_encodes_like_llama_cpp_gpt2_vocab(string corpus)
    {
        var json = SharedData.Require("onnx/tiny-random-gpt2/tokenizer.json");
        var hf = Tokenizer.FromHuggingFace(json);
        // This tokenizer.json is CodeGen's: GPT-2 plus 38 added tokens for runs of spaces and tabs. llama.cpp's
        // converter turns them into user-defined tokens, so the llama.cpp reference is the GPT-2 vocab with those
        // tokens appended (ids and texts read from the json itself).
        using var file = EdgeQuant.Formats.Gguf.GgufReader.Read(LlamaCppVectors.Vocab("gpt-2"));
        var spec = Tokenizer.SpecFromGguf(file.Path, k => file.FindEntry(k) is { } e ? (e.Value, e.Offset) : null);
        var addedTokens = System.Text.Json.JsonDocument.Parse(File.ReadAllBytes(json)).RootElement.GetProperty("added_tokens")
            .EnumerateArray().Select(a => (Id: a.GetProperty("id").GetInt32(), Text: a.GetProperty("content").GetString()!))
            .Where(a => a.Id >= spec.Tokens.Count).OrderBy(a => a.Id).ToList();
        Assert.Equal(38, addedTokens.Count);
        var tokens = spec.Tokens.Concat(addedTokens.Select(a => a.Text)).ToArray();
        var types = spec.TokenTypes!.Concat(addedTokens.Select(_ => (int)GgufTokenType.UserDefined)).ToArray();
        var gguf = Tokenizer.FromSpec(new TokenizerSpec
        {
            Kind = spec.Kind, Pre = spec.Pre, Tokens = tokens, TokenTypes = types, Merges = spec.Merges,
            BosId = spec.BosId, EosId = spec.EosId, SourcePath = spec.SourcePath,
        });
        var bytes = File.ReadAllBytes(SharedData.Require(corpus));
        AssertSameIds(gguf.Encode(bytes), hf.Encode(bytes), corpus);
    }
}
