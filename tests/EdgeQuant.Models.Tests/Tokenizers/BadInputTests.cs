using System.Text;
using EdgeQuant.Core.Errors;
using EdgeQuant.Formats.Gguf;
using EdgeQuant.Models.Tokenizers;
using EdgeQuant.Testing;
using Xunit;

namespace EdgeQuant.Models.Tests.Tokenizers;

/// <summary>Malformed tokenizer sources and text: a BadInputException (exit code 2) whose one-line message names the field.</summary>
public sealed class BadInputTests : IDisposable
{
    private readonly TempDir _dir = new("eqtokbad");

    public void Dispose() => _dir.Dispose();

    // A minimal valid byte-level tokenizer.json: the 256 byte characters, one merge, the GPT-2 pre-tokenizer.
    private static string Json(string? model = null, string preTokenizer = """{"type": "ByteLevel", "add_prefix_space": false, "use_regex": true}""",
        string merges = """["h e"]""")
    {
        var vocab = new StringBuilder();
        for (int b = 0; b < 256; b++)
        {
            var c = ByteLevelMap.Encode((byte)b);
            vocab.Append(b == 0 ? "" : ", ").Append('"').Append(c switch { '"' => "\\\"", '\\' => "\\\\", _ => c.ToString() }).Append("\": ").Append(b);
        }
        vocab.Append(", \"he\": 256");
        model ??= $$"""{"type": "BPE", "vocab": {{{vocab}}}, "merges": {{merges}}}""";
        return $$"""{"version": "1.0", "added_tokens": [], "normalizer": null, "pre_tokenizer": {{preTokenizer}}, "decoder": {"type": "ByteLevel"}, "model": {{model}}}""";
    }

    private BadInputException LoadFails(string json)
    {
        var p = _dir.File($"t{Guid.NewGuid():N}.json");
        File.WriteAllText(p, json);
        var e = Assert.ThrowsAny<BadInputException>(() => Tokenizer.FromHuggingFace(p));
        Assert.DoesNotContain('\n', e.Message);
        Assert.Contains(p, e.Message);
        return e;
    }

    [Fact]
    public void The_minimal_tokenizer_json_itself_loads_and_merges()
    {
        var p = _dir.File("ok.json");
        File.WriteAllText(p, Json());
        var tok = Tokenizer.FromHuggingFace(p);
        Assert.Equal([256, (int)'y'], tok.Encode("hey", addSpecial: false));
    }

    [Fact]
    public void Missing_model_section_names_model() =>
        Assert.Contains("model: missing", LoadFails("""{"version": "1.0", "added_tokens": []}""").Message);

    [Fact]
    public void Unknown_pre_tokenizer_type_names_the_field_and_type()
    {
        var e = LoadFails(Json(preTokenizer: """{"type": "Sequence", "pretokenizers": [{"type": "WhitespaceSplit"}, {"type": "ByteLevel", "use_regex": false}]}"""));
        Assert.Contains("pre_tokenizer[0].type", e.Message);
        Assert.Contains("WhitespaceSplit", e.Message);
    }

    [Fact]
    public void Merge_naming_an_absent_token_names_the_merge()
    {
        var e = LoadFails(Json(merges: """["h e", "q zz"]"""));
        Assert.Contains("model.merges[1]", e.Message);
        Assert.Contains("'zz'", e.Message);
    }

    [Fact]
    public void Merge_whose_result_is_absent_names_the_merge()
    {
        var e = LoadFails(Json(merges: """["h e", "l o"]"""));
        Assert.Contains("model.merges[1]", e.Message);
        Assert.Contains("'lo'", e.Message);
    }

    [Fact]
    public void Unsupported_model_type_names_model_type() =>
        Assert.Contains("model.type", LoadFails(Json(model: """{"type": "Unigram", "vocab": []}""")).Message);

    [Fact]
    public void Not_json_is_bad_input() => LoadFails("{ this is not json");

    [Fact]
    public void Absurd_token_id_is_refused_before_allocating() =>
        Assert.Contains("far beyond", LoadFails(Json(model: """{"type": "BPE", "vocab": {"a": 2000000000}, "merges": []}""")).Message);

    [Fact]
    public void Invalid_utf8_text_names_the_byte_offset()
    {
        var p = _dir.File("ok.json");
        File.WriteAllText(p, Json());
        var tok = Tokenizer.FromHuggingFace(p);
        var e = Assert.ThrowsAny<BadInputException>(() => tok.Encode([(byte)'h', (byte)'i', 0xC3, 0x28], what: "input.txt"));
        Assert.Equal("input.txt: invalid UTF-8 at byte offset 2", e.Message);
        Assert.Throws<BadInputException>(() => tok.Encode("a\uD800b"));
    }

    [Fact]
    public void Unknown_gguf_pre_tokenizer_names_the_key()
    {
        var file = _dir.File("v.gguf");
        var tokens = Enumerable.Range(0, 256).Select(b => ByteLevelMap.Encode((byte)b).ToString()).ToArray();
        GgufWriter.Write(file, [
            new("general.architecture", "gpt2"),
            new(GgufTokenizerKeys.Model, "gpt2"),
            new(GgufTokenizerKeys.Pre, "no-such-pre"),
            new(GgufTokenizerKeys.Tokens, GgufValue.Array(tokens)),
            new(GgufTokenizerKeys.Merges, GgufValue.Array(Array.Empty<string>())),
        ], []);
        var e = Assert.ThrowsAny<BadInputException>(() => Tokenizer.FromGguf(file));
        Assert.Contains("tokenizer.ggml.pre", e.Message);
        Assert.Contains("no-such-pre", e.Message);
    }

    [Fact]
    public void Gguf_tokens_of_the_wrong_type_name_key_and_offset()
    {
        var file = _dir.File("w.gguf");
        GgufWriter.Write(file, [
            new("general.architecture", "llama"),
            new(GgufTokenizerKeys.Model, "llama"),
            new(GgufTokenizerKeys.Tokens, GgufValue.Array(new[] { 1, 2, 3 })),
        ], []);
        var e = Assert.IsType<FileFormatException>(Assert.ThrowsAny<BadInputException>(() => Tokenizer.FromGguf(file)));
        Assert.Equal(GgufTokenizerKeys.Tokens, e.Field);
        Assert.NotNull(e.Offset);
    }

    [Fact]
    public void Unknown_tokenizer_model_is_refused()
    {
        var file = _dir.File("u.gguf");
        GgufWriter.Write(file, [
            new("general.architecture", "llama"),
            new(GgufTokenizerKeys.Model, "t5"),
            new(GgufTokenizerKeys.Tokens, GgufValue.Array(new[] { "a" })),
        ], []);
        Assert.Contains("tokenizer.ggml.model", Assert.ThrowsAny<BadInputException>(() => Tokenizer.FromGguf(file)).Message);
    }
}
