using System.Text.Json;
using EdgeQuant.Formats.HuggingFace;
using EdgeQuant.Testing;

namespace EdgeQuant.Formats.Tests.HuggingFace;

public class HfTokenizerReaderTests
{
    [SharedDataFact("onnx/tiny-random-gpt2/tokenizer.json")]
    public void Real_gpt2_tokenizer_reads_as_byte_level()
    {
        var dir = SharedData.Require("onnx/tiny-random-gpt2");
        var info = HfTokenizerReader.Read(dir, null, out var reason);
        Assert.NotNull(info);
        Assert.Null(reason);
        Assert.Equal("gpt2", info.Kind);
        Assert.Equal("<|endoftext|>", info.Tokens[50256]);
        Assert.Equal(GgufTokenType.Control, info.TokenTypes[50256]);
        Assert.Equal(50256, info.EosId);

        // Independent check against the file itself: every vocab entry and added token lands at its id (this file
        // adds whitespace-run tokens after GPT-2's 50,257), merges keep their order.
        using var doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(dir, "tokenizer.json")));
        var model = doc.RootElement.GetProperty("model");
        var vocab = model.GetProperty("vocab").EnumerateObject().ToList();
        var added = doc.RootElement.GetProperty("added_tokens").EnumerateArray().ToList();
        Assert.Equal(50257, vocab.Count);
        Assert.Equal(Math.Max(vocab.Max(p => p.Value.GetInt32()), added.Max(a => a.GetProperty("id").GetInt32())) + 1, info.Tokens.Length);
        foreach (var p in vocab) Assert.Equal(p.Name, info.Tokens[p.Value.GetInt32()]);
        foreach (var a in added)
        {
            int id = a.GetProperty("id").GetInt32();
            Assert.Equal(a.GetProperty("content").GetString(), info.Tokens[id]);
            Assert.Equal(a.GetProperty("special").GetBoolean() ? GgufTokenType.Control : GgufTokenType.UserDefined, info.TokenTypes[id]);
        }
        var merges = model.GetProperty("merges").EnumerateArray()
            .Select(m => m.ValueKind == JsonValueKind.String ? m.GetString() : $"{m[0].GetString()} {m[1].GetString()}").ToArray();
        Assert.Equal(merges, info.Merges);
    }

    [SharedDataFact("tokenizers/phi3/tokenizer.json")]
    public void Real_sentencepiece_bpe_tokenizer_reads_as_llama_kind_with_byte_tokens()
    {
        var dir = SharedData.Require("tokenizers/phi3");
        var info = HfTokenizerReader.Read(dir, null, out _);
        Assert.NotNull(info);
        Assert.Equal("llama", info.Kind);
        using var doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(dir, "tokenizer.json")));
        var vocab = doc.RootElement.GetProperty("model").GetProperty("vocab");
        int byteId = vocab.GetProperty("<0x41>").GetInt32();
        Assert.Equal(GgufTokenType.Byte, info.TokenTypes[byteId]);
        int unk = vocab.GetProperty("<unk>").GetInt32();
        Assert.Equal(unk, info.UnknownId);
        Assert.Equal(GgufTokenType.Unknown, info.TokenTypes[unk]);
        foreach (var a in doc.RootElement.GetProperty("added_tokens").EnumerateArray())
            Assert.Equal(a.GetProperty("content").GetString(), info.Tokens[a.GetProperty("id").GetInt32()]);
    }

    [Fact]
    public void Missing_tokenizer_is_reported_not_thrown()
    {
        using var dir = new TempDir();
        Assert.Null(HfTokenizerReader.Read(dir.Path, null, out var reason));
        Assert.Contains("tokenizer.json", reason);
    }

    [Fact]
    public void Malformed_tokenizer_names_the_file_and_field()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("tokenizer.json"), """{"model":{"type":"BPE","byte_fallback":true,"vocab":{"a":-3},"merges":[]}}""");
        var e = Assert.Throws<EdgeQuant.Core.Errors.FileFormatException>(() => HfTokenizerReader.Read(dir.Path, null, out _));
        Assert.Equal(dir.File("tokenizer.json"), e.FilePath);
        Assert.Equal("model.vocab[a]", e.Field);
    }
}
