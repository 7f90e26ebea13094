using System.Runtime.InteropServices;
using EdgeQuant.Core.Quantization;
using EdgeQuant.Core.Tensors;
using EdgeQuant.Runtimes;
using EdgeQuant.Runtimes.LlamaCpp;

namespace EdgeQuant.Benchmarks.Quantization;

/// <summary>
/// Q3_K quantization speed in MB of F32 input per second, one thread, on a 1024 x 2048 matrix of Gaussian weights
/// (a slice of TinyLlama's attn_q shape): ours (<see cref="Quantize.Rows"/>: the lane-per-group vector path), our
/// scalar mirror of ggml's code, and ggml_quantize_chunk of the pinned libggml-base on the same rows, round-robin, with
/// and without an imatrix-like importance vector. Outputs are compared byte for byte before timing.
/// </summary>
public static unsafe class Q3KQuantizeBenchmarks
{
    public static void Run()
    {
        const int Rows = 1024, N = 2048;
        var rng = new Random(3);
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

        Console.WriteLine($"{Rows} x {N} F32 ({mb:F1} MB), MB/s of input, 1 thread");
        var info = TensorTypes.Get(TensorType.Q3_K);
        int rowBytes = N / info.BlockSize * info.BlockBytes;
        foreach (bool weighted in new[] { false, true })
        {
            var ours = new byte[Rows * rowBytes];
            var mirror = new byte[ours.Length];
            var theirs = new byte[ours.Length];
            float[]? imatrix = weighted ? importance : null;
            string label = $"Q3_K{(weighted ? " imatrix" : "")}";
            Action oursRun = () => Quantize.Rows(TensorType.Q3_K, x, ours, Rows, N, imatrix, threads: 1);
            Action mirrorRun = () => ScalarRows(x, mirror, Rows, N, rowBytes, imatrix);
            oursRun();
            mirrorRun();
            if (!ours.AsSpan().SequenceEqual(mirror))
                throw new InvalidOperationException($"{label}: the vector path's bytes differ from the scalar mirror's");
            if (chunk is null)
            {
                var s = Measure.InterleavedMedianSeconds([oursRun, mirrorRun], warmup: 1, minRounds: 3, budgetSeconds: 4);
                Console.WriteLine($"{label,-13} ours {mb / s[0],7:F1} MB/s   scalar mirror {mb / s[1],7:F1} MB/s");
                continue;
            }
            var fn = chunk;
            Action ggmlRun = () =>
            {
                fixed (float* xp = x)
                fixed (byte* yp = theirs)
                fixed (float* wp = imatrix)
                    fn((int)TensorType.Q3_K, xp, yp, 0, Rows, N, imatrix is null ? null : wp);
            };
            ggmlRun();
            if (!ours.AsSpan().SequenceEqual(theirs))
                throw new InvalidOperationException($"{label}: our bytes differ from ggml_quantize_chunk's");
            var sec = Measure.InterleavedMedianSeconds([oursRun, mirrorRun, ggmlRun], warmup: 1, minRounds: 3, budgetSeconds: 6);
            Console.WriteLine($"{label,-13} ours {mb / sec[0],7:F1} MB/s   scalar mirror {mb / sec[1],7:F1} MB/s   ggml {mb / sec[2],7:F1} MB/s   ours/ggml {sec[2] / sec[0],5:F2}x   mirror/ggml {sec[2] / sec[1],5:F2}x");
        }
    }

    private static void ScalarRows(float[] x, byte[] y, int rows, int n, int rowBytes, float[]? imatrix)
    {
        for (int r = 0; r < rows; r++)
        {
            var src = x.AsSpan(r * n, n);
            var dst = MemoryMarshal.Cast<byte, BlockQ3_K>(y.AsSpan(r * rowBytes, rowBytes));
            if (imatrix is null) Q3_K.QuantizeRowReference(src, dst);
            else Q3_K.QuantizeRowWeightedReference(src, dst, imatrix);
        }
    }
}
