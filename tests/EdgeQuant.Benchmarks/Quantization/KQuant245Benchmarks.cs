using EdgeQuant.Core.Quantization;
using EdgeQuant.Core.Tensors;

namespace EdgeQuant.Benchmarks.Quantization;

/// <summary>
/// Q2_K, Q4_K and Q5_K quantization speed, single-threaded, in MB of F32 input per second: ours
/// (<see cref="Quantize.Rows"/> with 1 thread: the lane-parallel candidate search) against ggml_quantize_chunk of the
/// pinned libggml-base on the same 512 x 2048 Gaussian rows, round-robin in the same run, without and with an
/// importance vector (imatrix-like, three decades). The outputs are compared byte for byte before timing, so a
/// figure is never reported for a wrong result. One thread because the search is what is compared; the row split
/// over threads is the same driver as the legacy types'.
/// </summary>
public static class KQuant245Benchmarks
{
    public static void Run()
    {
        const int Rows = 512, N = 2048;
        var (x, importance) = GgmlQuantizePeer.Inputs(Rows, N, seed: 245);
        double mb = x.Length * 4 / 1e6;
        var ggml = GgmlQuantizePeer.Load();

        Console.WriteLine($"{Rows} x {N} F32 ({mb:F1} MB), MB/s of input, 1 thread, load {Measure.LoadAverage()}");
        foreach (var type in new[] { TensorType.Q2_K, TensorType.Q4_K, TensorType.Q5_K })
        {
            foreach (bool weighted in new[] { false, true })
            {
                var info = TensorTypes.Get(type);
                var ours = new byte[(long)Rows * (N / info.BlockSize) * info.BlockBytes];
                var theirs = new byte[ours.Length];
                float[]? imatrix = weighted ? importance : null;
                string label = $"{info.Name}{(weighted ? " imatrix" : "")}";
                Action oursRun = () => Quantize.Rows(type, x, ours, Rows, N, imatrix, threads: 1);
                if (ggml is null)
                {
                    double s = Measure.MedianSeconds(oursRun, warmup: 1, minRuns: 3, budgetSeconds: 2);
                    Console.WriteLine($"{label,-13} ours {mb / s,8:F1} MB/s");
                    continue;
                }
                Action ggmlRun = () => ggml.Run(type, x, theirs, Rows, N, imatrix);
                oursRun();
                ggmlRun();
                if (!ours.AsSpan().SequenceEqual(theirs))
                    throw new InvalidOperationException($"{label}: our bytes differ from ggml_quantize_chunk's");
                var sec = Measure.InterleavedMedianSeconds([oursRun, ggmlRun], warmup: 1, minRounds: 3, budgetSeconds: 4);
                Console.WriteLine($"{label,-13} ours {mb / sec[0],8:F1} MB/s   ggml {mb / sec[1],8:F1} MB/s   ours/ggml {sec[1] / sec[0],5:F2}x");
            }
        }
    }
}
