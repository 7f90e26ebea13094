using EdgeQuant.Core.Quantization;
using EdgeQuant.Core.Tensors;

namespace EdgeQuant.Benchmarks.Quantization;

/// <summary>
/// Quantization speed in MB of F32 input per second on one 2048 x 2048 matrix (TinyLlama's attn_q shape) of
/// Gaussian weights, ours (<see cref="Quantize.Rows"/>) against ggml_quantize_chunk of the pinned libggml-base on the
/// same rows in the same run, round-robin (Q6_K: our scalar reference, no vector path yet). The threaded rows split the matrix into row chunks as llama.cpp's
/// llama_model_quantize does (each thread one ggml_quantize_chunk call on its rows). Both outputs are compared byte
/// for byte before timing, so a figure is never reported for a wrong result.
/// </summary>
public static class QuantizeBenchmarks
{
    public static void Run()
    {
        const int Rows = 2048, N = 2048;
        var (x, importance) = GgmlQuantizePeer.Inputs(Rows, N, seed: 1);
        double mb = x.Length * 4 / 1e6;
        var ggml = GgmlQuantizePeer.Load();

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
                    if (ggml is null)
                    {
                        double s = Measure.MedianSeconds(oursRun, warmup: 1, minRuns: 3, budgetSeconds: 2);
                        Console.WriteLine($"{label,-13} {t} thr  ours {mb / s,8:F0} MB/s");
                        continue;
                    }
                    Action ggmlRun = () => ggml.Run(type, x, theirs, Rows, N, imatrix, t);
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
}
