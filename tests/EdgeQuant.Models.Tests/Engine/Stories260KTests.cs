using EdgeQuant.Models.Engine;
using EdgeQuant.Models.Tokenizers;
using EdgeQuant.Testing;

namespace EdgeQuant.Models.Tests.Engine;

/// <summary>
/// The engine on Karpathy's stories260K, in its three encodings (GGUF, the llama2.c twin, and an HF folder the
/// project writes from the GGUF), against figures measured with the real llama.cpp (../shared/data/REFERENCE.md).
/// </summary>
public partial class Stories260KTests
{
    private const string Gguf = "models/stories260K/stories260K.gguf";
    private const string Llama2c = "models/stories260K/stories260K.bin";
    private const string Reference = "REFERENCE.md";

    public static TheoryData<string> Formats => new() { "gguf", "llama2c", "hf" };

    /// <summary>
    /// Loads the model in the asked format with the tokenizer it carries (tok512.bin for llama2.c). The HF copy is
    /// written into <paramref name="temp"/> first, weights only, and tokenized with the GGUF's own vocabulary.
    /// </summary>
    private static (Model Model, Tokenizer Tokenizer) Load(string format, TempDir temp)
    {
        switch (format)
        {
            case "gguf":
            case "llama2c":
                var m = ModelLoader.Load(SharedData.Require(format == "gguf" ? Gguf : Llama2c));
                return (m, Tokenizer.FromData(m.Tokenizer!));
            default:
                Tokenizer tokenizer;
                using (var gguf = ModelLoader.Load(SharedData.Require(Gguf)))
                {
                    EdgeQuant.Export.HfExporter.Export(gguf, Path.Combine(temp.Path, "hf"));
                    tokenizer = Tokenizer.FromData(gguf.Tokenizer!);
                }
                var hf = ModelLoader.Load(Path.Combine(temp.Path, "hf"));
                Assert.Equal(ModelFormat.HuggingFace, hf.Provenance.Format);
                return (hf, tokenizer);
        }
    }

    /// <summary>The 105 ids (prompt + 100 greedy tokens) listed under "Token ids:" in REFERENCE.md.</summary>
    private static int[] ReferenceGreedyTokens()
    {
        var line = File.ReadLines(SharedData.Require(Reference)).Single(l => l.StartsWith("Token ids:", StringComparison.Ordinal));
        return line["Token ids:".Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToArray();
    }

    [SharedDataTheory(Gguf, Llama2c, Reference)]
    [MemberData(nameof(Formats))]
    public void Greedy_generation_reproduces_llama_cpp(string format)
    {
        using var temp = new TempDir("eq-engine");
        var (model, tokenizer) = Load(format, temp);
        using var _ = model;
        var expected = ReferenceGreedyTokens();
        Assert.Equal(105, expected.Length);

        var prompt = tokenizer.Encode("Once upon a time");
        Assert.Equal(expected[..5], prompt);

        var engine = ReferenceEngine.Load(model, new EngineOptions { Threads = 2 });
        var session = engine.CreateSession(256);
        var result = TextGeneration.Generate(session, prompt, 100, new TokenSampler(new SamplingOptions()));
        Assert.Equal(expected[5..], result.Tokens);
        Assert.Equal(StopReason.Length, result.StopReason);
        Assert.StartsWith("Once upon a time, there was a little girl named Lily.", tokenizer.Decode(expected));
    }

    [SharedDataFact(Gguf)]
    public void Incremental_logits_equal_full_sequence_logits_on_a_real_model()
    {
        using var model = ModelLoader.Load(SharedData.Require(Gguf));
        var engine = ReferenceEngine.Load(model, new EngineOptions { Threads = 2 });
        var tokens = ReferenceGreedyTokensOrDefault();
        var full = engine.CreateSession(128).DecodeAll(tokens);
        var session = engine.CreateSession(128);
        var step = new float[full.Length];
        for (int i = 0; i < tokens.Length; i++) session.DecodeLast([tokens[i]]).CopyTo(step, i * engine.VocabSize);
        double err = TestModels.RelativeL2(step, full);
        Assert.True(err <= 1e-5, $"relative L2 {err:E2}");
    }

    private static int[] ReferenceGreedyTokensOrDefault() =>
        File.Exists(SharedData.PathOf(Reference)) ? ReferenceGreedyTokens()[..64] : TestModels.RandomTokens(64, 512, 1);
}
