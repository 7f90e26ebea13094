using EdgeQuant.Core.Errors;
using EdgeQuant.Runtimes.Evaluation;

namespace EdgeQuant.Runtimes.Tests.Evaluation;

/// <summary>
/// The protocol itself, on a fake runner whose logits are a known bigram table: every figure can then be computed
/// by hand. No native runtime is needed.
/// </summary>
public sealed class PerplexityTests
{
    private const int Vocab = 7;

    /// <summary>A bigram "model": the logits after token t are row t of a fixed table; records what it is fed.</summary>
    private sealed class BigramRunner(double[,] logits, int contextLength = 64) : ILogitsRunner
    {
        private int _cached;
        public List<int[]> Chunks { get; } = [];
        public int Resets { get; private set; }
        public string Name => "bigram";
        public int VocabSize => Vocab;
        public int ContextLength => contextLength;
        public TimeSpan LastRunTime => TimeSpan.FromMilliseconds(1);

        public void Evaluate(ReadOnlySpan<int> tokens, int startPos, ReadOnlySpan<int> outputPositions, Span<float> output)
        {
            LogitsRunnerGuards.CheckEvaluate(this, _cached, tokens, startPos, outputPositions, output);
            Chunks.Add(tokens.ToArray());
            _cached += tokens.Length;
            for (int i = 0; i < outputPositions.Length; i++)
                for (int v = 0; v < Vocab; v++) output[i * Vocab + v] = (float)logits[tokens[outputPositions[i]], v];
        }

        public void Reset()
        {
            _cached = 0;
            Resets++;
        }

        public void Dispose() { }
    }

    private static double[,] Table(int seed)
    {
        var rng = new Random(seed);
        var t = new double[Vocab, Vocab];
        for (int a = 0; a < Vocab; a++)
            for (int b = 0; b < Vocab; b++) t[a, b] = rng.NextDouble() * 4 - 2;
        return t;
    }

    private static int[] Text(int length, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, length).Select(_ => rng.Next(1, Vocab)).ToArray();
    }

    /// <summary>The protocol spelled out as plainly as possible: which (context token, target) pairs are scored.</summary>
    private static (double Ppl, double Unc, int Count) Reference(double[,] table, int[] tokens, int n, int? bos, int? maxChunks = null)
    {
        int chunks = Math.Min(tokens.Length / n, maxChunks ?? int.MaxValue);
        var nlls = new List<double>();
        for (int c = 0; c < chunks; c++)
        {
            var chunk = tokens.Skip(c * n).Take(n).ToArray();
            if (bos is { } b) chunk[0] = b;
            for (int i = n / 2; i <= n - 2; i++)
            {
                // A bigram only looks at the token itself, so position i's logits are row chunk[i].
                double max = Enumerable.Range(0, Vocab).Max(v => (double)(float)table[chunk[i], v]);
                double lse = max + Math.Log(Enumerable.Range(0, Vocab).Sum(v => Math.Exp((float)table[chunk[i], v] - max)));
                nlls.Add(lse - (float)table[chunk[i], tokens[c * n + i + 1]]);
            }
        }
        double mean = nlls.Average();
        double sd = Math.Sqrt(nlls.Sum(x => (x - mean) * (x - mean)) / nlls.Count);
        return (Math.Exp(mean), Math.Exp(mean) * sd / Math.Sqrt(nlls.Count - 1), nlls.Count);
    }

    [Theory]
    [InlineData(16, null)]
    [InlineData(16, 0)]
    [InlineData(10, 0)]
    [InlineData(9, null)]
    public void Matches_the_protocol_spelled_out(int n, int? bos)
    {
        var table = Table(1);
        var tokens = Text(n * 5 + 3, 2);
        using var runner = new BigramRunner(table);
        var r = Perplexity.Evaluate(runner, tokens, bos, new PerplexityOptions(n));
        var (ppl, unc, count) = Reference(table, tokens, n, bos);
        Assert.Equal(5, r.Chunks);
        Assert.Equal(count, r.ScoredTokens);
        Assert.Equal(5 * (n - 1 - n / 2), r.ScoredTokens);
        // The reference sums exp in double, Perplexity in float as llama-perplexity does: 1e-6 covers that.
        Assert.Equal(ppl, r.Perplexity, 1e-6);
        Assert.Equal(unc, r.Uncertainty, 1e-6);
        Assert.Equal(5L * n, r.DecodedTokens);
        Assert.Equal(tokens.Length, r.TextTokens);

        // Each chunk starts from an empty cache, and only BOS-adding vocabularies get their first token replaced.
        Assert.Equal(5, runner.Resets);
        for (int c = 0; c < 5; c++)
        {
            var expected = tokens.Skip(c * n).Take(n).ToArray();
            if (bos is { } b) expected[0] = b;
            Assert.Equal(expected, runner.Chunks[c]);
        }
    }

    [Fact]
    public void Uniform_logits_give_the_vocabulary_size_and_no_uncertainty()
    {
        using var runner = new BigramRunner(new double[Vocab, Vocab]);
        var r = Perplexity.Evaluate(runner, Text(40, 3), 0, new PerplexityOptions(8));
        Assert.Equal(Vocab, r.Perplexity, 1e-6);
        // Zero variance up to rounding: llama-perplexity prints no ± when E[x²] − E[x]² is not positive.
        Assert.True(double.IsNaN(r.Uncertainty) || r.Uncertainty < 1e-6, $"± {r.Uncertainty}");
    }

    [Fact]
    public void Max_chunks_progress_and_cancellation()
    {
        var table = Table(4);
        var tokens = Text(100, 5);
        using var runner = new BigramRunner(table);
        var reports = new List<PerplexityProgress>();
        var r = Perplexity.Evaluate(runner, tokens, 0, new PerplexityOptions(10, MaxChunks: 3), new Inline(reports.Add));
        Assert.Equal(3, r.Chunks);
        Assert.Equal(Reference(table, tokens, 10, 0, 3).Ppl, r.Perplexity, 1e-6);
        Assert.Equal([1, 2, 3], reports.Select(p => p.ChunksDone));
        Assert.All(reports, p => Assert.Equal(3, p.ChunkCount));
        Assert.Equal(r.Perplexity, reports[^1].Perplexity, 1e-12);

        using var cts = new CancellationTokenSource();
        Assert.ThrowsAny<OperationCanceledException>(() =>
            Perplexity.Evaluate(runner, tokens, 0, new PerplexityOptions(10), new Inline(_ => cts.Cancel()), cts.Token));
    }

    [Fact]
    public void Refuses_what_llama_perplexity_refuses()
    {
        using var runner = new BigramRunner(Table(6), contextLength: 32);
        var tokens = Text(63, 7);
        Assert.Throws<BadInputException>(() => Perplexity.Evaluate(runner, tokens, 0, new PerplexityOptions(32))); // < 2N tokens
        Assert.Throws<BadInputException>(() => Perplexity.Evaluate(runner, tokens, 0, new PerplexityOptions(3)));
        Assert.Throws<BadInputException>(() => Perplexity.Evaluate(runner, Text(200, 7), 0, new PerplexityOptions(64))); // > runner context
        Assert.Throws<BadInputException>(() => Perplexity.Evaluate(runner, tokens, 0, new PerplexityOptions(8, MaxChunks: 0)));
        Assert.Throws<BadInputException>(() => Perplexity.Evaluate(runner, tokens, Vocab, new PerplexityOptions(8)));
        var bad = Text(40, 8);
        bad[20] = Vocab + 3;
        Assert.Throws<BadInputException>(() => Perplexity.Evaluate(runner, bad, 0, new PerplexityOptions(8)));
    }

    [Theory]
    [InlineData("abc\n", "abc")]
    [InlineData("abc\n\n", "abc\n")]
    [InlineData("abc", "abc")]
    [InlineData("abc\r\n", "abc\r")]
    [InlineData("", "")]
    public void Drops_exactly_one_trailing_newline(string text, string expected) =>
        Assert.Equal(expected, Perplexity.PrepareText(text));

    [Fact]
    public void Nll_is_logsumexp_minus_the_target_logit()
    {
        float[] logits = [1f, 2f, 3f];
        double lse = Math.Log(Math.Exp(1) + Math.Exp(2) + Math.Exp(3));
        Assert.Equal(lse - 2, Perplexity.NegativeLogLikelihood(logits, 1), 1e-6);
        // Large logits must not overflow: the max is subtracted first.
        Assert.Equal(lse - 3, Perplexity.NegativeLogLikelihood([1001f, 1002f, 1003f], 2), 1e-4);
    }

    private sealed class Inline(Action<PerplexityProgress> report) : IProgress<PerplexityProgress>
    {
        public void Report(PerplexityProgress value) => report(value);
    }
}
