using EdgeQuant.Models;
using EdgeQuant.Models.Engine;
using EdgeQuant.Runtimes.OnnxRuntime;

namespace EdgeQuant.Export.Tests.Onnx;

/// <summary>
/// Drift of a candidate's logits from a reference's, per scored position, in double: KLD(reference ‖ candidate) with
/// its standard error, the NLL of the next token under both (perplexities) and top-1 agreement.
/// </summary>
internal sealed class DriftStats
{
    private double _kld, _kld2, _nll, _nllRef;
    private int _same;

    public int Count { get; private set; }

    public double MeanKld => _kld / Count;

    /// <summary>Standard error of <see cref="MeanKld"/>.</summary>
    public double KldError => Math.Sqrt(Math.Max(0, _kld2 / Count - MeanKld * MeanKld) / (Count - 1));

    public double Perplexity => Math.Exp(_nll / Count);

    public double ReferencePerplexity => Math.Exp(_nllRef / Count);

    public double Top1 => (double)_same / Count;

    /// <summary>One position: its reference and candidate logit rows and the token that follows it.</summary>
    public void Add(ReadOnlySpan<float> referenceRow, ReadOnlySpan<float> candidateRow, int target)
    {
        var p = LogSoftmax(referenceRow);
        var q = LogSoftmax(candidateRow);
        double k = 0;
        for (int v = 0; v < p.Length; v++) k += Math.Exp(p[v]) * (p[v] - q[v]);
        _kld += k;
        _kld2 += k * k;
        _nll -= q[target];
        _nllRef -= p[target];
        if (ArgMax(p) == ArgMax(q)) _same++;
        Count++;
    }

    /// <summary>All-position logits of one chunk; the second half is scored, as llama-perplexity scores.</summary>
    public void AddSecondHalf(float[] reference, float[] candidate, int[] tokens, int vocab)
    {
        int n = tokens.Length;
        for (int i = n / 2; i < n - 1; i++) Add(reference.AsSpan(i * vocab, vocab), candidate.AsSpan(i * vocab, vocab), tokens[i + 1]);
    }

    /// <summary>Logit rows of the given positions only (row i is position positions[i]).</summary>
    public void AddRows(float[] reference, float[] candidate, int[] tokens, int[] positions, int vocab)
    {
        for (int i = 0; i < positions.Length; i++) Add(reference.AsSpan(i * vocab, vocab), candidate.AsSpan(i * vocab, vocab), tokens[positions[i] + 1]);
    }

    private static double[] LogSoftmax(ReadOnlySpan<float> x)
    {
        double max = double.NegativeInfinity;
        foreach (float v in x) max = Math.Max(max, v);
        double sum = 0;
        foreach (float v in x) sum += Math.Exp(v - max);
        double lse = max + Math.Log(sum);
        var r = new double[x.Length];
        for (int i = 0; i < x.Length; i++) r[i] = x[i] - lse;
        return r;
    }

    private static int ArgMax(double[] x)
    {
        int best = 0;
        for (int i = 1; i < x.Length; i++) if (x[i] > x[best]) best = i;
        return best;
    }
}

/// <summary>All-position logits of one sequence from the engine (optionally with a fake-quant hook) and from ORT, one thread each.</summary>
internal static class QuantLogits
{
    public static readonly OrtSessionSettings OneThread = new() { IntraOpThreads = 1, InterOpThreads = 1 };

    public static float[] Engine(Model model, ILinearInputHook? hook, int[] tokens)
    {
        var engine = ReferenceEngine.Load(model, new EngineOptions { Threads = 1 });
        using var h = hook is null ? null : engine.AddHook(hook);
        return engine.CreateSession(tokens.Length).DecodeAll(tokens);
    }

    public static float[] Ort(string modelPath, int[] tokens)
    {
        using var runner = OrtLogitsRunner.Open(modelPath, new OrtLogitsRunnerOptions { Session = OneThread });
        var logits = new float[tokens.Length * runner.VocabSize];
        runner.Evaluate(tokens, 0, Enumerable.Range(0, tokens.Length).ToArray(), logits);
        return logits;
    }
}
