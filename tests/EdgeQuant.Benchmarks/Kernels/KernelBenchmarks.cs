using EdgeQuant.Core.Kernels;

namespace EdgeQuant.Benchmarks.Kernels;

/// <summary>
/// FP32 GEMM/GEMV next to OpenBLAS in the same process, 1 and 2 threads, medians of round-robin runs. "packed" is the
/// engine's case (weights packed once at load); "unpacked" includes packing B on every call, as cblas_sgemm does.
/// Ratio = ours / OpenBLAS in GFLOP/s (> 1: ours is faster).
/// </summary>
public static class KernelBenchmarks
{
    private static readonly (int M, int N, int K)[] GemmShapes = [(512, 576, 1536), (512, 2048, 5632)];

    public static void Gemm()
    {
        PrintPeer();
        Console.WriteLine($"{"M x K x N",-18} {"thr",3} {"ours packed",12} {"ours unpacked",14} {"OpenBLAS",10} {"ratio packed",13} {"ratio unpacked",15}   (GFLOP/s, median)");
        foreach (var (m, k, n) in GemmShapes.Select(s => (s.M, s.N, s.K)))
        {
            // Shapes are named M x K x N as in the issue (512 tokens x 576 in x 1536 out); B is W [N x K].
            var rng = new Random(1);
            float[] a = RandomArray(rng, m * k), w = RandomArray(rng, n * k), c = new float[m * n];
            PackedMatrix packed = PackedMatrix.FromWeights(w, n, k);
            double flops = 2.0 * m * n * k;
            foreach (int threads in new[] { 1, 2 })
            {
                if (OpenBlas.Available) OpenBlas.SetThreads(threads);
                double[] t = Measure.InterleavedMedianSeconds(
                [
                    () => Sgemm.Multiply(a, m, packed, c, threads: threads),
                    () => Sgemm.MultiplyTransposedB(a, w, c, m, n, k, threads: threads),
                    OpenBlas.Available ? () => OpenBlas.SgemmTransposedB(a, w, c, m, n, k) : () => { },
                ]);
                double packedT = t[0], unpackedT = t[1], blasT = OpenBlas.Available ? t[2] : double.NaN;
                Console.WriteLine($"{$"{m}x{k}x{n}",-18} {threads,3} {flops / packedT / 1e9,12:F1} {flops / unpackedT / 1e9,14:F1} {flops / blasT / 1e9,10:F1} {blasT / packedT,13:F2} {blasT / unpackedT,15:F2}");
            }
        }
    }

    public static void Gemv()
    {
        PrintPeer();
        const int k = 2048, n = 5632;
        var rng = new Random(2);
        float[] x = RandomArray(rng, k), w = RandomArray(rng, n * k), y = new float[n];
        PackedMatrix packed = PackedMatrix.FromWeights(w, n, k);
        double flops = 2.0 * n * k;
        Console.WriteLine($"{"1 x K x N",-18} {"thr",3} {"ours rows",10} {"ours packed",12} {"OpenBLAS",10} {"ratio rows",11} {"ratio packed",13}   (GFLOP/s, median; GB/s = 2 x GFLOP/s)");
        foreach (int threads in new[] { 1, 2 })
        {
            if (OpenBlas.Available) OpenBlas.SetThreads(threads);
            double[] t = Measure.InterleavedMedianSeconds(
            [
                () => Core.Kernels.Gemv.Multiply(x, w, y, n, k, threads: threads),
                () => Core.Kernels.Gemv.Multiply(x, packed, y, threads: threads),
                OpenBlas.Available ? () => OpenBlas.Sgemv(w, x, y, n, k) : () => { },
            ], warmup: 10, minRounds: 51);
            double rowsT = t[0], packedT = t[1], blasT = OpenBlas.Available ? t[2] : double.NaN;
            Console.WriteLine($"{$"1x{k}x{n}",-18} {threads,3} {flops / rowsT / 1e9,10:F1} {flops / packedT / 1e9,12:F1} {flops / blasT / 1e9,10:F1} {blasT / rowsT,11:F2} {blasT / packedT,13:F2}");
        }
    }

    public static void Elementwise()
    {
        const int rows = 512, n = 1536;
        var rng = new Random(3);
        float[] x = RandomArray(rng, rows * n), g = RandomArray(rng, rows * n), y = new float[rows * n], wt = RandomArray(rng, n);
        double bytes = rows * n * 4.0;
        void Row(string name, Action run, double bytesMoved)
        {
            double t = Measure.MedianSeconds(run);
            Console.WriteLine($"{name,-28} {t * 1e6,10:F1} µs {bytesMoved / t / 1e9,8:F1} GB/s");
        }
        Console.WriteLine($"[{rows} x {n}] activations");
        Row("silu", () => Silu.Apply(x, y), 2 * bytes);
        Row("swiglu", () => SwiGlu.Apply(x, g, y), 3 * bytes);
        Row("gelu_tanh", () => GeluTanh.Apply(x, y), 2 * bytes);
        Row("rmsnorm", () => RmsNorm.ApplyRows(x, wt, y, rows, 1e-5f), 2 * bytes);
        Row("layernorm", () => LayerNorm.ApplyRows(x, wt, wt, y, rows, 1e-5f), 2 * bytes);
        Row("softmax rows", () => { for (int r = 0; r < rows; r++) Softmax.Apply(x.AsSpan(r * n, n), y.AsSpan(r * n, n)); }, 2 * bytes);
    }

    private static void PrintPeer()
    {
        Console.WriteLine(OpenBlas.Available
            ? $"peer: OpenBLAS {OpenBlas.Path}, core {OpenBlas.CoreName} ({OpenBlas.CorePolicy})"
            : "peer: OpenBLAS not found (make test-deps installs libopenblas0-pthread); no ratios");
        Console.WriteLine($"ours: {GemmKernelInfo()}");
    }

    private static string GemmKernelInfo()
    {
        var kind = GemmKernel.Best;
        var k = GemmKernel.For(kind);
        return $"{kind} micro-kernel {k.Mr}x{k.Nr}, Kc {k.Kc}, Mc {k.Mc}";
    }

    private static float[] RandomArray(Random rng, int length)
    {
        var a = new float[length];
        for (int i = 0; i < a.Length; i++) a[i] = (float)(rng.NextDouble() * 2 - 1);
        return a;
    }
}
