using EdgeQuant.Models;
using EdgeQuant.Runtimes.LlamaCpp;
using EdgeQuant.Testing;

namespace EdgeQuant.Runtimes.Tests.LlamaCpp;

/// <summary>
/// stories260K's logits from llama.cpp (through the binding, all F32) against a plain Llama forward written here in
/// double precision from the same GGUF tensors (read by EdgeQuant.Models' loader): RMSNorm, RoPE on adjacent pairs
/// (GGUF's interleaved Q/K row layout, llama.cpp's "norm" RoPE), grouped-query attention, SwiGLU.
/// </summary>
public sealed class LlamaScalarReferenceTests
{
    /// <summary>
    /// llama.cpp accumulates in F32 in a different order (SIMD dot products, its own exp/softmax); over five layers of
    /// width 64 that leaves relative errors around 1e-6. 1e-4 catches any real difference (a wrong RoPE pairing or
    /// GQA mapping is off by tens of percent) with a wide margin over rounding.
    /// </summary>
    private const double MaxRelativeL2 = 1e-4;

    [LlamaCppFact(LlamaTestData.Stories260K)]
    public void Logits_match_a_scalar_llama_forward()
    {
        var path = SharedData.Require(LlamaTestData.Stories260K);
        using var llama = LlamaModel.Load(path);
        var tokens = llama.Tokenize("Once upon a time, there was a little girl named Lily. She loved to play outside.");
        Assert.True(tokens.Length >= 16);

        var outputs = Enumerable.Range(0, tokens.Length).ToArray();
        var actual = new float[tokens.Length * llama.VocabSize];
        using (var runner = new LlamaCppRunner(llama, LlamaContextOptions.FullPrecision(256, threads: 1)))
            runner.Evaluate(tokens, 0, outputs, actual);

        using var model = ModelLoader.Load(path);
        var expected = new ScalarLlama(model).Forward(tokens);
        for (int p = 0; p < tokens.Length; p++)
        {
            double diff = 0, norm = 0;
            for (int v = 0; v < llama.VocabSize; v++)
            {
                double e = expected[p][v], a = actual[p * llama.VocabSize + v];
                diff += (a - e) * (a - e);
                norm += e * e;
            }
            double rel = Math.Sqrt(diff / norm);
            Assert.True(rel <= MaxRelativeL2, $"position {p}: relative L2 {rel:E2} > {MaxRelativeL2:E0}");
        }
    }

    /// <summary>The obviously-correct forward: one position at a time, every sum in double, no cache tricks beyond keeping K and V.</summary>
    private sealed class ScalarLlama(Model model)
    {
        private readonly ModelConfig _c = model.Config;

        private double[] W(string name) => Array.ConvertAll(model.Get(name).ToFloat32(), x => (double)x);

        public double[][] Forward(int[] tokens)
        {
            int dim = _c.EmbeddingLength, nHead = _c.HeadCount, nKv = _c.HeadCountKv, hd = _c.HeadDim, ff = _c.FeedForwardLength;
            var embd = W("token_embd.weight");
            var outNorm = W("output_norm.weight");
            var output = model.Find("output.weight") is null ? embd : W("output.weight");
            var layers = Enumerable.Range(0, _c.BlockCount).Select(i => new
            {
                AttnNorm = W($"blk.{i}.attn_norm.weight"),
                Q = W($"blk.{i}.attn_q.weight"),
                K = W($"blk.{i}.attn_k.weight"),
                V = W($"blk.{i}.attn_v.weight"),
                O = W($"blk.{i}.attn_output.weight"),
                FfnNorm = W($"blk.{i}.ffn_norm.weight"),
                Gate = W($"blk.{i}.ffn_gate.weight"),
                Up = W($"blk.{i}.ffn_up.weight"),
                Down = W($"blk.{i}.ffn_down.weight"),
                Keys = new List<double[]>(),
                Values = new List<double[]>(),
            }).ToArray();

            var result = new double[tokens.Length][];
            for (int pos = 0; pos < tokens.Length; pos++)
            {
                var x = embd.AsSpan(tokens[pos] * dim, dim).ToArray();
                foreach (var l in layers)
                {
                    var h = RmsNorm(x, l.AttnNorm);
                    var q = MatVec(l.Q, h, nHead * hd);
                    var k = MatVec(l.K, h, nKv * hd);
                    var v = MatVec(l.V, h, nKv * hd);
                    Rope(q, nHead, hd, pos);
                    Rope(k, nKv, hd, pos);
                    l.Keys.Add(k);
                    l.Values.Add(v);

                    var attn = new double[nHead * hd];
                    for (int head = 0; head < nHead; head++)
                    {
                        int kvHead = head / (nHead / nKv);
                        var scores = new double[pos + 1];
                        for (int t = 0; t <= pos; t++)
                        {
                            double s = 0;
                            for (int d = 0; d < hd; d++) s += q[head * hd + d] * l.Keys[t][kvHead * hd + d];
                            scores[t] = s / Math.Sqrt(hd);
                        }
                        double max = scores.Max(), sum = 0;
                        for (int t = 0; t <= pos; t++) sum += scores[t] = Math.Exp(scores[t] - max);
                        for (int t = 0; t <= pos; t++)
                            for (int d = 0; d < hd; d++) attn[head * hd + d] += scores[t] / sum * l.Values[t][kvHead * hd + d];
                    }
                    Add(x, MatVec(l.O, attn, dim));

                    h = RmsNorm(x, l.FfnNorm);
                    var gate = MatVec(l.Gate, h, ff);
                    var up = MatVec(l.Up, h, ff);
                    for (int i = 0; i < ff; i++) gate[i] = gate[i] / (1 + Math.Exp(-gate[i])) * up[i];
                    Add(x, MatVec(l.Down, gate, dim));
                }
                result[pos] = MatVec(output, RmsNorm(x, outNorm), _c.VocabSize);
            }
            return result;
        }

        private double[] RmsNorm(double[] x, double[] w)
        {
            double ms = x.Sum(v => v * v) / x.Length;
            double inv = 1 / Math.Sqrt(ms + _c.NormEpsilon);
            return x.Select((v, i) => v * inv * w[i]).ToArray();
        }

        /// <summary>GGUF stores Q/K rows so that RoPE rotates adjacent pairs (2i, 2i+1) by pos·θ^(−2i/d).</summary>
        private void Rope(double[] v, int heads, int hd, int pos)
        {
            for (int head = 0; head < heads; head++)
            {
                for (int i = 0; i < hd / 2; i++)
                {
                    double angle = pos * Math.Pow(_c.RopeTheta, -2.0 * i / hd);
                    double c = Math.Cos(angle), s = Math.Sin(angle);
                    int a = head * hd + 2 * i;
                    double x0 = v[a], x1 = v[a + 1];
                    v[a] = x0 * c - x1 * s;
                    v[a + 1] = x0 * s + x1 * c;
                }
            }
        }

        /// <summary>W is [rows, x.Length] row-major (a linear layer's [out, in]).</summary>
        private static double[] MatVec(double[] w, double[] x, int rows)
        {
            Assert.Equal(rows * x.Length, w.Length);
            var y = new double[rows];
            for (int r = 0; r < rows; r++)
            {
                double s = 0;
                for (int i = 0; i < x.Length; i++) s += w[r * x.Length + i] * x[i];
                y[r] = s;
            }
            return y;
        }

        private static void Add(double[] x, double[] y)
        {
            for (int i = 0; i < x.Length; i++) x[i] += y[i];
        }
    }
}
