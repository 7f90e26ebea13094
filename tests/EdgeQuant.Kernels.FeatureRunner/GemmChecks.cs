using EdgeQuant.Core.Kernels;

namespace EdgeQuant.Kernels.FeatureRunner;

public static unsafe partial class KernelChecks
{
    /// <summary>The odd sizes of the issue: empty, one, below/above each vector width and tile, and a Kc/Mc crossing.</summary>
    private static readonly int[] OddSizes = [0, 1, 7, 33, 255];

    /// <summary>Every micro-kernel family this process can run (the wider ones only where the ISA is enabled).</summary>
    internal static IEnumerable<GemmKernelKind> Kinds() => Enum.GetValues<GemmKernelKind>().Where(GemmKernel.IsSupported);

    /// <summary>
    /// The reference product in double, with Σ|a||b| per element: the worst-case error of any float summation
    /// order (blocked, FMA or not) is γ_K·Σ|a||b| with γ_K = K·u/(1−K·u) (Higham, Accuracy and Stability, §3.1).
    /// A wrong index, a dropped or doubled panel, changes an element by ~|a||b|, far above that bound.
    /// </summary>
    public static (double[] C, double[] Bound) GemmRef(float[] a, int lda, float[] b, bool bTransposed, int ldb, int m, int n, int k, float[]? c0, int ldc)
    {
        var c = new double[m * n];
        var bound = new double[m * n];
        double u = Math.Pow(2, -24), gamma = (k + 2) * u / (1 - (k + 2) * u);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double s = 0, abs = 0;
                for (int p = 0; p < k; p++)
                {
                    double bv = bTransposed ? b[j * ldb + p] : b[p * ldb + j];
                    double prod = a[i * lda + p] * bv;
                    s += prod;
                    abs += Math.Abs(prod);
                }
                if (c0 is not null) { s += c0[i * ldc + j]; abs += Math.Abs(c0[i * ldc + j]); }
                c[i * n + j] = s;
                bound[i * n + j] = gamma * abs + 1e-30;
            }
        return (c, bound);
    }

    public static void CompareGemm(string what, (double[] C, double[] Bound) expected, float[] c, int m, int n, int ldc)
    {
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double e = expected.C[i * n + j], bound = expected.Bound[i * n + j];
                float got = c[i * ldc + j];
                bool ok = double.IsNaN(e) ? float.IsNaN(got)
                    : double.IsInfinity(e) ? e == got
                    : !float.IsNaN(got) && !float.IsInfinity(got) && Math.Abs(got - e) <= bound;
                if (!ok) throw new KernelCheckException($"{what}: C[{i},{j}] = {got:R}, expected {e:R} ± {bound:G3}");
            }
    }

    /// <summary>Every (M, N, K) in the odd sizes, through all three entry points, each kernel family, 1 and 2 threads.</summary>
    public static void GemmShapes()
    {
        foreach (GemmKernelKind kind in Kinds())
            foreach (int m in OddSizes)
                foreach (int n in OddSizes)
                    foreach (int k in OddSizes)
                    {
                        int seed = m * 65536 + n * 256 + k;
                        int threads = 1 + seed % 2;
                        bool accumulate = seed % 3 == 0;
                        GemmCase(kind, m, n, k, threads, accumulate, $"{kind} {m}x{n}x{k} thr={threads} acc={accumulate}");
                    }
    }

    /// <summary>
    /// Sizes that cross K blocks (Kc is 768 on AVX-512, 512 below; K is cut into equal blocks), M blocks (at most
    /// 560 / 384 rows, fewer when Kc is large) and several column panels.
    /// </summary>
    public static void GemmBlocks()
    {
        foreach (GemmKernelKind kind in Kinds())
            foreach (var (m, n, k) in new[] { (350, 70, 600), (29, 131, 513), (300, 33, 257), (600, 37, 1700), (520, 20, 768) })
                foreach (bool accumulate in new[] { false, true })
                    GemmCase(kind, m, n, k, 2, accumulate, $"{kind} {m}x{n}x{k} acc={accumulate}");
    }

    private static void GemmCase(GemmKernelKind kind, int m, int n, int k, int threads, bool accumulate, string what)
    {
        int seed = m * 7919 + n * 31 + k;
        float[] a = RandomArray(seed, m * k, -1, 1);
        float[] bt = RandomArray(seed + 1, n * k, -1, 1);          // [n x k], the weights layout
        float[] bkn = new float[k * n];                            // the same matrix as [k x n]
        for (int j = 0; j < n; j++) for (int p = 0; p < k; p++) bkn[p * n + j] = bt[j * k + p];
        float[] c0 = RandomArray(seed + 2, m * n, -1, 1);
        var expected = GemmRef(a, k, bt, true, k, m, n, k, accumulate ? c0 : null, n);

        // Without accumulate the initial C must not be read: start it as NaN so any read shows.
        float[] Start() => accumulate ? c0.ToArray() : Enumerable.Repeat(float.NaN, m * n).ToArray();

        float[] c = Start();
        Sgemm.MultiplyTransposedB(a, k, bt, k, c, n, m, n, k, accumulate, threads, kind);
        CompareGemm(what + " A·Bᵀ", expected, c, m, n, n);

        c = Start();
        Sgemm.Multiply(a, bkn, c, m, n, k, accumulate, threads, kind);
        CompareGemm(what + " A·B", expected, c, m, n, n);

        c = Start();
        PackedMatrix packed = PackedMatrix.FromWeights(bt, n, k, threads, kind);
        Sgemm.Multiply(a, m, packed, c, accumulate, threads);
        CompareGemm(what + " packed", expected, c, m, n, n);
    }

    /// <summary>Packing from a row callback (the F16/BF16 route) gives the same products as packing F32 rows.</summary>
    public static void GemmFromRows()
    {
        foreach (var (m, n, k) in new[] { (1, 1, 1), (9, 70, 300), (40, 33, 800), (3, 0, 5) })
        {
            float[] a = RandomArray(m + 1, m * k, -1, 1);
            // Rows as F16 bytes, converted by the callback, the way a loader would feed a GGUF F16 tensor.
            Half[] wh = RandomArray(n + 2, n * k, -1, 1).Select(v => (Half)v).ToArray();
            float[] w = wh.Select(h => (float)h).ToArray();
            PackedMatrix packed = PackedMatrix.FromRows(n, k, (row, dst) =>
            {
                for (int p = 0; p < k; p++) dst[p] = (float)wh[row * k + p];
            });
            float[] c = new float[m * n];
            Sgemm.Multiply(a, m, packed, c);
            CompareGemm($"from rows {m}x{n}x{k}", GemmRef(a, k, w, true, k, m, n, k, null, n), c, m, n, n);
        }
    }

    /// <summary>NaN and ±Inf in A or B reach exactly the outputs IEEE arithmetic says they reach.</summary>
    public static void GemmSpecialValues()
    {
        foreach (GemmKernelKind kind in Kinds())
        {
            const int m = 20, n = 40, k = 300;
            float[] a = RandomArray(1, m * k, -1, 1), bt = RandomArray(2, n * k, -1, 1);
            a[3 * k + 5] = float.NaN;            // row 3 of C: all NaN
            a[7 * k + 260] = float.PositiveInfinity; // row 7: ±Inf by the sign of B, in the second K block
            bt[11 * k + 0] = float.NegativeInfinity; // column 11: ±Inf, NaN where row 7 meets it with opposite signs
            var expected = GemmRef(a, k, bt, true, k, m, n, k, null, n);
            float[] c = new float[m * n];
            Sgemm.MultiplyTransposedB(a, k, bt, k, c, n, m, n, k, false, 2, kind);
            CompareGemm($"{kind} special values", expected, c, m, n, n);
            c = new float[m * n];
            Sgemm.Multiply(a, m, PackedMatrix.FromWeights(bt, n, k, 1, kind), c, false, 1);
            CompareGemm($"{kind} special values packed", expected, c, m, n, n);
        }
    }

    /// <summary>Row strides on A, B and C (a head's slice of Q, K and the scores), untouched padding in C.</summary>
    public static void GemmStrided()
    {
        foreach (GemmKernelKind kind in Kinds())
        {
            const int m = 37, n = 45, k = 64, lda = 200, ldb = 130, ldc = 61;
            float[] a = RandomArray(3, (m - 1) * lda + k, -1, 1), b = RandomArray(4, (n - 1) * ldb + k, -1, 1);
            float[] c = Enumerable.Repeat(Sentinel, (m - 1) * ldc + n).ToArray();
            var expected = GemmRef(a, lda, b, true, ldb, m, n, k, null, n);
            Sgemm.MultiplyTransposedB(a, lda, b, ldb, c, ldc, m, n, k, false, 2, kind);
            CompareGemm($"{kind} strided", expected, c, m, n, ldc);
            for (int i = 0; i < m - 1; i++)
                for (int j = n; j < ldc; j++)
                    if (c[i * ldc + j] != Sentinel) throw new KernelCheckException($"{kind} strided: wrote C padding [{i},{j}]");

            // A·B with B [k x n] at row stride ldb (P·V over one head of a V cache), many rows and a single row.
            foreach (int rows in new[] { m, 1, 3 })
            {
                float[] bkn = RandomArray(5, (k - 1) * ldb + n, -1, 1);
                float[] c2 = Enumerable.Repeat(Sentinel, (rows - 1) * ldc + n).ToArray();
                var expected2 = GemmRef(a, lda, bkn, false, ldb, rows, n, k, null, n);
                Sgemm.Multiply(a, lda, bkn, ldb, c2, ldc, rows, n, k, false, 2, kind);
                CompareGemm($"{kind} strided A·B rows={rows}", expected2, c2, rows, n, ldc);
            }
        }
    }

    /// <summary>GEMV, row-major and packed, 1 and 2 threads, with accumulation, against the same reference.</summary>
    public static void Gemv()
    {
        int[] sizes = [0, 1, 7, 33, 255, 1000];
        foreach (GemmKernelKind kind in Kinds())
            foreach (int n in sizes)
                foreach (int k in sizes)
                    foreach (int threads in new[] { 1, 2 })
                    {
                        bool accumulate = (n + k + threads) % 2 == 0;
                        float[] x = RandomArray(n + k, k, -1, 1), w = RandomArray(n * k + 1, n * k, -1, 1), y0 = RandomArray(n, n, -1, 1);
                        if (n > 3 && k > 3) w[2 * k + 1] = float.NaN;
                        var expected = GemmRef(x, k, w, true, k, 1, n, k, accumulate ? y0 : null, n);
                        string what = $"gemv {kind} n={n} k={k} thr={threads} acc={accumulate}";
                        float[] y = accumulate ? y0.ToArray() : Enumerable.Repeat(float.NaN, n).ToArray();
                        fixed (float* px = x, pw = w, py = y)
                            Core.Kernels.Gemv.MultiplyRows(px, pw, k, py, n, k, accumulate, threads, kind);
                        CompareGemm(what + " rows", expected, y, 1, n, n);
                        y = accumulate ? y0.ToArray() : Enumerable.Repeat(float.NaN, n).ToArray();
                        Core.Kernels.Gemv.Multiply(x, PackedMatrix.FromWeights(w, n, k, 1, kind), y, accumulate, threads);
                        CompareGemm(what + " packed", expected, y, 1, n, n);
                    }
        // The public row-major entry point once (it picks the process's best width itself).
        float[] xs = RandomArray(1, 300, -1, 1), ws = RandomArray(2, 300 * 70, -1, 1), ys = new float[70];
        Core.Kernels.Gemv.Multiply(xs, ws, ys, 70, 300);
        CompareGemm("gemv public", GemmRef(xs, 300, ws, true, 300, 1, 70, 300, null, 70), ys, 1, 70, 70);
    }
}
