using System.Runtime.InteropServices;
using EdgeQuant.Core.Quantization;
using EdgeQuant.Core.Tensors;
using EdgeQuant.Runtimes;
using EdgeQuant.Runtimes.LlamaCpp;

namespace EdgeQuant.Benchmarks.Quantization;

/// <summary>
/// Quantization speed in MB of F32 input per second on one 2048 x 2048 matrix (TinyLlama's attn_q shape) of
/// Gaussian weights, ours (<see cref="Quantize.Rows"/>) against ggml_quantize_chunk of the pinned libggml-base on the
/// same rows in the same run, round-robin (Q6_K: our scalar reference, no vector path yet). The threaded rows split the matrix into row chunks as llama.cpp's
/// llama_model_quantize does (each thread one ggml_quantize_chunk call on its rows). Both outputs are compared byte
/// for byte before timing, so a figure is never reported for a wrong result.
/// </summary>
public static unsafe class QuantizeBenchmarks
{
    public static void Run()
    {
        const int Rows = 2048, N = 2048;
        var rng = new Random(1);
        var x = new float[Rows * N];
        for (int i = 0; i < x.Length; i++)
            x[i] = (float)(Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble()) * 0.02);
        var importance = new float[N];
        for (int i = 0; i < N; i++) importance[i] = MathF.Pow(10f, (float)rng.NextDouble() * 3 - 2);
        double mb = x.Length * 4 / 1e6;

        delegate* unmanaged<int, float*, byte*, long, long, long, float*, nuint> chunk = null;
        try
        {
            var dir = LlamaLibrary.EnsureInitialized().Directory;
            var lib = dir is null ? NativeLibrary.Load("libggml-base.so") : NativeLibrary.Load(Path.Combine(dir, "libggml-base.so"));
            chunk = (delegate* unmanaged<int, float*, byte*, long, long, long, float*, nuint>)NativeLibrary.GetExport(lib, "ggml_quantize_chunk");
        }
        catch (RuntimeNotFoundException e) { Console.WriteLine($"llama.cpp not available ({e.Message.Split('\n')[0]}): ours only"); }

        int threads = Environment.ProcessorCount;
        Console.WriteLine($"{Rows} x {N} F32 ({mb:F1} MB), MB/s of input; threaded = {threads} threads");
        foreach (var type in new[] { TensorType.Q8_0, TensorType.Q4_0, TensorType.Q4_1, TensorType.Q5_0, TensorType.Q5_1, TensorType.Q6_K })
        {
            foreach (bool weighted in type == TensorType.Q8_0 ? new[] { false } : new[] { false, true })
            {
                var info = TensorTypes.Get(type);
                int rowBytes = N / info.BlockSize * info.BlockBytes;
                var ours = new byte[Rows * rowBytes];
                var theirs = new byte[ours.Length];
                float[]? imatrix = weighted ? importance : null;
                string label = $"{info.Name}{(weighted ? " imatrix" : "")}";
                foreach (int t in new[] { 1, threads })
                {
                    Action oursRun = () => Quantize.Rows(type, x, ours, Rows, N, imatrix, t);
                    if (chunk is null)
                    {
                        double s = Measure.MedianSeconds(oursRun, warmup: 1, minRuns: 3, budgetSeconds: 2);
                        Console.WriteLine($"{label,-13} {t} thr  ours {mb / s,8:F0} MB/s");
                        continue;
                    }
                    var fn = chunk;
                    Action ggmlRun = () => GgmlChunks(fn, type, x, theirs, Rows, N, rowBytes, imatrix, t);
                    oursRun();
                    ggmlRun();
                    if (!ours.AsSpan().SequenceEqual(theirs))
                        throw new InvalidOperationException($"{label}: our bytes differ from ggml_quantize_chunk's");
                    var sec = Measure.InterleavedMedianSeconds([oursRun, ggmlRun], warmup: 1, minRounds: 3, budgetSeconds: weighted ? 6 : 3);
                    Console.WriteLine($"{label,-13} {t} thr  ours {mb / sec[0],8:F0} MB/s   ggml {mb / sec[1],8:F0} MB/s   ours/ggml {sec[1] / sec[0],5:F2}x");
                }
            }
        }
    }

    private static void GgmlChunks(delegate* unmanaged<int, float*, byte*, long, long, long, float*, nuint> fn, TensorType type,
        float[] x, byte[] y, int rows, int n, int rowBytes, float[]? imatrix, int threads)
    {
        int per = (rows + threads - 1) / threads;
        fixed (float* xp = x)
        fixed (byte* yp = y)
        fixed (float* wp = imatrix)
        {
            nint xa = (nint)xp, ya = (nint)yp, wa = imatrix is null ? 0 : (nint)wp;
            Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, p =>
            {
                int r0 = p * per, r1 = Math.Min(rows, r0 + per);
                if (r1 <= r0) return;
                // ggml offsets both src and dst by start itself.
                fn((int)type, (float*)xa, (byte*)ya, (long)r0 * n, r1 - r0, n, (float*)wa);
            });
        }
    }
}
