using System.Runtime.InteropServices;
using EdgeQuant.Core.Quantization;
using EdgeQuant.Core.Tensors;

namespace EdgeQuant.Benchmarks.Quantization;

/// <summary>
/// Q3_K quantization speed in MB of F32 input per second, one thread, on a 1024 x 2048 matrix of Gaussian weights
/// (a slice of TinyLlama's attn_q shape): ours (<see cref="Quantize.Rows"/>: the lane-per-group vector path), our
/// scalar mirror of ggml's code, and ggml_quantize_chunk of the pinned libggml-base on the same rows, round-robin, with
/// and without an imatrix-like importance vector. Outputs are compared byte for byte before timing.
/// </summary>
public static class Q3KQuantizeBenchmarks
{
    public static void Run()
    {
        const int Rows = 1024, N = 2048;
        var (x, importance) = GgmlQuantizePeer.Inputs(Rows, N, seed: 3);
        double mb = x.Length * 4 / 1e6;
        var ggml = GgmlQuantizePeer.Load();

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
            if (ggml is null)
            {
                var s = Measure.InterleavedMedianSeconds([oursRun, mirrorRun], warmup: 1, minRounds: 3, budgetSeconds: 4);
                Console.WriteLine($"{label,-13} ours {mb / s[0],7:F1} MB/s   scalar mirror {mb / s[1],7:F1} MB/s");
                continue;
            }
            Action ggmlRun = () => ggml.Run(TensorType.Q3_K, x, theirs, Rows, N, imatrix);
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
