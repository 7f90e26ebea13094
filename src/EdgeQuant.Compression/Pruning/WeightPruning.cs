using EdgeQuant.Core.Errors;

namespace EdgeQuant.Compression.Pruning;

/// <summary>SparseGPT's numerical knobs (the paper's defaults).</summary>
public sealed record SparseGptOptions
{
    /// <summary>Columns swept between lazy batch updates (rounded up to a multiple of an N:M pattern's M).</summary>
    public int BlockSize { get; init; } = 128;

    /// <summary>λ: H += λ · mean(diag H) · I before inversion, so that a rank-deficient XᵀX is invertible.</summary>
    public double Damping { get; init; } = 0.01;

    public int Threads { get; init; } = Environment.ProcessorCount;
}

/// <summary>
/// Pruning of one linear weight W [out, in] (row-major, one row per output). Every method zeroes exactly the count
/// <see cref="SparsityRule"/> gives (ties in the score go to the lower index), or with an N:M pattern exactly M − N
/// weights in every group of M consecutive inputs of every row; each returns the number of weights it zeroed.
/// </summary>
public static class WeightPruning
{
    /// <summary>Refuses a pattern whose M does not divide the row (groups would straddle rows).</summary>
    public static void CheckPattern(NmPattern pattern, int columns, string tensor)
    {
        if (columns % pattern.M != 0)
            throw new BadInputException($"{tensor}: --pattern {pattern}: M = {pattern.M} does not divide the row length {columns}");
    }

    /// <summary>Magnitude pruning within the tensor: the |W| smallest overall (or per N:M group).</summary>
    public static long Magnitude(Span<float> w, int rows, int cols, double sparsity, NmPattern? pattern = null, string tensor = "weight")
    {
        Check(w, rows, cols, sparsity, pattern, tensor);
        var score = new double[w.Length];
        for (int i = 0; i < w.Length; i++) score[i] = Math.Abs(w[i]);
        var mask = new bool[w.Length];
        if (pattern is { } p) MarkPattern(score, rows, cols, p, mask);
        else MarkSmallest(score, SparsityRule.PrunedUpTo(sparsity, w.Length), mask);
        return Apply(w, mask);
    }

    /// <summary>
    /// Wanda: score |W_ij| · ‖X_j‖₂, compared within each output row (row r prunes its <see cref="SparsityRule"/> share),
    /// or within each N:M group. No weight update.
    /// </summary>
    public static long Wanda(Span<float> w, int rows, int cols, ReadOnlySpan<double> columnNorms, double sparsity, NmPattern? pattern = null,
        string tensor = "weight")
    {
        Check(w, rows, cols, sparsity, pattern, tensor);
        if (columnNorms.Length != cols)
            throw new InternalFailureException($"{tensor}: {columnNorms.Length} activation norms for {cols} input columns");
        var score = new double[w.Length];
        for (int r = 0; r < rows; r++)
            for (int j = 0; j < cols; j++) score[(long)r * cols + j] = Math.Abs(w[r * cols + j]) * columnNorms[j];
        var mask = new bool[w.Length];
        if (pattern is { } p) MarkPattern(score, rows, cols, p, mask);
        else
        {
            for (int r = 0; r < rows; r++)
            {
                int k = SparsityRule.PrunedIn(sparsity, (long)r * cols, (long)(r + 1) * cols);
                MarkSmallest(score.AsSpan(r * cols, cols), k, mask.AsSpan(r * cols, cols));
            }
        }
        return Apply(w, mask);
    }

    /// <summary>
    /// SparseGPT (Frantar &amp; Alistarh 2023, Algorithm 1). H = 2XᵀX / tokens + λ·mean(diag)·I; U = the upper Cholesky
    /// factor of H⁻¹. Columns are swept in blocks: at the start of a block the unstructured mask takes the block's
    /// <see cref="SparsityRule"/> share of the lowest w² / U_jj² over all its rows (an N:M mask is chosen per group
    /// when the sweep reaches it); each column's pruning error (w − q) / U_ii is spread over the block's later columns by
    /// the OBS update and, after the block, over all later columns at once (the lazy batch update).
    /// </summary>
    /// <param name="gram">XᵀX [cols, cols], symmetric.</param>
    /// <param name="tokens">Rows of X summed into <paramref name="gram"/>.</param>
    public static long SparseGpt(Span<float> w, int rows, int cols, ReadOnlySpan<double> gram, long tokens, double sparsity, NmPattern? pattern = null,
        SparseGptOptions? options = null, string tensor = "weight")
    {
        Check(w, rows, cols, sparsity, pattern, tensor);
        options ??= new SparseGptOptions();
        if (gram.Length != (long)cols * cols) throw new InternalFailureException($"{tensor}: Hessian has {gram.Length} entries for {cols} columns");
        if (tokens < 1) throw new InternalFailureException($"{tensor}: no calibration tokens behind the Hessian");
        if (options.BlockSize < 1) throw new BadInputException($"SparseGPT block size {options.BlockSize} must be positive");
        if (!(options.Damping > 0)) throw new BadInputException($"SparseGPT damping {options.Damping} must be positive");
        var u = InverseHessianFactor(gram, cols, tokens, options.Damping, tensor);

        int block = options.BlockSize;
        if (pattern is { } pp) block = (block + pp.M - 1) / pp.M * pp.M;
        var wd = new double[w.Length];
        for (int i = 0; i < w.Length; i++) wd[i] = w[i];
        var mask = new bool[w.Length];
        var par = new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, options.Threads) };
        for (int i1 = 0; i1 < cols; i1 += block)
        {
            int i2 = Math.Min(cols, i1 + block), count = i2 - i1;
            if (pattern is null)
            {
                // The block's unit in the counting rule: all rows × [i1, i2), taken after the earlier columns' updates.
                var score = new double[(long)rows * count];
                for (int r = 0; r < rows; r++)
                    for (int j = 0; j < count; j++)
                    {
                        double d = u[(long)(i1 + j) * cols + i1 + j], x = wd[(long)r * cols + i1 + j];
                        score[(long)r * count + j] = x * x / (d * d);
                    }
                var blockMask = new bool[score.Length];
                MarkSmallest(score, SparsityRule.PrunedIn(sparsity, (long)rows * i1, (long)rows * i2), blockMask);
                for (int r = 0; r < rows; r++)
                    for (int j = 0; j < count; j++) mask[(long)r * cols + i1 + j] = blockMask[(long)r * count + j];
            }
            Parallel.For(0, rows, par, r =>
            {
                var row = wd.AsSpan(r * cols, cols);
                var rowMask = mask.AsSpan(r * cols, cols);
                var err = new double[count];
                var g = pattern is { } pm ? new double[pm.M] : [];
                for (int i = i1; i < i2; i++)
                {
                    if (pattern is { } p && (i - i1) % p.M == 0)
                    {
                        for (int t = 0; t < p.M; t++)
                        {
                            double d = u[(long)(i + t) * cols + i + t];
                            g[t] = row[i + t] * row[i + t] / (d * d);
                        }
                        MarkGroup(g, p.Pruned, rowMask.Slice(i, p.M));
                    }
                    double wi = row[i], q = rowMask[i] ? 0 : wi;
                    double e = (wi - q) / u[(long)i * cols + i];
                    row[i] = q;
                    err[i - i1] = e;
                    if (e == 0) continue;
                    var ui = u.AsSpan(i * cols, cols);
                    for (int j = i + 1; j < i2; j++) row[j] -= e * ui[j];
                }
                // Lazy batch update of the columns after the block: W[:, i2:] -= Err · U[i1:i2, i2:].
                for (int i = i1; i < i2; i++)
                {
                    double e = err[i - i1];
                    if (e == 0) continue;
                    var ui = u.AsSpan(i * cols, cols);
                    for (int j = i2; j < cols; j++) row[j] -= e * ui[j];
                }
            });
        }
        for (int i = 0; i < w.Length; i++) w[i] = mask[i] ? 0f : (float)wd[i];
        long pruned = 0;
        foreach (bool m in mask) if (m) pruned++;
        return pruned;
    }

    /// <summary>
    /// Upper-triangular U with UᵀU = H⁻¹ for H = 2·gram/tokens with dead inputs (zero diagonal) set to 1 and λ·mean(diag)
    /// added to the diagonal. Dead inputs' weights are left as they are (zeroing them, as the reference code does, would
    /// add zeros beyond the requested sparsity; they never influence the output).
    /// </summary>
    internal static double[] InverseHessianFactor(ReadOnlySpan<double> gram, int n, long tokens, double damping, string tensor)
    {
        var h = new double[(long)n * n];
        double scale = 2.0 / tokens;
        for (long i = 0; i < h.Length; i++) h[i] = gram[(int)i] * scale;
        double mean = 0;
        for (int i = 0; i < n; i++)
        {
            ref double d = ref h[(long)i * n + i];
            if (d == 0) d = 1;
            mean += d;
        }
        mean /= n;
        for (int attempt = 0; ; attempt++)
        {
            var a = (double[])h.Clone();
            double damp = damping * mean * Math.Pow(10, attempt);
            for (int i = 0; i < n; i++) a[(long)i * n + i] += damp;
            if (CholeskyLower(a, n) && Invert(a, n, tensor) is { } inv && CholeskyLower(inv, n))
            {
                // inv holds L with L Lᵀ = H⁻¹; U = Lᵀ.
                var u = new double[(long)n * n];
                for (int i = 0; i < n; i++)
                    for (int j = 0; j <= i; j++) u[(long)j * n + i] = inv[(long)i * n + j];
                return u;
            }
            // The reference implementation gives up here; more damping keeps the sweep stable on degenerate statistics.
            if (attempt == 4) throw new BadInputException($"{tensor}: the calibration Hessian is not positive definite even with damping {damp:G3}");
        }
    }

    /// <summary>In-place lower Cholesky factor (upper triangle cleared); false when not positive definite.</summary>
    internal static bool CholeskyLower(double[] a, int n)
    {
        for (int j = 0; j < n; j++)
        {
            var rj = a.AsSpan(j * n, j);
            double d = a[(long)j * n + j];
            for (int k = 0; k < j; k++) d -= rj[k] * rj[k];
            if (!(d > 0)) return false;
            d = Math.Sqrt(d);
            a[(long)j * n + j] = d;
            for (int i = j + 1; i < n; i++)
            {
                var ri = a.AsSpan(i * n, j);
                double s = a[(long)i * n + j];
                for (int k = 0; k < j; k++) s -= ri[k] * rj[k];
                a[(long)i * n + j] = s / d;
            }
        }
        for (int i = 0; i < n; i++)
            for (int j = i + 1; j < n; j++) a[(long)i * n + j] = 0;
        return true;
    }

    /// <summary>H⁻¹ = L⁻ᵀL⁻¹ from the lower factor L (full symmetric result), or null when not finite.</summary>
    private static double[]? Invert(double[] l, int n, string tensor)
    {
        // M = L⁻¹, lower triangular, by forward substitution column by column.
        var m = new double[(long)n * n];
        for (int c = 0; c < n; c++)
        {
            m[(long)c * n + c] = 1 / l[(long)c * n + c];
            for (int i = c + 1; i < n; i++)
            {
                double s = 0;
                for (int k = c; k < i; k++) s += l[(long)i * n + k] * m[(long)k * n + c];
                m[(long)i * n + c] = -s / l[(long)i * n + i];
            }
        }
        var inv = new double[(long)n * n];
        for (int i = 0; i < n; i++)
            for (int j = 0; j <= i; j++)
            {
                // (MᵀM)_ij = Σ_{k ≥ max(i,j)} M_ki M_kj
                double s = 0;
                for (int k = i; k < n; k++) s += m[(long)k * n + i] * m[(long)k * n + j];
                if (!double.IsFinite(s)) return null;
                inv[(long)i * n + j] = s;
                inv[(long)j * n + i] = s;
            }
        return inv;
    }

    /// <summary>Zeros in a tensor.</summary>
    public static long CountZeros(ReadOnlySpan<float> w)
    {
        long z = 0;
        foreach (float v in w) if (v == 0) z++;
        return z;
    }

    /// <summary>True when every group of M consecutive weights of every row holds at least M − N zeros.</summary>
    public static bool SatisfiesPattern(ReadOnlySpan<float> w, int rows, int cols, NmPattern pattern)
    {
        if (cols % pattern.M != 0) return false;
        for (int r = 0; r < rows; r++)
            for (int g = 0; g < cols; g += pattern.M)
            {
                int zeros = 0;
                foreach (float v in w.Slice(r * cols + g, pattern.M)) if (v == 0) zeros++;
                if (zeros < pattern.Pruned) return false;
            }
        return true;
    }

    private static void Check(ReadOnlySpan<float> w, int rows, int cols, double sparsity, NmPattern? pattern, string tensor)
    {
        if (rows < 1 || cols < 1 || (long)rows * cols != w.Length)
            throw new InternalFailureException($"{tensor}: {w.Length} weights are not [{rows}, {cols}]");
        if (pattern is { } p) CheckPattern(p, cols, tensor);
        else SparsityRule.Check(sparsity);
        for (int i = 0; i < w.Length; i++)
            if (!float.IsFinite(w[i]))
                throw new BadInputException($"{tensor}: weight [{i / cols}, {i % cols}] is {w[i]}; pruning needs finite weights");
    }

    /// <summary>Marks the <paramref name="k"/> lowest scores (equal scores: lower index first).</summary>
    internal static void MarkSmallest(ReadOnlySpan<double> score, long k, Span<bool> mask)
    {
        if (k <= 0) return;
        if (k >= score.Length)
        {
            mask.Fill(true);
            return;
        }
        var sorted = score.ToArray();
        Array.Sort(sorted);
        double t = sorted[k - 1];
        long marked = 0;
        for (int i = 0; i < score.Length; i++)
            if (score[i] < t) { mask[i] = true; marked++; }
        for (int i = 0; i < score.Length && marked < k; i++)
            if (score[i] == t) { mask[i] = true; marked++; }
    }

    /// <summary>In every group of M of every row, the M − N lowest scores.</summary>
    private static void MarkPattern(ReadOnlySpan<double> score, int rows, int cols, NmPattern p, Span<bool> mask)
    {
        for (long g = 0; g < (long)rows * cols; g += p.M)
            MarkGroup(score.Slice((int)g, p.M), p.Pruned, mask.Slice((int)g, p.M));
    }

    /// <summary>Marks the <paramref name="k"/> lowest of a small group by repeated minimum (lower index wins ties).</summary>
    private static void MarkGroup(ReadOnlySpan<double> g, int k, Span<bool> mask)
    {
        for (int n = 0; n < k; n++)
        {
            int best = -1;
            for (int i = 0; i < g.Length; i++)
                if (!mask[i] && (best < 0 || g[i] < g[best])) best = i;
            mask[best] = true;
        }
    }

    private static long Apply(Span<float> w, ReadOnlySpan<bool> mask)
    {
        long n = 0;
        for (int i = 0; i < w.Length; i++)
            if (mask[i]) { w[i] = 0; n++; }
        return n;
    }
}
