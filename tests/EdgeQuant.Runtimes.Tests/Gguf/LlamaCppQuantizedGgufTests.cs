using EdgeQuant.Core.Tensors;
using EdgeQuant.Fixtures;
using EdgeQuant.Formats.Gguf;
using EdgeQuant.Models;
using EdgeQuant.Runtimes.LlamaCpp;
using EdgeQuant.Runtimes.LlamaCpp.Native;
using EdgeQuant.Runtimes.Tests.LlamaCpp;
using EdgeQuant.Testing;

namespace EdgeQuant.Runtimes.Tests.Gguf;

/// <summary>
/// GGUF files quantized by the real llama.cpp (<c>llama_model_quantize</c>) read by the project's GGUF reader:
/// every block type parses, re-writing reproduces llama.cpp's file byte for byte, and the dequantized weights are
/// the source weights up to the type's quantization error.
/// </summary>
public class LlamaCppQuantizedGgufTests
{
    // Rows of 256 so llama.cpp uses K-quants instead of falling back (stories260K's rows of 64 and 172 cannot).
    private static readonly FixtureSpec Spec = new() { Layers = 1, Embd = 256, Heads = 4, KvHeads = 2, Ffn = 512, Vocab = 512, ContextLength = 128, Untied = true, Name = "gguf-quant-peer" };

    // Largest relative RMS error of each block type on these random weights (seen: Q2_K 0.23, Q3_K 0.125, Q4_0 0.065,
    // Q4_1 0.061, Q4_K 0.055, Q5_0 0.031, Q5_1 0.029, Q5_K 0.028, Q6_K 0.013, Q8_0 0.004), with ~1.5x headroom; a
    // misread scale, nibble or bit plane gives errors of order 1.
    private static readonly Dictionary<TensorType, double> MaxRelativeRms = new()
    {
        [TensorType.Q2_K] = 0.35, [TensorType.Q3_K] = 0.19, [TensorType.Q4_0] = 0.1, [TensorType.Q4_1] = 0.095,
        [TensorType.Q4_K] = 0.085, [TensorType.Q5_0] = 0.05, [TensorType.Q5_1] = 0.045, [TensorType.Q5_K] = 0.045,
        [TensorType.Q6_K] = 0.02, [TensorType.Q8_0] = 0.006,
    };

    [LlamaCppFact]
    public void Every_type_parses_rewrites_byte_for_byte_and_dequantizes_to_the_source() => Check(
    [
        (LlamaFileType.MostlyQ4_0, TensorType.Q4_0), (LlamaFileType.MostlyQ4_1, TensorType.Q4_1),
        (LlamaFileType.MostlyQ5_0, TensorType.Q5_0), (LlamaFileType.MostlyQ5_1, TensorType.Q5_1),
        (LlamaFileType.MostlyQ8_0, TensorType.Q8_0), (LlamaFileType.MostlyQ2_K, TensorType.Q2_K),
        (LlamaFileType.MostlyQ3_K_M, TensorType.Q3_K), (LlamaFileType.MostlyQ4_K_M, TensorType.Q4_K),
        (LlamaFileType.MostlyQ5_K_M, TensorType.Q5_K), (LlamaFileType.MostlyQ6_K, TensorType.Q6_K),
    ]);

    private static void Check((LlamaFileType File, TensorType Expect)[] cases)
    {
        using var dir = new TempDir("eq-gguf-quant");
        string src = FixtureMaker.Write(Spec, dir.Path, FixtureFormats.Gguf).GgufPath!;
        using var source = ModelLoader.Load(src);
        var failures = new List<string>();
        foreach (var (fileType, expect) in cases)
        {
            string q = dir.File($"{fileType}.gguf");
            LlamaQuantizer.Quantize(src, q, fileType);
            using (var f = GgufReader.Read(q))
            {
                Assert.Contains(f.Tensors, t => t.Type == expect);
                string copy = dir.File($"{fileType}.copy.gguf");
                GgufWriter.Rewrite(f, copy);
                if (!File.ReadAllBytes(q).AsSpan().SequenceEqual(File.ReadAllBytes(copy)))
                    failures.Add($"{fileType}: rewrite differs from llama.cpp's file");
            }
            using var model = ModelLoader.Load(q);
            foreach (var t in model.Tensors.Where(t => TensorTypes.Get(t.Type).IsQuantized))
            {
                var ours = t.ToFloat32();
                var reference = source.Get(t.Name).ToFloat32();
                double err = 0, sig = 0;
                for (int i = 0; i < ours.Length; i++) { err += (ours[i] - reference[i]) * (double)(ours[i] - reference[i]); sig += reference[i] * (double)reference[i]; }
                double rel = Math.Sqrt(err / sig);
                double maxErr = MaxRelativeRms[t.Type];
                if (!(rel <= maxErr)) failures.Add($"{fileType}: {t.Name} ({t.Type}) relative RMS error {rel:G3} > {maxErr}");
            }
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }
}
