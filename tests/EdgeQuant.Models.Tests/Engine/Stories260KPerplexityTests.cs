using EdgeQuant.Models.Engine;
using EdgeQuant.Runtimes.Evaluation;
using EdgeQuant.Testing;

namespace EdgeQuant.Models.Tests.Engine;

public partial class Stories260KTests
{
    private const string Corpus = "corpus/tinystories-sample.txt";

    /// <summary>
    /// llama-perplexity's protocol at n_ctx 256 gives 6.0482 ± 0.0707 over 49,911 scored tokens with llama.cpp
    /// (REFERENCE.md); the issue asks for agreement within 0.1% relative, from each of the three encodings. The GGUF
    /// and llama2.c files go through <see cref="EngineLogitsRunner.OpenForText"/> (what <c>eval --runtime engine</c>
    /// uses, with each file's own tokenizer); the HF copy is tokenized with the GGUF's vocabulary (see Load).
    /// </summary>
    [SharedDataTheory(Gguf, Llama2c, Corpus)]
    [MemberData(nameof(Formats))]
    public void Perplexity_at_ctx_256_matches_llama_cpp(string format)
    {
        var text = Perplexity.PrepareText(File.ReadAllText(SharedData.Require(Corpus)));
        EngineLogitsRunner runner;
        int[] tokens;
        int? bos;
        using var temp = new TempDir("eq-engine");
        if (format == "hf")
        {
            var (model, tokenizer) = Load(format, temp);
            using var _ = model;
            tokens = tokenizer.Encode(text, addSpecial: true);
            bos = tokenizer.AddBos ? tokenizer.BosId : null;
            runner = new EngineLogitsRunner(ReferenceEngine.Load(model, new EngineOptions { Threads = 2 }), 256);
        }
        else
        {
            (runner, tokens, bos) = EngineLogitsRunner.OpenForText(SharedData.Require(format == "gguf" ? Gguf : Llama2c), text, 256, threads: 2);
        }
        using var __ = runner;
        Assert.Equal(100_707, tokens.Length);
        Assert.Equal(1, bos);

        var result = Perplexity.Evaluate(runner, tokens, bos, new PerplexityOptions(256));
        Assert.Equal(49_911, result.ScoredTokens);
        Assert.Equal(393, result.Chunks);
        double rel = Math.Abs(result.Perplexity / 6.0482 - 1);
        Assert.True(rel <= 1e-3, $"{format}: PPL {result.Perplexity:F4} differs from llama.cpp's 6.0482 by {rel:P3}");
    }
}
