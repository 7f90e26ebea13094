using System.Runtime.InteropServices;
using EdgeQuant.Core.Tensors;
using EdgeQuant.Runtimes;
using EdgeQuant.Runtimes.LlamaCpp;

namespace EdgeQuant.Benchmarks.Quantization;

/// <summary>
/// What the block-type quantization suites share: their input (Gaussian weights, sd 0.02, and an imatrix-like
/// importance vector spanning three decades) and the peer, ggml_quantize_chunk of the pinned libggml-base.
/// </summary>
internal sealed unsafe class GgmlQuantizePeer
{
    private readonly delegate* unmanaged<int, float*, byte*, long, long, long, float*, nuint> _chunk;

    private GgmlQuantizePeer(delegate* unmanaged<int, float*, byte*, long, long, long, float*, nuint> chunk) => _chunk = chunk;

    /// <summary>A rows x n matrix of Gaussian weights and one importance value per column, from <paramref name="seed"/>.</summary>
    public static (float[] X, float[] Importance) Inputs(int rows, int n, int seed)
    {
        var rng = new Random(seed);
        var x = new float[rows * n];
        for (int i = 0; i < x.Length; i++)
            x[i] = (float)(Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble()) * 0.02);
        var importance = new float[n];
        for (int i = 0; i < n; i++) importance[i] = MathF.Pow(10f, (float)rng.NextDouble() * 3 - 2);
        return (x, importance);
    }

    /// <summary>The peer, or null (with a line saying so) when llama.cpp's libraries are not available.</summary>
    public static GgmlQuantizePeer? Load()
    {
        try
        {
            var dir = LlamaLibrary.EnsureInitialized().Directory;
            var lib = dir is null ? NativeLibrary.Load("libggml-base.so") : NativeLibrary.Load(Path.Combine(dir, "libggml-base.so"));
            return new GgmlQuantizePeer((delegate* unmanaged<int, float*, byte*, long, long, long, float*, nuint>)NativeLibrary.GetExport(lib, "ggml_quantize_chunk"));
        }
        catch (RuntimeNotFoundException e)
        {
            Console.WriteLine($"llama.cpp not available ({e.Message.Split('\n')[0]}): ours only");
            return null;
        }
    }

    /// <summary>
    /// Quantizes <paramref name="x"/> into <paramref name="y"/> with ggml_quantize_chunk; with several threads the rows
    /// are split into one chunk call per thread, as llama_model_quantize does.
    /// </summary>
    public void Run(TensorType type, float[] x, byte[] y, int rows, int n, float[]? imatrix, int threads = 1)
    {
        var fn = _chunk;
        int per = (rows + threads - 1) / threads;
        fixed (float* xp = x)
        fixed (byte* yp = y)
        fixed (float* wp = imatrix)
        {
            nint xa = (nint)xp, ya = (nint)yp, wa = imatrix is null ? 0 : (nint)wp;
            if (threads == 1)
            {
                fn((int)type, xp, yp, 0, rows, n, (float*)wa);
                return;
            }
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
