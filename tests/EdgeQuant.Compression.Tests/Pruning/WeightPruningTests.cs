using EdgeQuant.Compression.Pruning;
using EdgeQuant.Core.Errors;
using Xunit.Abstractions;

namespace EdgeQuant.Compression.Tests.Pruning;

/// <summary>The three methods on single matrices: exact zero counts, N:M groups, what each keeps, bad input.</summary>
public class WeightPruningTests(ITestOutputHelper output)
{
    private static float[] Random(int n, int seed, double scale = 1)
    {
        var rng = new Random(seed);
        var w = new float[n];
        for (int i = 0; i < n; i++) w[i] = (float)(Gaussian(rng) * scale);
        return w;
    }

    private static double Gaussian(Random rng) => Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());

    /// <summary>X [tokens, cols] with correlated columns (a random mixing of fewer latent factors plus noise).</summary>
    internal static double[] CorrelatedInputs(int tokens, int cols, int seed)
    {
        var rng = new Random(seed);
        int latent = Math.Max(2, cols / 3);
        var mix = new double[latent * cols];
        for (int i = 0; i < mix.Length; i++) mix[i] = Gaussian(rng);
        var colScale = new double[cols];
        for (int j = 0; j < cols; j++) colScale[j] = Math.Exp(Gaussian(rng)); // outlier-ish features, as in LLM activations
        var x = new double[tokens * cols];
        var z = new double[latent];
        for (int t = 0; t < tokens; t++)
        {
            for (int l = 0; l < latent; l++) z[l] = Gaussian(rng);
            for (int j = 0; j < cols; j++)
            {
                double s = 0.1 * Gaussian(rng);
                for (int l = 0; l < latent; l++) s += z[l] * mix[l * cols + j];
                x[t * cols + j] = s * colScale[j];
            }
        }
        return x;
    }

    internal static (double[] Gram, double[] Norms) Statistics(double[] x, int tokens, int cols)
    {
        var g = new double[cols * cols];
        var norms = new double[cols];
        for (int t = 0; t < tokens; t++)
            for (int i = 0; i < cols; i++)
                for (int j = 0; j < cols; j++) g[i * cols + j] += x[t * cols + i] * x[t * cols + j];
        for (int j = 0; j < cols; j++) norms[j] = Math.Sqrt(g[j * cols + j]);
        return (g, norms);
    }

    /// <summary>‖W Xᵀ − W' Xᵀ‖_F, straight from the inputs.</summary>
    internal static double ReconstructionError(float[] w, float[] pruned, double[] x, int rows, int cols, int tokens)
    {
        double sum = 0;
        for (int r = 0; r < rows; r++)
            for (int t = 0; t < tokens; t++)
            {
                double d = 0;
                for (int j = 0; j < cols; j++) d += ((double)w[r * cols + j] - pruned[r * cols + j]) * x[t * cols + j];
                sum += d * d;
            }
        return Math.Sqrt(sum);
    }

    private static float[] Run(string method, float[] w, int rows, int cols, double[] gram, double[] norms, int tokens, double s, NmPattern? p)
    {
        var c = (float[])w.Clone();
        long n = method switch
        {
            "magnitude" => WeightPruning.Magnitude(c, rows, cols, s, p),
            "wanda" => WeightPruning.Wanda(c, rows, cols, norms, s, p),
            _ => WeightPruning.SparseGpt(c, rows, cols, gram, tokens, s, p, new SparseGptOptions { BlockSize = 16, Threads = 2 }),
        };
        long expected = p is { } pp ? (long)rows * cols / pp.M * pp.Pruned : (long)Math.Round(s * rows * cols, MidpointRounding.AwayFromZero);
        Assert.Equal(expected, n);
        Assert.Equal(expected, WeightPruning.CountZeros(c));
        return c;
    }

    [Theory]
    [InlineData("magnitude")]
    [InlineData("wanda")]
    [InlineData("sparsegpt")]
    public void Unstructured_sparsity_is_exact_for_awkward_shapes(string method)
    {
        foreach (var (rows, cols) in new[] { (7, 13), (16, 48), (5, 37), (1, 3) })
        {
            int tokens = 64;
            var x = CorrelatedInputs(tokens, cols, seed: rows * 100 + cols);
            var (gram, norms) = Statistics(x, tokens, cols);
            var w = Random(rows * cols, seed: rows + cols);
            foreach (double s in new[] { 0.0, 0.1, 0.25, 0.5, 0.3333, 0.7, 0.99 })
            {
                var p = Run(method, w, rows, cols, gram, norms, tokens, s, null);
                if (method == "wanda")
                {
                    // Per row: row r holds round(s·(r+1)·cols) − round(s·r·cols) zeros.
                    for (int r = 0; r < rows; r++)
                    {
                        long k = (long)Math.Round(s * (r + 1) * cols, MidpointRounding.AwayFromZero) - (long)Math.Round(s * r * cols, MidpointRounding.AwayFromZero);
                        Assert.Equal(k, WeightPruning.CountZeros(p.AsSpan(r * cols, cols)));
                    }
                }
            }
        }
    }

    [Theory]
    [InlineData("magnitude", 2, 4)]
    [InlineData("wanda", 2, 4)]
    [InlineData("sparsegpt", 2, 4)]
    [InlineData("magnitude", 4, 8)]
    [InlineData("wanda", 4, 8)]
    [InlineData("sparsegpt", 4, 8)]
    [InlineData("sparsegpt", 1, 4)]
    public void Nm_pattern_holds_in_every_group(string method, int n, int m)
    {
        int rows = 12, cols = 40, tokens = 80;
        var x = CorrelatedInputs(tokens, cols, 3);
        var (gram, norms) = Statistics(x, tokens, cols);
        var w = Random(rows * cols, 4);
        var p = Run(method, w, rows, cols, gram, norms, tokens, 0, new NmPattern(n, m));
        // Independent block-by-block check: exactly M − N zeros in each group of M along every row.
        for (int r = 0; r < rows; r++)
            for (int g = 0; g < cols; g += m)
                Assert.Equal(m - n, p.AsSpan(r * cols + g, m).ToArray().Count(v => v == 0));
        Assert.True(WeightPruning.SatisfiesPattern(p, rows, cols, new NmPattern(n, m)));
        if (method != "sparsegpt")
        {
            // Without weight updates the kept weights are the originals.
            for (int i = 0; i < w.Length; i++) Assert.True(p[i] == 0 || p[i] == w[i]);
        }
    }

    [Fact]
    public void Magnitude_and_wanda_remove_the_lowest_scores()
    {
        int rows = 9, cols = 31, tokens = 50;
        var x = CorrelatedInputs(tokens, cols, 11);
        var (gram, norms) = Statistics(x, tokens, cols);
        var w = Random(rows * cols, 12);
        var mag = Run("magnitude", w, rows, cols, gram, norms, tokens, 0.4, null);
        double maxPruned = 0, minKept = double.MaxValue;
        for (int i = 0; i < w.Length; i++)
            if (mag[i] == 0) maxPruned = Math.Max(maxPruned, Math.Abs(w[i]));
            else minKept = Math.Min(minKept, Math.Abs(w[i]));
        Assert.True(maxPruned <= minKept);

        var wanda = Run("wanda", w, rows, cols, gram, norms, tokens, 0.4, null);
        for (int r = 0; r < rows; r++)
        {
            double pruned = 0, kept = double.MaxValue;
            for (int j = 0; j < cols; j++)
            {
                double score = Math.Abs(w[r * cols + j]) * norms[j];
                if (wanda[r * cols + j] == 0) pruned = Math.Max(pruned, score);
                else kept = Math.Min(kept, score);
            }
            Assert.True(pruned <= kept, $"row {r}: pruned score {pruned} above kept {kept}");
        }
    }

    [Fact]
    public void Ties_prune_the_lower_index_first()
    {
        var w = new float[] { 1, 1, 1, 1, 2, 2 };
        WeightPruning.Magnitude(w, 1, 6, 0.5);
        Assert.Equal(new float[] { 0, 0, 0, 1, 2, 2 }, w);
    }

    /// <summary>
    /// A synthetic layer whose best answer is computable: for SparseGPT's own mask, the least-squares optimum of the
    /// kept weights (W'_keep = W H_{:,k} H_kk⁻¹ per row) is the lowest error any method with that mask can reach.
    /// SparseGPT must land near it and below Wanda and magnitude on the same calibration data.
    /// </summary>
    [Theory]
    [InlineData(0.5, 0, 0)]
    [InlineData(0.7, 0, 0)]
    [InlineData(0, 2, 4)]
    public void SparseGpt_reconstructs_better_than_wanda_and_magnitude(double s, int n, int m)
    {
        int rows = 24, cols = 64, tokens = 512;
        NmPattern? p = n == 0 ? null : new NmPattern(n, m);
        var x = CorrelatedInputs(tokens, cols, 21);
        var (gram, norms) = Statistics(x, tokens, cols);
        var w = Random(rows * cols, 22);
        double Err(float[] q) => ReconstructionError(w, q, x, rows, cols, tokens);
        double mag = Err(Run("magnitude", w, rows, cols, gram, norms, tokens, s, p));
        double wanda = Err(Run("wanda", w, rows, cols, gram, norms, tokens, s, p));
        var sgpt = Run("sparsegpt", w, rows, cols, gram, norms, tokens, s, p);
        double sparse = Err(sgpt);
        double optimum = Err(OptimalForMask(w, sgpt, gram, rows, cols));
        output.WriteLine($"s={s} pattern={p}: ||WX - W'X|| magnitude {mag:F3}, wanda {wanda:F3}, sparsegpt {sparse:F3} (optimum for its mask {optimum:F3}); dense ||WX|| {Err(new float[w.Length]):F3}");
        Assert.True(sparse < wanda, $"SparseGPT {sparse} not below Wanda {wanda}");
        Assert.True(sparse < mag, $"SparseGPT {sparse} not below magnitude {mag}");
        Assert.True(optimum <= sparse * (1 + 1e-6), $"optimum {optimum} above SparseGPT {sparse}: the reference is wrong");
    }

    /// <summary>
    /// The exact case of the OBS sweep: when every pruned weight comes before every kept one in column order (one block,
    /// the first half of the columns far smaller than the rest), each removal's update reaches all the kept weights, so
    /// with negligible damping SparseGPT must reach the least-squares optimum for its mask.
    /// </summary>
    [Fact]
    public void SparseGpt_matches_the_least_squares_optimum_when_pruned_columns_come_first()
    {
        int rows = 10, cols = 32, tokens = 256;
        var x = CorrelatedInputs(tokens, cols, 31);
        var (gram, _) = Statistics(x, tokens, cols);
        var w = Random(rows * cols, 32);
        for (int r = 0; r < rows; r++)
            for (int j = 0; j < cols / 2; j++) w[r * cols + j] *= 1e-4f;
        var c = (float[])w.Clone();
        WeightPruning.SparseGpt(c, rows, cols, gram, tokens, 0.5, null, new SparseGptOptions { BlockSize = cols, Damping = 1e-9, Threads = 1 });
        for (int r = 0; r < rows; r++)
            for (int j = 0; j < cols; j++) Assert.Equal(j < cols / 2, c[r * cols + j] == 0);
        double sparse = ReconstructionError(w, c, x, rows, cols, tokens);
        double optimum = ReconstructionError(w, OptimalForMask(w, c, gram, rows, cols), x, rows, cols, tokens);
        output.WriteLine($"pruned-first layer: SparseGPT {sparse:G6}, least-squares optimum {optimum:G6}");
        Assert.True(Math.Abs(sparse - optimum) <= 1e-3 * optimum, $"SparseGPT {sparse} vs optimum {optimum}");
    }

    /// <summary>Per row, the kept weights minimizing ‖(w − w')X‖ with the pruned ones held at zero (normal equations, double).</summary>
    private static float[] OptimalForMask(float[] w, float[] masked, double[] gram, int rows, int cols)
    {
        var result = new float[w.Length];
        for (int r = 0; r < rows; r++)
        {
            var keep = Enumerable.Range(0, cols).Where(j => masked[r * cols + j] != 0).ToArray();
            int k = keep.Length;
            var a = new double[k, k + 1];
            for (int i = 0; i < k; i++)
            {
                for (int j = 0; j < k; j++) a[i, j] = gram[keep[i] * cols + keep[j]];
                double rhs = 0;
                for (int j = 0; j < cols; j++) rhs += gram[keep[i] * cols + j] * w[r * cols + j];
                a[i, k] = rhs;
            }
            // Gaussian elimination with partial pivoting.
            for (int c = 0; c < k; c++)
            {
                int piv = c;
                for (int i = c + 1; i < k; i++) if (Math.Abs(a[i, c]) > Math.Abs(a[piv, c])) piv = i;
                for (int j = 0; j <= k; j++) (a[c, j], a[piv, j]) = (a[piv, j], a[c, j]);
                for (int i = c + 1; i < k; i++)
                {
                    double f = a[i, c] / a[c, c];
                    for (int j = c; j <= k; j++) a[i, j] -= f * a[c, j];
                }
            }
            var sol = new double[k];
            for (int i = k - 1; i >= 0; i--)
            {
                double s = a[i, k];
                for (int j = i + 1; j < k; j++) s -= a[i, j] * sol[j];
                sol[i] = s / a[i, i];
            }
            for (int i = 0; i < k; i++) result[r * cols + keep[i]] = (float)sol[i];
        }
        return result;
    }

    [Fact]
    public void SparseGpt_at_zero_sparsity_keeps_the_weights()
    {
        int rows = 6, cols = 20, tokens = 40;
        var x = CorrelatedInputs(tokens, cols, 5);
        var (gram, _) = Statistics(x, tokens, cols);
        var w = Random(rows * cols, 6);
        var c = (float[])w.Clone();
        Assert.Equal(0, WeightPruning.SparseGpt(c, rows, cols, gram, tokens, 0));
        Assert.Equal(w, c);
    }

    [Fact]
    public void Bad_input_is_refused()
    {
        var w = Random(4 * 12, 1);
        foreach (double s in new[] { 1.0, -0.1, double.NaN, 1.5 })
            Assert.Throws<BadInputException>(() => WeightPruning.Magnitude((float[])w.Clone(), 4, 12, s));
        var e = Assert.Throws<BadInputException>(() => WeightPruning.Magnitude((float[])w.Clone(), 4, 12, 0, new NmPattern(4, 8), "blk.0.ffn_down.weight"));
        Assert.Contains("blk.0.ffn_down.weight", e.Message);
        Assert.Contains("does not divide", e.Message);
        foreach (var text in new[] { "2", "4:2", "0:4", "2:4:8", "a:b", "2:1", "-1:4" })
            Assert.Throws<BadInputException>(() => NmPattern.Parse(text));
        Assert.Equal(new NmPattern(2, 4), NmPattern.Parse("2:4"));
        var nan = (float[])w.Clone();
        nan[5] = float.NaN;
        Assert.Throws<BadInputException>(() => WeightPruning.Magnitude(nan, 4, 12, 0.5));
    }

    [Fact]
    public void Global_magnitude_uses_one_threshold()
    {
        var a = new float[] { 0.1f, 5, 0.2f, 6 };
        var b = new float[] { 1, 2, 3, 4, 0.05f, 7 };
        var counts = ModelPruner.GlobalMagnitude([a, b], 0.5);
        Assert.Equal(new long[] { 2, 3 }, counts);
        Assert.Equal(new float[] { 0, 5, 0, 6 }, a);
        Assert.Equal(new float[] { 0, 0, 3, 4, 0, 7 }, b);
    }
}
