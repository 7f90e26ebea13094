using EdgeQuant.Runtimes.LlamaCpp;
using EdgeQuant.Runtimes.LlamaCpp.Native;
using EdgeQuant.Testing;
using EdgeQuant.Verification.Latency;
using EdgeQuant.Verification.Reports;
using EdgeQuant.Verification.Tests.Latency;

namespace EdgeQuant.Verification.Tests.Reports;

/// <summary>
/// A report made from real runs, for the renderer tests: stories260K quantized to Q4_0 by llama.cpp's own
/// <c>llama_model_quantize</c>, both models run by llama.cpp (1 thread) over the first chunks of the TinyStories
/// sample under llama-perplexity's protocol, the drift figures computed here from the raw logits (written out in
/// this file, not with the code under test), the latency section from <see cref="LatencyProbe"/>, and gates set so
/// that two pass and two fail.
/// </summary>
public sealed class RealReportFixture : IDisposable
{
    public const string Stories = "models/stories260K/stories260K.gguf";
    public const string Text = "corpus/tinystories-sample.txt";
    public const int Ctx = 128;
    public const int Chunks = 8;

    private readonly TempDir _dir = new("eq-vlat-report");
    private readonly Dictionary<LlamaFileType, VerificationReport> _reports = [];
    private readonly Lock _gate = new();

    /// <summary>The Q4_0 candidate's report (made once per fixture).</summary>
    public VerificationReport Report => ReportFor(LlamaFileType.MostlyQ4_0);

    public string Directory => _dir.Path;

    /// <summary>The report of stories260K quantized to <paramref name="type"/>, made once per fixture.</summary>
    public VerificationReport ReportFor(LlamaFileType type)
    {
        lock (_gate)
        {
            if (!_reports.TryGetValue(type, out var r)) _reports[type] = r = Build(type);
            return r;
        }
    }

    /// <summary>A fresh report for <paramref name="type"/> (quantized, scored and probed again): a rerun.</summary>
    public VerificationReport Rerun(LlamaFileType type)
    {
        lock (_gate) return Build(type);
    }

    public void Dispose() => _dir.Dispose();

    private VerificationReport Build(LlamaFileType type)
    {
        LatencyTestRuntimes.Configure();
        var basePath = SharedData.Require(Stories);
        var candidate = _dir.File($"stories260K-{type}.gguf");
        LlamaQuantizer.Quantize(basePath, candidate, type, threads: 1);

        using var baseRunner = LlamaCppRunner.Open(basePath, new LlamaContextOptions { ContextSize = Ctx, Threads = 1 });
        using var candRunner = LlamaCppRunner.Open(candidate, new LlamaContextOptions { ContextSize = Ctx, Threads = 1 });
        var text = File.ReadAllText(SharedData.Require(Text));
        if (text.EndsWith('\n')) text = text[..^1];
        var tokens = baseRunner.Tokenize(text);
        int vocab = baseRunner.VocabSize;
        int first = Ctx / 2, scored = Ctx / 2 - 1;
        var outputs = Enumerable.Range(first, scored).ToArray();
        var lb = new float[scored * vocab];
        var lc = new float[scored * vocab];
        var kld = new List<double>();
        var nllBase = new List<double>();
        var nllCand = new List<double>();
        var sameTop = new List<double>();
        var dp = new List<double>();
        var chunkKld = new List<double>();
        for (int c = 0; c < Chunks; c++)
        {
            var chunk = tokens.AsSpan(c * Ctx, Ctx).ToArray();
            chunk[0] = baseRunner.Model.Bos;
            baseRunner.Reset();
            candRunner.Reset();
            baseRunner.Evaluate(chunk, 0, outputs, lb);
            candRunner.Evaluate(chunk, 0, outputs, lc);
            double sum = 0;
            for (int i = 0; i < scored; i++)
            {
                var pb = LogSoftmax(lb.AsSpan(i * vocab, vocab));
                var pc = LogSoftmax(lc.AsSpan(i * vocab, vocab));
                double k = 0;
                for (int v = 0; v < vocab; v++) k += Math.Exp(pb[v]) * (pb[v] - pc[v]);
                int target = chunk[first + i + 1];
                kld.Add(k);
                sum += k;
                nllBase.Add(-pb[target]);
                nllCand.Add(-pc[target]);
                sameTop.Add(ArgMax(pb) == ArgMax(pc) ? 1 : 0);
                dp.Add(Math.Exp(pc[target]) - Math.Exp(pb[target]));
            }
            chunkKld.Add(sum / scored);
        }

        double pplBase = Math.Exp(nllBase.Average()), pplCand = Math.Exp(nllCand.Average());
        var lnRatio = nllCand.Zip(nllBase, (a, b) => a - b).ToList();
        var sortedKld = kld.Order().ToArray();
        double Q(double p) => sortedKld[(int)Math.Min(sortedKld.Length - 1, Math.Round(p * (sortedKld.Length - 1)))];
        var accuracy = new AccuracyReport
        {
            NScored = kld.Count, NChunks = Chunks, NCtx = Ctx,
            PplBase = pplBase, PplBaseUnc = pplBase * Se(nllBase),
            PplCand = pplCand, PplCandUnc = pplCand * Se(nllCand),
            LnPplRatio = lnRatio.Average(), LnPplRatioUnc = Se(lnRatio),
            KldMean = kld.Average(), KldMeanUnc = Se(kld), KldMax = sortedKld[^1],
            KldP99_9 = Q(0.999), KldP99 = Q(0.99), KldP95 = Q(0.95), KldP90 = Q(0.90), KldMedian = Q(0.5), KldMin = sortedKld[0],
            SameTopP = sameTop.Average(), SameTopPUnc = Se(sameTop),
            DeltaPMean = dp.Average(), DeltaPMeanUnc = Se(dp),
            DeltaPRms = Math.Sqrt(dp.Average(x => x * x)), DeltaPRmsUnc = Se(dp.Select(x => x * x).ToList()),
            ChunkKld = chunkKld,
            EvalSeconds = 0.5,
        };

        var latency = LatencyProbe.Measure(candidate, RuntimeKind.LlamaCpp,
            new LatencyOptions { ContextSize = Ctx, DecodeTokens = 64, Threads = 1, PrefillRuns = 2 });
        var l = latency.ToReport();
        var gates = new List<GateResult>
        {
            Gate("max-kld", "kld_mean", "<=", 0.01, accuracy.KldMean, ReportUnits.Nats),
            Gate("min-top1", "same_top_p", ">=", 0.5, accuracy.SameTopP, ReportUnits.Fraction),
            Gate("min-decode-tps", "decode_tps", ">=", 1, l.DecodeTps, ReportUnits.TokensPerSecond),
            Gate("max-p95-ms", "token_ms_p95", "<=", 1e-6, l.TokenMsP95, ReportUnits.Milliseconds),
        };
        return new VerificationReport
        {
            Candidate = new CandidateInfo(candidate, "gguf", "llamacpp", latency.RuntimeName, latency.ModelFileBytes, latency.Threads),
            Reference = new ReferenceInfo(_dir.File("stories260K.eqref"), basePath, new string('0', 64), new string('1', 64), "full", null, Ctx, Chunks,
                vocab, 1000, 1000.0 / kld.Count),
            Accuracy = accuracy,
            Latency = l,
            Gates = gates,
            Environment = EnvironmentInfo.Capture(),
        };
    }

    private static GateResult Gate(string name, string metric, string op, double threshold, double? actual, string unit) =>
        new(name, metric, op, threshold, actual, unit, actual is { } a && (op == "<=" ? a <= threshold : a >= threshold));

    private static double Se(IReadOnlyCollection<double> x)
    {
        double m = x.Average();
        return Math.Sqrt(x.Sum(v => (v - m) * (v - m)) / (x.Count - 1) / x.Count);
    }

    private static double[] LogSoftmax(ReadOnlySpan<float> logits)
    {
        double max = double.NegativeInfinity;
        foreach (var v in logits) max = Math.Max(max, v);
        double sum = 0;
        foreach (var v in logits) sum += Math.Exp(v - max);
        double lse = max + Math.Log(sum);
        var r = new double[logits.Length];
        for (int i = 0; i < r.Length; i++) r[i] = logits[i] - lse;
        return r;
    }

    private static int ArgMax(double[] x)
    {
        int b = 0;
        for (int i = 1; i < x.Length; i++) if (x[i] > x[b]) b = i;
        return b;
    }
}
