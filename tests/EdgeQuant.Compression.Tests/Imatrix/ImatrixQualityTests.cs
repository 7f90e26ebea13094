using EdgeQuant.Compression.GgufQuant;
using EdgeQuant.Compression.Imatrix;
using EdgeQuant.Compression.Tests.GgufQuant;
using EdgeQuant.Export;
using EdgeQuant.Formats.Gguf;
using EdgeQuant.Models;
using EdgeQuant.Models.Tokenizers;
using EdgeQuant.Runtimes.LlamaCpp;
using EdgeQuant.Runtimes.LlamaCpp.Native;
using EdgeQuant.Testing;
using Xunit.Abstractions;

namespace EdgeQuant.Compression.Tests.Imatrix;

/// <summary>
/// What an importance matrix is for: the real llama.cpp quantizer (llama_model_quantize), given our matrix as
/// llama-quantize would normalize it, must make a stories260K closer to its F32 self on text it was not calibrated on.
/// `edgequant quantize` (GgufQuantizer) with the same matrix must write the same tensors, so the figures are its too.
/// stories260K's rows are 64 long, so Q4_K_M falls back to 32-blocks (Q5_0/Q8_0); Q4_0 and Q4_1 quantize as asked.
/// </summary>
public sealed class ImatrixQualityTests(ITestOutputHelper output)
{
    private const string Stories = "models/stories260K/stories260K.gguf";
    private const string Text = "corpus/tinystories-sample.txt";

    [LlamaCppTheory(Stories, Text)]
    [InlineData(LlamaFileType.MostlyQ4_0)]
    [InlineData(LlamaFileType.MostlyQ4_1)]
    [InlineData(LlamaFileType.MostlyQ4_K_M)]
    public void Llama_cpp_quantization_with_our_imatrix_has_lower_kld_to_f32_on_held_out_text(LlamaFileType type)
    {
        const int ctx = 128, evalChunks = 40;
        var path = SharedData.Require(Stories);
        var all = File.ReadAllText(SharedData.Require(Text));
        // Calibrate on the first 30 KB, measure on text from the second half of the file.
        var calibration = all[..30_000];
        var held = all[(all.Length / 2)..];
        ImportanceMatrix imatrix;
        int[] evalTokens;
        using (var model = ModelLoader.Load(path))
        {
            var tok = Tokenizer.FromModel(model);
            imatrix = ImatrixRunner.Collect(model, tok.Encode(calibration, addSpecial: true, parseSpecial: false),
                new ImatrixRunOptions { Context = ctx, Threads = 1, ComputePerplexity = false }, null, CancellationToken.None);
            evalTokens = tok.Encode(held, addSpecial: true, parseSpecial: false);
        }
        var importance = imatrix.TensorNames.ToDictionary(n => n, n => imatrix.ImportanceFor(n)!);

        using var dir = new TempDir();
        var plain = dir.File("plain.gguf");
        var weighted = dir.File("imatrix.gguf");
        LlamaQuantizer.Quantize(path, plain, type, new LlamaQuantizeOptions { Threads = 1 });
        LlamaQuantizer.Quantize(path, weighted, type, new LlamaQuantizeOptions { Threads = 1, Imatrix = importance });
        Assert.NotEqual(File.ReadAllBytes(plain), File.ReadAllBytes(weighted));
        var ours = dir.File("edgequant-imatrix.gguf");
        using (var model = ModelLoader.Load(path))
            GgufQuantizer.Quantize(model, ours, new GgufQuantizeOptions { FileType = QuantFileTypes.FromLlamaFtype((int)type)!, Imatrix = imatrix, Threads = 1 });
        using (var a = GgufReader.Read(ours))
        using (var b = GgufReader.Read(weighted))
        {
            Assert.Equal(b.Tensors.Select(t => (t.Name, t.Type)), a.Tensors.Select(t => (t.Name, t.Type)));
            foreach (var t in b.Tensors) Assert.True(a.TensorData(t.Name).SequenceEqual(b.TensorData(t)), $"{type}: {t.Name} differs from llama.cpp's");
        }

        var reference = Logits(path, evalTokens, ctx, evalChunks);
        var kldPlain = Klds(reference, Logits(plain, evalTokens, ctx, evalChunks), ctx / 2 - 1);
        var kldWeighted = Klds(reference, Logits(weighted, evalTokens, ctx, evalChunks), ctx / 2 - 1);
        // Paired per position: the improvement and its standard error (positions treated as independent samples).
        var diff = kldPlain.Zip(kldWeighted, (a, b) => a - b).ToArray();
        double mean = diff.Average();
        double se = Math.Sqrt(diff.Sum(d => (d - mean) * (d - mean)) / (diff.Length - 1) / diff.Length);
        output.WriteLine($"stories260K {type}, {evalChunks} held-out chunks of {ctx} ({diff.Length} positions): mean KLD to F32 " +
            $"plain {kldPlain.Average():F6}, with imatrix {kldWeighted.Average():F6}, improvement {mean:F6} ± {se:F6}");
        Assert.True(mean > 2 * se, $"imatrix KLD {kldWeighted.Average():F6} is not clearly below plain {kldPlain.Average():F6} ({mean:F6} ± {se:F6})");
    }

    /// <summary>Logits of positions ctx/2 … ctx−2 of each chunk (llama-perplexity's scored half), chunk after chunk.</summary>
    private static List<float[]> Logits(string model, int[] tokens, int ctx, int chunks)
    {
        using var m = LlamaModel.Load(model);
        using var runner = new LlamaCppRunner(m, LlamaContextOptions.FullPrecision(ctx, threads: 1));
        var rows = Enumerable.Range(ctx / 2, ctx / 2 - 1).ToArray();
        var result = new List<float[]>();
        for (int c = 0; c < chunks; c++)
        {
            var chunk = tokens.AsSpan(c * ctx, ctx).ToArray();
            chunk[0] = m.Bos;
            runner.Reset();
            var logits = new float[rows.Length * runner.VocabSize];
            runner.Evaluate(chunk, 0, rows, logits);
            result.Add(logits);
        }
        return result;
    }

    /// <summary>KL(F32 ‖ candidate) per scored position, in double.</summary>
    private static List<double> Klds(List<float[]> reference, List<float[]> candidate, int rowsPerChunk)
    {
        var result = new List<double>();
        for (int c = 0; c < reference.Count; c++)
        {
            int vocab = reference[c].Length / rowsPerChunk;
            for (int r = 0; r < reference[c].Length / vocab; r++)
            {
                var p = LogSoftmax(reference[c].AsSpan(r * vocab, vocab));
                var q = LogSoftmax(candidate[c].AsSpan(r * vocab, vocab));
                double kld = 0;
                for (int i = 0; i < vocab; i++) kld += Math.Exp(p[i]) * (p[i] - q[i]);
                result.Add(kld);
            }
        }
        return result;
    }

    private static double[] LogSoftmax(ReadOnlySpan<float> x)
    {
        double max = double.NegativeInfinity;
        foreach (float v in x) max = Math.Max(max, v);
        double s = 0;
        foreach (float v in x) s += Math.Exp(v - max);
        double lse = max + Math.Log(s);
        var r = new double[x.Length];
        for (int i = 0; i < x.Length; i++) r[i] = x[i] - lse;
        return r;
    }
}
