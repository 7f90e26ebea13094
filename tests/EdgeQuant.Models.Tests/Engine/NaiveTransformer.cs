namespace EdgeQuant.Models.Tests.Engine;

/// <summary>
/// An obviously-correct transformer forward in double precision, written from the papers and llama.cpp's graph
/// definitions with plain loops and no shared code with the engine: the independent reference of the engine tests.
/// Llama: RMSNorm, RoPE (interleaved pairs for Llama, rotate-half for Qwen2, angles pos·θ^(−2i/d)), GQA, SwiGLU.
/// GPT-2: LayerNorm, learned positions, fused qkv, GELU (tanh form), biases everywhere. Head counts and FFN width are
/// read per layer (ModelConfig.HeadsIn/KvHeadsIn/FeedForwardIn), so structurally pruned models are covered too.
/// </summary>
public static class NaiveTransformer
{
    /// <summary>Logits [tokens.Length, vocab] for every position, attention causal over the sequence.</summary>
    public static float[] Logits(Model model, int[] tokens)
    {
        var c = model.Config;
        int n = tokens.Length, d = c.EmbeddingLength, hd = c.HeadDim;
        bool gpt2 = c.Architecture == Architecture.Gpt2;
        var cache = new Dictionary<string, double[]>();
        double[] T(string name)
        {
            if (!cache.TryGetValue(name, out var t)) cache[name] = t = model.Get(name).ToFloat32().Select(v => (double)v).ToArray();
            return t;
        }
        double[]? Opt(string name) => model.Find(name) is null ? null : T(name);

        var emb = T("token_embd.weight");
        var x = new double[n][];
        for (int i = 0; i < n; i++)
        {
            x[i] = new double[d];
            for (int j = 0; j < d; j++) x[i][j] = emb[tokens[i] * d + j];
        }
        if (gpt2)
        {
            var pos = T("position_embd.weight");
            for (int i = 0; i < n; i++) for (int j = 0; j < d; j++) x[i][j] += pos[i * d + j];
        }

        for (int l = 0; l < c.BlockCount; l++)
        {
            string p = $"blk.{l}.";
            int nh = c.HeadsIn(l), nkv = c.KvHeadsIn(l), ff = c.FeedForwardIn(l);
            var h = x.Select(r => Norm(r, T(p + "attn_norm.weight"), Opt(p + "attn_norm.bias"), c.NormEpsilon, gpt2)).ToArray();
            double[][] q, k, v;
            int qd = nh * hd, kvd = nkv * hd;
            if (gpt2)
            {
                var qkv = h.Select(r => MatVec(T(p + "attn_qkv.weight"), Opt(p + "attn_qkv.bias"), r, qd + 2 * kvd)).ToArray();
                q = qkv.Select(r => r[..qd]).ToArray();
                k = qkv.Select(r => r[qd..(qd + kvd)]).ToArray();
                v = qkv.Select(r => r[(qd + kvd)..]).ToArray();
            }
            else
            {
                q = h.Select(r => MatVec(T(p + "attn_q.weight"), Opt(p + "attn_q.bias"), r, qd)).ToArray();
                k = h.Select(r => MatVec(T(p + "attn_k.weight"), Opt(p + "attn_k.bias"), r, kvd)).ToArray();
                v = h.Select(r => MatVec(T(p + "attn_v.weight"), Opt(p + "attn_v.bias"), r, kvd)).ToArray();
                bool interleaved = c.Architecture != Architecture.Qwen2;
                for (int i = 0; i < n; i++)
                {
                    for (int hh = 0; hh < nh; hh++) Rotate(q[i], hh * hd, hd, i, c.RopeTheta, interleaved);
                    for (int hh = 0; hh < nkv; hh++) Rotate(k[i], hh * hd, hd, i, c.RopeTheta, interleaved);
                }
            }

            var att = new double[n][];
            for (int i = 0; i < n; i++)
            {
                att[i] = new double[qd];
                for (int hh = 0; hh < nh; hh++)
                {
                    int g = hh / (nh / nkv);
                    var s = new double[i + 1];
                    for (int j = 0; j <= i; j++)
                    {
                        double dot = 0;
                        for (int e = 0; e < hd; e++) dot += q[i][hh * hd + e] * k[j][g * hd + e];
                        s[j] = dot / Math.Sqrt(hd);
                    }
                    double max = s.Max(), sum = 0;
                    for (int j = 0; j <= i; j++) sum += s[j] = Math.Exp(s[j] - max);
                    for (int j = 0; j <= i; j++)
                        for (int e = 0; e < hd; e++) att[i][hh * hd + e] += s[j] / sum * v[j][g * hd + e];
                }
            }
            for (int i = 0; i < n; i++)
            {
                var o = MatVec(T(p + "attn_output.weight"), Opt(p + "attn_output.bias"), att[i], d);
                for (int j = 0; j < d; j++) x[i][j] += o[j];
            }

            for (int i = 0; i < n; i++)
            {
                var hn = Norm(x[i], T(p + "ffn_norm.weight"), Opt(p + "ffn_norm.bias"), c.NormEpsilon, gpt2);
                var up = MatVec(T(p + "ffn_up.weight"), Opt(p + "ffn_up.bias"), hn, ff);
                if (gpt2)
                {
                    for (int j = 0; j < ff; j++)
                    {
                        double u = up[j];
                        up[j] = 0.5 * u * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (u + 0.044715 * u * u * u)));
                    }
                }
                else
                {
                    var gate = MatVec(T(p + "ffn_gate.weight"), Opt(p + "ffn_gate.bias"), hn, ff);
                    for (int j = 0; j < ff; j++) up[j] *= gate[j] / (1 + Math.Exp(-gate[j]));
                }
                var down = MatVec(T(p + "ffn_down.weight"), Opt(p + "ffn_down.bias"), up, d);
                for (int j = 0; j < d; j++) x[i][j] += down[j];
            }
        }

        var outW = model.Find("output.weight") is null ? emb : T("output.weight");
        var logits = new float[n * c.VocabSize];
        for (int i = 0; i < n; i++)
        {
            var hn = Norm(x[i], T("output_norm.weight"), Opt("output_norm.bias"), c.NormEpsilon, gpt2);
            var y = MatVec(outW, null, hn, c.VocabSize);
            for (int j = 0; j < c.VocabSize; j++) logits[i * c.VocabSize + j] = (float)y[j];
        }
        return logits;
    }

    private static double[] MatVec(double[] w, double[]? b, double[] x, int rows)
    {
        var y = new double[rows];
        for (int r = 0; r < rows; r++)
        {
            double s = b?[r] ?? 0;
            for (int j = 0; j < x.Length; j++) s += w[r * x.Length + j] * x[j];
            y[r] = s;
        }
        return y;
    }

    private static double[] Norm(double[] x, double[] w, double[]? b, double eps, bool layerNorm)
    {
        int d = x.Length;
        double mean = layerNorm ? x.Average() : 0;
        double var = x.Sum(v => (v - mean) * (v - mean)) / d;
        var y = new double[d];
        for (int j = 0; j < d; j++) y[j] = (x[j] - mean) / Math.Sqrt(var + eps) * w[j] + (b?[j] ?? 0);
        return y;
    }

    private static void Rotate(double[] v, int offset, int hd, int pos, double theta, bool interleaved)
    {
        for (int i = 0; i < hd / 2; i++)
        {
            double angle = pos * Math.Pow(theta, -2.0 * i / hd);
            int a = interleaved ? offset + 2 * i : offset + i;
            int b = interleaved ? a + 1 : a + hd / 2;
            double x0 = v[a], x1 = v[b];
            v[a] = x0 * Math.Cos(angle) - x1 * Math.Sin(angle);
            v[b] = x0 * Math.Sin(angle) + x1 * Math.Cos(angle);
        }
    }
}
