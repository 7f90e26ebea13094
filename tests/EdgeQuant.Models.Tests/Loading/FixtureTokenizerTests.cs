using EdgeQuant.Fixtures;
using EdgeQuant.Models.Tokenizers;
using EdgeQuant.Testing;

namespace EdgeQuant.Models.Tests.Loading;

/// <summary>
/// The fixture's tokenizer must be usable: any text round-trips (byte fallback / byte-level), frequent words use
/// merged pieces, and the HF files (tokenizer.json with merges) tokenize exactly like the GGUF vocabulary (scores).
/// </summary>
public class FixtureTokenizerTests
{
    private static readonly string[] Texts =
    [
        "Once upon a time, there was a little girl named Mia.",
        "The cat and the dog played in the park.",
        "Zebras 123 quizzed ✓ naïve façade — 日本語 😀\n\ttabs and\nnew lines",
        "",
        " leading space and trailing space ",
        "<s> not special </s>",
    ];

    [Theory]
    [InlineData(FixtureArch.Llama, 512)]
    [InlineData(FixtureArch.Llama, 300)]
    [InlineData(FixtureArch.Gpt2, 600)]
    [InlineData(FixtureArch.Gpt2, 257)]
    public void Any_text_round_trips_and_hf_files_tokenize_like_the_gguf(FixtureArch arch, int vocab)
    {
        using var dir = new TempDir("fixture-tok");
        var spec = FixtureSpec.Preset(arch, "tiny") with { Vocab = vocab };
        var r = FixtureMaker.Write(spec, dir.Path, FixtureFormats.Both);
        using var gguf = ModelLoader.Load(r.GgufPath!);
        var fromGguf = Tokenizer.FromData(gguf.Tokenizer!);
        var fromHf = Tokenizer.FromHuggingFace(r.HuggingFaceDir!);
        foreach (var text in Texts)
        {
            var ids = fromGguf.Encode(text, addSpecial: false);
            Assert.Equal(text, fromGguf.Decode(ids, removeLeadingSpace: arch == FixtureArch.Llama));
            Assert.Equal(ids, fromHf.Encode(text, addSpecial: false));
        }
        var story = fromGguf.Encode(Texts[0], addSpecial: false);
        if (vocab >= 512) Assert.True(story.Length < Texts[0].Length / 2, $"{story.Length} tokens for {Texts[0].Length} characters: merges unused?");
    }
}
