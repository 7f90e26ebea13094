using EdgeQuant.Models.Tokenizers;
using Xunit;
using Xunit.Abstractions;

namespace EdgeQuant.Models.Tests.Tokenizers;

public sealed class TestVectorTests(ITestOutputHelper output)
{
    public static TheoryData<string> Vocabs => new()
    {
        "llama-spm", "phi-3", "gpt-2", "llama-bpe", "qwen2", "deepseek-llm", "starcoder", "falcon",
        "deepseek-coder", "mpt", "refact", "command-r",
    };

    [LlamaCppVectorsTheory]
    [MemberData(nameof(Vocabs))]
    public void Encodes_every_llama_cpp_test_vector_exactly(string vocab)
    {
        var path = LlamaCppVectors.Vocab(vocab);
        var tok = Tokenizer.FromGguf(path);
        var cases = LlamaCppVectors.Cases(path);
        var failures = new List<string>();
        foreach (var (text, expected) in cases)
        {
            // test-tokenizer-0 tokenizes with add_special = false, parse_special = false.
            var got = tok.Encode(text, addSpecial: false, parseSpecial: false);
            if (!got.SequenceEqual(expected))
                failures.Add($"'{Escape(text)}': expected [{string.Join(' ', expected)}] got [{string.Join(' ', got)}]");
        }
        output.WriteLine($"{vocab}: {cases.Count - failures.Count}/{cases.Count} cases pass");
        foreach (var f in failures) output.WriteLine(f);
        Assert.True(failures.Count == 0, $"{vocab}: {failures.Count} of {cases.Count} cases differ:\n{string.Join('\n', failures.Take(10))}");
    }

    [LlamaCppVectorsTheory]
    [MemberData(nameof(Vocabs))]
    public void Decoding_the_vectors_gives_the_text_back(string vocab)
    {
        var path = LlamaCppVectors.Vocab(vocab);
        var tok = Tokenizer.FromGguf(path);
        int checkedCases = 0;
        foreach (var (text, ids) in LlamaCppVectors.Cases(path))
        {
            // A text the vocabulary cannot represent (a character mapped to <unk>) cannot round-trip.
            if (tok.UnknownId is { } unk && ids.Contains(unk)) continue;
            Assert.Equal(text, tok.Decode(ids));
            checkedCases++;
        }
        Assert.True(checkedCases > 10);
    }

    internal static string Escape(string s) => s.Replace("\n", "\\n").Replace("\t", "\\t").Replace("\r", "\\r");
}
