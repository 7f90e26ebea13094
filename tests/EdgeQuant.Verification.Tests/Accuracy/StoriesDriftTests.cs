using EdgeQuant.Models.Engine;
using EdgeQuant.Runtimes;
using EdgeQuant.Runtimes.Evaluation;
using EdgeQuant.Runtimes.LlamaCpp;
using EdgeQuant.Runtimes.LlamaCpp.Native;
using EdgeQuant.Testing;
using EdgeQuant.Verification.Accuracy;
using EdgeQuant.Verification.Reference;
using EdgeQuant.Verification.Reports;
using Xunit.Abstractions;

namespace EdgeQuant.Verification.Tests.Accuracy;

/// <summary>
/// stories260K (F32 GGUF) as the reference, its llama.cpp Q8_0 and Q4_0 as candidates, TinyStories, n_ctx 256,
/// 4 chunks (508 scored tokens). The expected figures are computed here, in double, from the raw logits llama.cpp
/// returns for the same chunks: PPL from the candidate's log-softmax at the targets, KL(base‖cand) from both full
/// float distributions (no 16-bit encoding), top-1 agreement from both argmaxes.
/// </summary>
public sealed class StoriesDriftFixture : IDisposable
{
    public const string Model = "models/stories260K/stories260K.gguf";
    public const string Text = "corpus/tinystories-sample.txt";
    public const int Ctx = 256;
    public const int Chunks = 4;

    private readonly TempDir _dir = new("vacc-drift");
    private readonly Lazy<ReferenceFile> _reference;
    private readonly Dictionary<string, string> _candidates = [];
    private readonly Dictionary<string, float[][]> _logits = [];

    public StoriesDriftFixture()
    {
        _reference = new Lazy<ReferenceFile>(BuildReference);
    }

    public string Dir => _dir.Path;
    public ReferenceFile Reference => _reference.Value;

    public static LlamaContextOptions ContextOptions => LlamaContextOptions.FullPrecision(Ctx, threads: 1);

    private ReferenceFile BuildReference()
    {
        var model = SharedData.Require(Model);
        var text = Perplexity.PrepareText(File.ReadAllText(SharedData.Require(Text)));
        using var runner = LlamaCppRunner.Open(model, ContextOptions);
        var tokens = runner.Tokenize(text);
        var path = Path.Combine(Dir, "ref.eqref");
        ReferenceBuilder.Build(runner, tokens, runner.Model.AddsBos ? runner.Model.Bos : null,
            new ReferenceBuildOptions(Ctx, Chunks, null, "stories260K.gguf", ModelHash.Compute(model), ModelHash.OfText(text)), path);
        return ReferenceFile.Open(path);
    }

    /// <summary>
    /// The candidate GGUF as `edgequant quantize` writes it (GgufQuantizer; its bytes equal llama_model_quantize's, which
    /// tests/EdgeQuant.Export.Tests/QuantizeParityTests.cs asserts).
    /// </summary>
    public string Candidate(LlamaFileType type)
    {
        lock (_candidates)
        {
            var key = type.ToString();
            if (!_candidates.TryGetValue(key, out var path))
            {
                path = Path.Combine(Dir, $"stories260K-{key}.gguf");
                using (var source = EdgeQuant.Models.ModelLoader.Load(SharedData.Require(Model)))
                    EdgeQuant.Export.GgufQuantizer.Quantize(source, path, new EdgeQuant.Export.GgufQuantizeOptions
                    {
                        FileType = EdgeQuant.Compression.GgufQuant.QuantFileTypes.FromLlamaFtype((int)type)
                            ?? throw new ArgumentException($"{type} is not a type edgequant quantize writes"),
                        Threads = 1,
                    });
                _candidates[key] = path;
            }
            return path;
        }
    }

    /// <summary>llama.cpp's raw logits of a model at every scored position of the reference's chunks.</summary>
    public float[][] RawLogits(string modelPath)
    {
        lock (_logits)
        {
            if (_logits.TryGetValue(modelPath, out var cached)) return cached;
            using var runner = LlamaCppRunner.Open(modelPath, ContextOptions);
            var rows = Collect(runner, Reference);
            _logits[modelPath] = rows;
            return rows;
        }
    }

    public static float[][] Collect(ILogitsRunner runner, ReferenceFile reference)
    {
        var h = reference.Header;
        var result = new List<float[]>();
        var outputs = Enumerable.Range(h.FirstScored, h.ScoredPerChunk).ToArray();
        var logits = new float[outputs.Length * h.NVocab];
        for (int c = 0; c < h.NChunks; c++)
        {
            var chunk = reference.ChunkTokens(c).ToArray();
            chunk[0] = h.Bos!.Value;
            runner.Reset();
            runner.Evaluate(chunk, 0, outputs, logits);
            for (int k = 0; k < outputs.Length; k++) result.Add(logits.AsSpan(k * h.NVocab, h.NVocab).ToArray());
        }
        return [.. result];
    }

    public void Dispose()
    {
        if (_reference.IsValueCreated) _reference.Value.Dispose();
        _dir.Dispose();
    }
}

public class StoriesDriftTests(StoriesDriftFixture fx, ITestOutputHelper output) : IClassFixture<StoriesDriftFixture>
{
    /// <summary>
    /// Verify reads the base from its 16-bit encoding (≤ 1.2e-4 nats per log-prob, entries below 16 nats dropped):
    /// at Q8_0's KLD of ~9e-4 that moves the mean by well under 1 %, as the brief's tolerance allows.
    /// </summary>
    private const double LlamaCppTolerance = 0.01;

    /// <summary>
    /// The engine runs the dequantized weights in F32, while llama.cpp also rounds activations to 8 bits in its
    /// quantized dot products; the issue allows 2 % for that.
    /// </summary>
    private const double EngineTolerance = 0.02;

    private sealed record Independent(double Ppl, double Kld, double Top1);

    private Independent Expected(string candidate)
    {
        var baseRows = fx.RawLogits(SharedData.Require(StoriesDriftFixture.Model));
        var candRows = fx.RawLogits(candidate);
        var h = fx.Reference.Header;
        double nll = 0, kld = 0;
        int same = 0, n = baseRows.Length;
        for (int r = 0; r < n; r++)
        {
            int c = r / h.ScoredPerChunk, k = r % h.ScoredPerChunk;
            int target = fx.Reference.ChunkTokens(c)[h.FirstScored + k + 1];
            var p = RefTestDataLogSoftmax(baseRows[r]);
            var q = RefTestDataLogSoftmax(candRows[r]);
            nll -= q[target];
            for (int i = 0; i < p.Length; i++) kld += Math.Exp(p[i]) * (p[i] - q[i]);
            if (ArgMax(baseRows[r]) == ArgMax(candRows[r])) same++;
        }
        return new Independent(Math.Exp(nll / n), kld / n, (double)same / n);
    }

    private static double[] RefTestDataLogSoftmax(float[] l) => Reference.RefTestData.LogSoftmax(l);

    private static int ArgMax(float[] l)
    {
        int best = 0;
        for (int i = 1; i < l.Length; i++) if (l[i] > l[best]) best = i;
        return best;
    }

    private void Compare(string label, AccuracyReport actual, Independent expected, double tolerance)
    {
        output.WriteLine($"{label}: PPL {actual.PplCand:F4} (independent {expected.Ppl:F4}), base {actual.PplBase:F4}, " +
            $"KLD {actual.KldMean:F6} ± {actual.KldMeanUnc:F6} (independent {expected.Kld:F6}), top-1 {actual.SameTopP:P2} (independent {expected.Top1:P2}), " +
            $"KLD p99 {actual.KldP99:F5}, Δp RMS {actual.DeltaPRms:P3}, n {actual.NScored}");
        Assert.Equal(StoriesDriftFixture.Chunks * 127, actual.NScored);
        Assert.True(Math.Abs(actual.PplCand / expected.Ppl - 1) <= tolerance, $"{label} PPL {actual.PplCand} vs {expected.Ppl}");
        Assert.True(Math.Abs(actual.KldMean / expected.Kld - 1) <= tolerance, $"{label} KLD {actual.KldMean} vs {expected.Kld}");
        Assert.True(Math.Abs(actual.SameTopP / expected.Top1 - 1) <= tolerance, $"{label} top-1 {actual.SameTopP} vs {expected.Top1}");
    }

    [LlamaCppFact(StoriesDriftFixture.Model, StoriesDriftFixture.Text)]
    public void Q8_0_in_llama_cpp_matches_the_independent_figures_within_1_percent() => LlamaCpp(LlamaFileType.MostlyQ8_0);

    [LlamaCppFact(StoriesDriftFixture.Model, StoriesDriftFixture.Text)]
    public void Q4_0_in_llama_cpp_matches_the_independent_figures_within_1_percent() => LlamaCpp(LlamaFileType.MostlyQ4_0);

    /// <summary>
    /// At Q8_0 the weight error is so small that llama.cpp's own extra rounding dominates the KLD: its Q8_0 dot
    /// product rounds the activations to 8 bits as well (and the F16 fallback tensors round them to F16), which the
    /// engine, multiplying dequantized weights by F32 activations, does not. Measured: engine KLD 0.00037 vs llama.cpp
    /// 0.00077, while PPL and top-1 agree within 0.5 %. So PPL and top-1 are held to 2 %, and the engine's KLD must
    /// lie below llama.cpp's (it lacks one error source) and above a third of it (the weight error is the larger part).
    /// </summary>
    [LlamaCppFact(StoriesDriftFixture.Model, StoriesDriftFixture.Text)]
    public void Q8_0_in_the_engine_matches_llama_cpp_ppl_and_top1_within_2_percent_and_its_kld_lacks_activation_rounding()
    {
        var candidate = fx.Candidate(LlamaFileType.MostlyQ8_0);
        using var runner = EngineLogitsRunner.Open(candidate, StoriesDriftFixture.Ctx, new EngineOptions { Threads = 1 });
        var report = DriftEvaluator.Evaluate(runner, fx.Reference);
        var expected = Expected(candidate);
        Compare("engine MostlyQ8_0", report, expected with { Kld = report.KldMean }, EngineTolerance);
        Assert.InRange(report.KldMean, expected.Kld / 3, expected.Kld);
    }

    /// <summary>
    /// The explanation above, as the product does it: <see cref="ActivationRounding.Ggml"/> rounds the inputs of Q8_0
    /// weights to Q8_0 blocks of 32 with an F16 scale and those of F16 weights to F16, as ggml's vec_dot types do, and the
    /// engine's Q8_0 PPL, KLD and top-1 then match llama.cpp's within the 2 %.
    /// </summary>
    [LlamaCppFact(StoriesDriftFixture.Model, StoriesDriftFixture.Text)]
    public void Q8_0_in_the_engine_with_ggml_activation_rounding_matches_llama_cpp_within_2_percent() =>
        Engine(LlamaFileType.MostlyQ8_0, ActivationRounding.Ggml);

    [LlamaCppFact(StoriesDriftFixture.Model, StoriesDriftFixture.Text)]
    public void Q4_0_in_the_engine_matches_llama_cpp_within_2_percent() => Engine(LlamaFileType.MostlyQ4_0, ActivationRounding.None);

    [LlamaCppFact(StoriesDriftFixture.Model, StoriesDriftFixture.Text)]
    public void Q4_0_in_the_engine_with_ggml_activation_rounding_matches_llama_cpp_within_2_percent() =>
        Engine(LlamaFileType.MostlyQ4_0, ActivationRounding.Ggml);

    /// <summary>
    /// What `verify/eval --runtime engine` open for a GGUF: <see cref="EngineLogitsRunner.OpenForText"/> with the rounding
    /// on names it, and on the F32 reference model it changes nothing (no layer is stored quantized).
    /// </summary>
    [LlamaCppFact(StoriesDriftFixture.Model, StoriesDriftFixture.Text)]
    public void Ggml_activation_rounding_leaves_the_f32_model_bit_identical()
    {
        var model = SharedData.Require(StoriesDriftFixture.Model);
        using var plain = EngineLogitsRunner.Open(model, StoriesDriftFixture.Ctx, new EngineOptions { Threads = 1 });
        using var rounded = EngineLogitsRunner.Open(model, StoriesDriftFixture.Ctx,
            new EngineOptions { Threads = 1, ActivationRounding = ActivationRounding.Ggml });
        Assert.Contains("ggml activation rounding", rounded.Name);
        Assert.Equal(StoriesDriftFixture.Collect(plain, fx.Reference)[..64], StoriesDriftFixture.Collect(rounded, fx.Reference)[..64]);
    }

    private void LlamaCpp(LlamaFileType type)
    {
        var candidate = fx.Candidate(type);
        using var runner = LlamaCppRunner.Open(candidate, StoriesDriftFixture.ContextOptions);
        var report = DriftEvaluator.Evaluate(runner, fx.Reference);
        Compare($"llama.cpp {type}", report, Expected(candidate), LlamaCppTolerance);
        Assert.True(report.KldMean > 0);
        Assert.Equal(StoriesDriftFixture.Chunks, report.ChunkKld.Count);
    }

    private void Engine(LlamaFileType type, ActivationRounding rounding)
    {
        var candidate = fx.Candidate(type);
        using var runner = EngineLogitsRunner.Open(candidate, StoriesDriftFixture.Ctx,
            new EngineOptions { Threads = 1, ActivationRounding = rounding });
        var report = DriftEvaluator.Evaluate(runner, fx.Reference);
        Compare($"engine {type} (activation rounding {rounding})", report, Expected(candidate), EngineTolerance);
    }

    [LlamaCppFact(StoriesDriftFixture.Model, StoriesDriftFixture.Text)]
    public void The_reference_model_against_itself_has_no_drift_and_the_full_file_size_is_as_designed()
    {
        using var runner = LlamaCppRunner.Open(SharedData.Require(StoriesDriftFixture.Model), StoriesDriftFixture.ContextOptions);
        var report = DriftEvaluator.Evaluate(runner, fx.Reference);
        output.WriteLine($"self: KLD {report.KldMean:E3}, top-1 {report.SameTopP:P2}, PPL {report.PplCand:F4} / {report.PplBase:F4}; " +
            $"reference {fx.Reference.FileBytes} bytes, {fx.Reference.BytesPerScoredToken:F1} bytes per scored token");
        Assert.Equal(1.0, report.SameTopP);
        Assert.InRange(report.KldMean, -1e-5, 1e-5);
        Assert.InRange(Math.Abs(report.LnPplRatio), 0, 1e-4);
        // 512-entry vocabulary: 8 + 2·512 bytes per position, plus 4·256/127 bytes of tokens, header and checksum.
        Assert.InRange(fx.Reference.BytesPerScoredToken, 1032 + 8.06, 1032 + 8.06 + 1);
    }
}
