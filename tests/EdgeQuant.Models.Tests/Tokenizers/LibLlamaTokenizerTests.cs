using EdgeQuant.Formats.Gguf;
using EdgeQuant.Models.Tokenizers;
using EdgeQuant.Runtimes;
using EdgeQuant.Runtimes.LlamaCpp;
using EdgeQuant.Testing;
using Xunit;
using Xunit.Abstractions;

namespace EdgeQuant.Models.Tests.Tokenizers;

/// <summary>
/// Needs libllama (make runtimes) and the llama.cpp vocab files: skipped with the reason on a developer machine
/// without them, run (and so failed) under CI=true.
/// </summary>
public sealed class LibLlamaTheoryAttribute : TheoryAttribute
{
    public LibLlamaTheoryAttribute()
    {
        if (SharedData.IsCi) return;
        if (LibLlamaTokenizerTests.RuntimeSkipReason is { } reason) Skip = reason;
        else if (!LlamaCppVectors.Present) Skip = $"llama.cpp vocab files not found under {LlamaCppVectors.ModelsDir} (run tools/fetch-runtimes.sh)";
    }
}

/// <summary>
/// Our tokenizer against the real one: llama_tokenize of libllama from @node-llama-cpp/linux-x64@3.22.1, through the
/// project's binding, on the three shared corpora (add_special = true, parse_special = false) — zero differing ids.
/// </summary>
public sealed class LibLlamaTokenizerTests(ITestOutputHelper output)
{
    private static readonly Lazy<string?> Availability = new(() =>
    {
        try
        {
            LlamaLibrary.EnsureInitialized();
            return null;
        }
        catch (RuntimeNotFoundException e)
        {
            return $"llama.cpp runtime unavailable: {e.Message} (under CI=true this fails instead)";
        }
    });

    internal static string? RuntimeSkipReason => Availability.Value;

    private static readonly string[] CorpusFiles =
        ["corpus/tinystories-sample.txt", "corpus/wikitext-2-raw-test.txt", "corpus/tinyshakespeare.txt"];

    public static TheoryData<string> Vocabs => new() { "llama-spm", "phi-3", "gpt-2", "llama-bpe", "qwen2", "deepseek-llm", "starcoder", "falcon" };

    private void AssertSame(int[] expected, int[] actual, string what)
    {
        int n = Math.Min(expected.Length, actual.Length), d = -1;
        for (int i = 0; i < n && d < 0; i++) if (expected[i] != actual[i]) d = i;
        if (d < 0 && expected.Length != actual.Length) d = n;
        output.WriteLine($"{what}: llama.cpp {expected.Length} tokens, ours {actual.Length}, first difference {(d < 0 ? "none" : d.ToString())}");
        Assert.True(d < 0, $"{what}: first difference at token {d}: llama.cpp [{string.Join(' ', expected.Skip(Math.Max(0, d - 3)).Take(8))}] ours [{string.Join(' ', actual.Skip(Math.Max(0, d - 3)).Take(8))}]");
    }

    [LibLlamaTheory]
    [MemberData(nameof(Vocabs))]
    public void Vocab_gguf_encodes_the_corpora_like_libllama(string vocab)
    {
        var path = LlamaCppVectors.Vocab(vocab);
        var ours = Tokenizer.FromGguf(path);
        using var real = LlamaModel.Load(path, new LlamaModelOptions { VocabOnly = true });
        foreach (var corpus in CorpusFiles)
        {
            var bytes = File.ReadAllBytes(SharedData.Require(corpus));
            AssertSame(real.Tokenize(bytes, addSpecial: true, parseSpecial: false), ours.Encode(bytes), $"{vocab} {corpus}");
        }
    }

    /// <summary>
    /// The shared tokenizer.json files, written as GGUF by our exporter (architecture keys copied from the matching
    /// llama.cpp vocab file) and loaded by libllama: its ids for the corpora equal ours from the tokenizer.json.
    /// </summary>
    [LibLlamaTheory]
    [InlineData("tokenizers/phi3/tokenizer.json", "phi-3")]
    [InlineData("onnx/tiny-random-gpt2/tokenizer.json", "gpt-2")]
    public void Tokenizer_json_encodes_the_corpora_like_libllama_on_its_gguf_export(string json, string archFrom)
    {
        var hf = Tokenizer.FromHuggingFace(SharedData.Require(json));
        using var dir = new TempDir("eqtoklib");
        var file = dir.File("vocab.gguf");
        using (var template = GgufReader.Read(LlamaCppVectors.Vocab(archFrom)))
        {
            var metadata = template.Metadata.Where(kv => !kv.Key.StartsWith("tokenizer.", StringComparison.Ordinal) && kv.Key != "general.alignment")
                .Select(kv => new KeyValuePair<string, GgufValue>(kv.Key, kv.Value)).ToList();
            metadata.AddRange(hf.ToGgufMetadata());
            GgufWriter.Write(file, metadata, []);
        }
        using var real = LlamaModel.Load(file, new LlamaModelOptions { VocabOnly = true });
        Assert.Equal(hf.VocabSize, real.VocabSize);
        foreach (var corpus in CorpusFiles)
        {
            var bytes = File.ReadAllBytes(SharedData.Require(corpus));
            AssertSame(real.Tokenize(bytes, addSpecial: true, parseSpecial: false), hf.Encode(bytes), $"{json} {corpus}");
        }
    }

    /// <summary>Special and user-defined tokens in the text, with and without parse_special, against libllama.</summary>
    [LibLlamaTheory]
    [MemberData(nameof(Vocabs))]
    public void Special_tokens_in_text_are_handled_like_libllama(string vocab)
    {
        var path = LlamaCppVectors.Vocab(vocab);
        var ours = Tokenizer.FromGguf(path);
        using var real = LlamaModel.Load(path, new LlamaModelOptions { VocabOnly = true });
        // Every control / user-defined token text of the vocabulary (up to 40), glued to text and spaces on both sides.
        var specials = Enumerable.Range(0, ours.VocabSize)
            .Where(i => (ours.TokenAttributes(i) & (TokenAttributes.Control | TokenAttributes.UserDefined)) != 0)
            .Take(40).Select(ours.TokenText).ToList();
        Assert.NotEmpty(specials);
        var texts = new List<string> { "", " ", "\n\n", "Hello world" };
        foreach (var sp in specials)
        {
            texts.Add(sp);
            texts.Add($"{sp}Hello");
            texts.Add($"Hi {sp}  there\n{sp}{sp} x");
            texts.Add($" \t{sp}\n  end");
        }
        foreach (var text in texts)
            foreach (var parse in new[] { false, true })
                foreach (var add in new[] { false, true })
                    Assert.True(real.Tokenize(text, add, parse).SequenceEqual(ours.Encode(text, add, parse)),
                        $"{vocab} '{TestVectorTests.Escape(text)}' add_special={add} parse_special={parse}: llama.cpp [{string.Join(' ', real.Tokenize(text, add, parse))}] ours [{string.Join(' ', ours.Encode(text, add, parse))}]");
    }
}
