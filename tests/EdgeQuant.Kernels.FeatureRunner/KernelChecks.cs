using EdgeQuant.Core.Kernels;

namespace EdgeQuant.Kernels.FeatureRunner;

/// <summary>A kernel disagreed with its scalar reference.</summary>
public sealed class KernelCheckException(string message) : Exception(message);

/// <summary>
/// Every kernel against a plain double-precision scalar reference written here, on every length 0..257 plus one
/// large size, in place and out of place, with planted NaN/±Inf. Plain methods (no xunit) so the same checks run
/// in the test process and in this program under other DOTNET_Enable* settings.
/// </summary>
public static unsafe partial class KernelChecks
{
    /// <summary>Every check, by name, for the runner.</summary>
    public static IReadOnlyList<(string Name, Action Run)> All { get; } =
    [
        ("silu", Silu), ("swiglu", SwiGlu), ("gelu_tanh", GeluTanh), ("vector_ops", VectorOps),
        ("rmsnorm", RmsNorm), ("layernorm", LayerNorm), ("softmax", Softmax), ("softmax_causal", SoftmaxCausal),
        ("rope", Rope), ("overlap_rejected", OverlapRejected),
        ("gemm_shapes", GemmShapes), ("gemm_blocks", GemmBlocks), ("gemm_special_values", GemmSpecialValues),
        ("gemm_strided", GemmStrided), ("gemm_from_rows", GemmFromRows), ("gemv", Gemv),
        ("quantize_q3_k", Q3K),
    ];

    /// <summary>0..257 covers every remainder of every vector width with several full vectors; 4099 is the large one.</summary>
    public static IEnumerable<int> Lengths()
    {
        for (int n = 0; n <= 257; n++) yield return n;
        yield return 4099;
    }

    /// <summary>No special value, or one NaN / +Inf / -Inf planted away from the ends.</summary>
    private static readonly float[] Planted = [0f, float.NaN, float.PositiveInfinity, float.NegativeInfinity];

    public static float[] RandomArray(int seed, int n, double lo, double hi)
    {
        var rng = new Random(seed);
        var a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float)(lo + (hi - lo) * rng.NextDouble());
        return a;
    }

    private static float[] Input(int seed, int n, double range, float plant)
    {
        float[] x = RandomArray(seed, n, -range, range);
        if (plant != 0 && n > 0) x[n * 7 / 11] = plant;
        return x;
    }

    private const float Sentinel = 12345.678f;

    private static float[] WithSentinels(int n) => Enumerable.Repeat(Sentinel, n + 3).ToArray();

    internal static void Compare(string what, ReadOnlySpan<double> expected, ReadOnlySpan<float> actual, Tolerance tol)
    {
        for (int i = 0; i < expected.Length; i++)
            if (!tol.Accepts(expected[i], actual[i]))
                throw new KernelCheckException($"{what}: element {i} of {expected.Length} is {actual[i]:R}, expected {expected[i]:R} (tolerance {tol.Name}: abs {tol.Absolute}, rel {tol.Relative})");
    }

    private static void CheckSentinels(string what, float[] y, int n)
    {
        for (int i = n; i < y.Length; i++)
            if (BitConverter.SingleToInt32Bits(y[i]) != BitConverter.SingleToInt32Bits(Sentinel))
                throw new KernelCheckException($"{what}: wrote past the end (element {i} of a {n}-element result)");
    }

    private static void CheckUnchanged(string what, float[] original, float[] now)
    {
        if (!original.AsSpan().SequenceEqual(now)) throw new KernelCheckException($"{what}: modified its input");
    }

    /// <summary>A unary kernel: out of place into a longer buffer (sentinels after), then in place.</summary>
    private static void Unary(string name, Action<float[], float[]> kernel, Func<double, double> reference, Tolerance tol, double range)
    {
        foreach (int n in Lengths())
            foreach (float plant in Planted)
            {
                string what = $"{name} n={n} planted={plant}";
                float[] x = Input(n * 31 + 7, n, range, plant);
                double[] expected = x.Select(v => reference(v)).ToArray();
                float[] original = x.ToArray();
                float[] y = WithSentinels(n);
                kernel(x, y);
                Compare(what + " out-of-place", expected, y, tol);
                CheckSentinels(what, y, n);
                CheckUnchanged(what, original, x);
                kernel(x, x);
                Compare(what + " in-place", expected, x, tol);
            }
    }

    /// <summary>A binary kernel: out of place, in place into the first and into the second operand.</summary>
    private static void Binary(string name, Action<float[], float[], float[]> kernel, Func<double, double, double> reference, Tolerance tol, double range)
    {
        foreach (int n in Lengths())
            foreach (float plant in Planted)
            {
                string what = $"{name} n={n} planted={plant}";
                float[] a = Input(n * 31 + 7, n, range, plant);
                float[] b = Input(n * 17 + 3, n, range, 0);
                if (n > 1) b[n / 5] = plant;
                double[] expected = new double[n];
                for (int i = 0; i < n; i++) expected[i] = reference(a[i], b[i]);
                float[] y = WithSentinels(n);
                kernel(a, b, y);
                Compare(what + " out-of-place", expected, y, tol);
                CheckSentinels(what, y, n);
                float[] a2 = a.ToArray();
                kernel(a2, b, a2);
                Compare(what + " in-place (first)", expected, a2, tol);
                float[] b2 = b.ToArray();
                kernel(a, b2, b2);
                Compare(what + " in-place (second)", expected, b2, tol);
            }
    }

    private static double SiluRef(double x) => x / (1 + Math.Exp(-x));

    private static double GeluRef(double x) => 0.5 * x * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));

    public static void Silu() =>
        Unary("silu", (x, y) => Core.Kernels.Silu.Apply(x, y), SiluRef, KernelTolerances.Activation, 12);

    public static void GeluTanh() =>
        Unary("gelu_tanh", (x, y) => Core.Kernels.GeluTanh.Apply(x, y), GeluRef, KernelTolerances.Activation, 8);

    public static void SwiGlu() =>
        Binary("swiglu", (g, u, y) => Core.Kernels.SwiGlu.Apply(g, u, y), (g, u) => SiluRef(g) * u, KernelTolerances.Activation, 8);

    public static void VectorOps()
    {
        foreach (int n in Lengths())
        {
            float[] x = Input(n + 1, n, 4, n > 2 ? float.NaN : 0), y = Input(n + 2, n, 4, 0);
            float[] add = x.ToArray(), mul = x.ToArray(), scale = x.ToArray();
            Core.Kernels.VectorOps.AddInPlace(add, y);
            Core.Kernels.VectorOps.MultiplyInPlace(mul, y);
            Core.Kernels.VectorOps.ScaleInPlace(scale, 0.37f);
            Compare($"add n={n}", x.Zip(y, (a, b) => (double)(a + b)).ToArray(), add, KernelTolerances.Exact);
            Compare($"mul n={n}", x.Zip(y, (a, b) => (double)(a * b)).ToArray(), mul, KernelTolerances.Exact);
            Compare($"scale n={n}", x.Select(a => (double)(a * 0.37f)).ToArray(), scale, KernelTolerances.Exact);
            if (n > 0)
            {
                float dot = Core.Kernels.VectorOps.Dot(y, y);
                double dotRef = y.Sum(v => (double)v * v);
                if (!KernelTolerances.Norm.Accepts(dotRef, dot)) throw new KernelCheckException($"dot n={n}: {dot} vs {dotRef}");
            }
        }
        float[] rows = RandomArray(5, 3 * 7, -1, 1), bias = RandomArray(6, 7, -1, 1), expect = rows.ToArray();
        Core.Kernels.VectorOps.AddBiasRows(rows, bias, 3);
        Compare("add_bias_rows", expect.Select((v, i) => (double)(v + bias[i % 7])).ToArray(), rows, KernelTolerances.Exact);
    }

    private static double[] RmsRef(float[] x, float[] w, double eps)
    {
        double ss = 0;
        foreach (float v in x) ss += (double)v * v;
        double scale = 1 / Math.Sqrt(ss / x.Length + eps);
        return x.Select((v, i) => v * scale * w[i]).ToArray();
    }

    private static double[] LayerNormRef(float[] x, float[] w, float[] b, double eps)
    {
        double mean = x.Sum(v => (double)v) / x.Length;
        double var = x.Sum(v => (v - mean) * (v - mean)) / x.Length;
        double rstd = 1 / Math.Sqrt(var + eps);
        return x.Select((v, i) => (v - mean) * rstd * w[i] + b[i]).ToArray();
    }

    public static void RmsNorm()
    {
        foreach (int n in Lengths())
            foreach (float plant in Planted)
            {
                string what = $"rmsnorm n={n} planted={plant}";
                float[] x = Input(n * 13 + 1, n, 3, plant), w = RandomArray(n + 99, n, 0.5, 1.5);
                double[] expected = n == 0 ? [] : RmsRef(x, w, 1e-5);
                float[] y = WithSentinels(n);
                Core.Kernels.RmsNorm.Apply(x, w, y, 1e-5f);
                Compare(what + " out-of-place", expected, y, KernelTolerances.Norm);
                CheckSentinels(what, y, n);
                Core.Kernels.RmsNorm.Apply(x, w, x, 1e-5f);
                Compare(what + " in-place", expected, x, KernelTolerances.Norm);
            }
        RowsCheck("rmsnorm rows", (x, w, y, rows) => Core.Kernels.RmsNorm.ApplyRows(x, w, y, rows, 1e-6f), (x, w) => RmsRef(x, w, 1e-6));
    }

    public static void LayerNorm()
    {
        foreach (int n in Lengths())
            foreach (float plant in Planted)
            {
                string what = $"layernorm n={n} planted={plant}";
                // An offset mean (+5) next to a small spread is where a one-pass variance would fail.
                float[] x = Input(n * 13 + 2, n, 1, plant).Select(v => v + 5f).ToArray();
                float[] w = RandomArray(n + 98, n, 0.5, 1.5), b = RandomArray(n + 97, n, -1, 1);
                double[] expected = n == 0 ? [] : LayerNormRef(x, w, b, 1e-5);
                float[] y = WithSentinels(n);
                Core.Kernels.LayerNorm.Apply(x, w, b, y, 1e-5f);
                Compare(what + " out-of-place", expected, y, KernelTolerances.Norm);
                CheckSentinels(what, y, n);
                Core.Kernels.LayerNorm.Apply(x, w, b, x, 1e-5f);
                Compare(what + " in-place", expected, x, KernelTolerances.Norm);
            }
        RowsCheck("layernorm rows", (x, w, y, rows) => Core.Kernels.LayerNorm.ApplyRows(x, w, w, y, rows, 1e-5f), (x, w) => LayerNormRef(x, w, w, 1e-5));
    }

    private static void RowsCheck(string name, Action<float[], float[], float[], int> kernel, Func<float[], float[], double[]> reference)
    {
        foreach (int n in new[] { 1, 17, 576 })
        {
            const int rows = 5;
            float[] x = RandomArray(n, rows * n, -2, 2), w = RandomArray(n + 1, n, 0.5, 1.5), y = new float[rows * n];
            kernel(x, w, y, rows);
            for (int r = 0; r < rows; r++)
                Compare($"{name} n={n} row={r}", reference(x.AsSpan(r * n, n).ToArray(), w), y.AsSpan(r * n, n), KernelTolerances.Norm);
            kernel(x, w, x, rows);
            Compare($"{name} n={n} in-place", y.Select(v => (double)v).ToArray(), x, KernelTolerances.Exact);
        }
    }

    private static double[] SoftmaxRef(ReadOnlySpan<float> x, double scale)
    {
        double max = double.NegativeInfinity;
        foreach (float v in x) max = double.IsNaN(v) || double.IsNaN(max) ? double.NaN : Math.Max(max, v);
        var e = new double[x.Length];
        double sum = 0;
        for (int i = 0; i < x.Length; i++) sum += e[i] = Math.Exp((x[i] - max) * scale);
        for (int i = 0; i < x.Length; i++) e[i] /= sum;
        return e;
    }

    public static void Softmax()
    {
        foreach (float scale in new[] { 1f, 0.125f })
            foreach (int n in Lengths())
                foreach (float plant in Planted)
                {
                    string what = $"softmax scale={scale} n={n} planted={plant}";
                    // Logits up to ±100: TensorPrimitives.SoftMax would overflow here without the max shift.
                    float[] x = Input(n * 5 + 3, n, 100, plant);
                    double[] expected = SoftmaxRef(x, scale);
                    float[] y = WithSentinels(n);
                    Core.Kernels.Softmax.Apply(x, y, scale);
                    Compare(what + " out-of-place", expected, y, KernelTolerances.Softmax);
                    CheckSentinels(what, y, n);
                    Core.Kernels.Softmax.Apply(x, x, scale);
                    Compare(what + " in-place", expected, x, KernelTolerances.Softmax);
                }
    }

    public static void SoftmaxCausal()
    {
        foreach (int cols in new[] { 1, 7, 33, 300 })
            foreach (int first in new[] { 0, 3, 290 })
            {
                const int rows = 9;
                float[] s = RandomArray(cols + first, rows * cols, -10, 10), original = s.ToArray();
                Core.Kernels.Softmax.ApplyCausal(s, rows, cols, first, 0.5f);
                for (int r = 0; r < rows; r++)
                {
                    int visible = Math.Min(cols, first + r + 1);
                    double[] expected = new double[cols];
                    SoftmaxRef(original.AsSpan(r * cols, visible), 0.5).CopyTo(expected, 0);
                    Compare($"causal cols={cols} first={first} row={r}", expected, s.AsSpan(r * cols, cols), KernelTolerances.Softmax);
                }
            }
    }

    public static void Rope()
    {
        foreach (RopeLayout layout in Enum.GetValues<RopeLayout>())
            foreach (RopeAngles mode in Enum.GetValues<RopeAngles>())
                for (int dims = 2; dims <= 258; dims += 2)
                {
                    foreach (int extra in new[] { 0, 3 })
                    {
                        const int tokens = 3, heads = 2, maxPos = 64;
                        int headSize = dims + extra;
                        var table = new RopeTable(dims, maxPos, 10000f, layout, mode);
                        int[] positions = [0, 7, maxPos - 1];
                        float[] x = RandomArray(dims * 7 + extra, tokens * heads * headSize, -8, 8);
                        double[] expected = RopeRef(x, tokens, heads, headSize, dims, positions, 10000f, layout, mode);
                        Core.Kernels.Rope.Apply(x, tokens, heads, headSize, positions, table);
                        Compare($"rope {layout} {mode} dims={dims} head={headSize}", expected, x, KernelTolerances.Rope);
                    }
                }
        // The large size: a 4096-wide head (every vector width and no tail) and 4098 (a tail).
        foreach (int dims in new[] { 4096, 4098 })
            foreach (RopeLayout layout in Enum.GetValues<RopeLayout>())
            {
                var table = new RopeTable(dims, 10, 500000f, layout);
                float[] x = RandomArray(dims, dims, -8, 8);
                double[] expected = RopeRef(x, 1, 1, dims, dims, [9], 500000f, layout, RopeAngles.Exact);
                Core.Kernels.Rope.Apply(x, 1, 1, dims, [9], table);
                Compare($"rope {layout} dims={dims}", expected, x, KernelTolerances.Rope);
            }
    }

    private static double[] RopeRef(float[] x, int tokens, int heads, int headSize, int dims, int[] positions, float theta, RopeLayout layout, RopeAngles mode)
    {
        double[] y = x.Select(v => (double)v).ToArray();
        for (int t = 0; t < tokens; t++)
        {
            var angles = new double[dims / 2];
            if (mode == RopeAngles.Exact)
            {
                for (int i = 0; i < dims / 2; i++) angles[i] = positions[t] * Math.Pow(theta, -2.0 * i / dims);
            }
            else
            {
                // ggml_rope_cache_init: float theta = p; theta *= powf(base, -2/n_dims) after each pair.
                float scale = MathF.Pow(theta, -2f / dims), th = positions[t];
                for (int i = 0; i < dims / 2; i++) { angles[i] = th; th *= scale; }
            }
            for (int h = 0; h < heads; h++)
            {
                int o = (t * heads + h) * headSize;
                for (int i = 0; i < dims / 2; i++)
                {
                    int a = layout == RopeLayout.Interleaved ? o + 2 * i : o + i;
                    int b = layout == RopeLayout.Interleaved ? o + 2 * i + 1 : o + i + dims / 2;
                    double c = Math.Cos(angles[i]), s = Math.Sin(angles[i]);
                    y[a] = x[a] * c - x[b] * s;
                    y[b] = x[b] * c + x[a] * s;
                }
            }
        }
        return y;
    }

    /// <summary>Destinations that partially overlap a source are refused; exact in-place is allowed (checked above).</summary>
    public static void OverlapRejected()
    {
        float[] buffer = new float[64];
        Expect<ArgumentException>("silu shifted overlap", () => Core.Kernels.Silu.Apply(buffer.AsSpan(0, 32), buffer.AsSpan(1, 32)));
        Expect<ArgumentException>("swiglu short destination", () => Core.Kernels.SwiGlu.Apply(buffer.AsSpan(0, 8), buffer.AsSpan(8, 8), new float[7]));
        Expect<ArgumentException>("rmsnorm weight length", () => Core.Kernels.RmsNorm.Apply(buffer.AsSpan(0, 8), new float[7], new float[8], 1e-5f));
        Expect<ArgumentOutOfRangeException>("softmax scale", () => Core.Kernels.Softmax.Apply(buffer, buffer, -1f));
        var table = new RopeTable(8, 4, 10000f, RopeLayout.Interleaved);
        Expect<ArgumentOutOfRangeException>("rope position", () => Core.Kernels.Rope.Apply(buffer, 1, 1, 8, [4], table));
        Expect<ArgumentOutOfRangeException>("rope head size", () => Core.Kernels.Rope.Apply(buffer, 1, 1, 6, [0], table));
        Expect<ArgumentException>("gemm short A", () => Core.Kernels.Sgemm.MultiplyTransposedB(new float[5], new float[6], new float[4], 2, 2, 3));
        Expect<ArgumentOutOfRangeException>("gemm negative m", () => Core.Kernels.Sgemm.MultiplyTransposedB(new float[6], new float[6], new float[4], -1, 2, 3));
    }

    internal static void Expect<T>(string what, Action action) where T : Exception
    {
        try { action(); }
        catch (T) { return; }
        catch (Exception e) { throw new KernelCheckException($"{what}: threw {e.GetType().Name} instead of {typeof(T).Name}: {e.Message}"); }
        throw new KernelCheckException($"{what}: did not throw {typeof(T).Name}");
    }
}
