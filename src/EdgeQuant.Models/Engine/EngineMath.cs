using System.Numerics.Tensors;

namespace EdgeQuant.Models.Engine;

/// <summary>
/// The numeric steps of a forward pass, over row-major F32 buffers. This is the one place the engine touches kernels,
/// so switching to the Core kernels (packed SGEMM, fused norms) is a change here only.
/// </summary>
internal static class EngineMath
{
    // Below this many multiply-adds a product is not worth waking a second thread for (thread hand-off costs ~10 µs,
    // i.e. ~100k FMAs on one core of this machine).
    private const long ParallelThreshold = 1 << 17;

    /// <summary>c[rows, w.Out] = a[rows, w.In] · Wᵀ (+ bias); or c += that when <paramref name="accumulate"/>.</summary>
    public static void Linear(ReadOnlySpan<float> a, int rows, LinearWeight w, Span<float> c, int threads, bool accumulate = false)
    {
        int n = w.Out, k = w.In;
        if (a.Length < (long)rows * k || c.Length < (long)rows * n) throw new ArgumentException("buffer too small");
        long work = (long)rows * n * k;
        // Columns of W are split across threads so each thread streams its own slice of the weights.
        const int ColBlock = 16;
        int colBlocks = (n + ColBlock - 1) / ColBlock;
        int parts = work < ParallelThreshold ? 1 : Math.Min(threads, colBlocks);
        unsafe
        {
            fixed (float* pa = a, pc = c)
            {
                var A = (nint)pa; var C = (nint)pc;
                var W = w.Weight; var bias = w.Bias;
                Parallel(parts, part =>
                {
                    int b0 = (int)((long)colBlocks * part / parts), b1 = (int)((long)colBlocks * (part + 1) / parts);
                    var wSpan = W.AsSpan();
                    var aAll = new ReadOnlySpan<float>((float*)A, rows * k);
                    var cAll = new Span<float>((float*)C, rows * n);
                    for (int b = b0; b < b1; b++)
                    {
                        int j0 = b * ColBlock, j1 = Math.Min(n, j0 + ColBlock);
                        for (int i = 0; i < rows; i++)
                        {
                            var ai = aAll.Slice(i * k, k);
                            var ci = cAll.Slice(i * n, n);
                            for (int j = j0; j < j1; j++)
                            {
                                float v = TensorPrimitives.Dot(ai, wSpan.Slice(j * k, k));
                                if (bias is not null) v += bias[j];
                                ci[j] = accumulate ? ci[j] + v : v;
                            }
                        }
                    }
                });
            }
        }
    }

    /// <summary>Runs body(0..parts-1), one part on the calling thread.</summary>
    public static void Parallel(int parts, Action<int> body)
    {
        if (parts <= 1) { body(0); return; }
        System.Threading.Tasks.Parallel.For(0, parts, new ParallelOptions { MaxDegreeOfParallelism = parts }, body);
    }

    /// <summary>dst = x / sqrt(mean(x²) + eps) * w (+ b), row by row.</summary>
    public static void RmsNorm(ReadOnlySpan<float> x, int rows, int d, NormWeight w, float eps, Span<float> dst)
    {
        for (int i = 0; i < rows; i++)
        {
            var xi = x.Slice(i * d, d);
            var di = dst.Slice(i * d, d);
            // Sum of squares in double: it is the only reduction whose rounding scales with d, and it costs nothing here.
            double ss = 0;
            foreach (var v in xi) ss += (double)v * v;
            float scale = (float)(1.0 / Math.Sqrt(ss / d + eps));
            TensorPrimitives.Multiply(xi, scale, di);
            TensorPrimitives.Multiply(di, w.Weight, di);
            if (w.Bias is not null) TensorPrimitives.Add(di, w.Bias, di);
        }
    }

    /// <summary>dst = (x − mean) / sqrt(var + eps) * w + b, row by row.</summary>
    public static void LayerNorm(ReadOnlySpan<float> x, int rows, int d, NormWeight w, float eps, Span<float> dst)
    {
        for (int i = 0; i < rows; i++)
        {
            var xi = x.Slice(i * d, d);
            var di = dst.Slice(i * d, d);
            double sum = 0;
            foreach (var v in xi) sum += v;
            float mean = (float)(sum / d);
            TensorPrimitives.Subtract(xi, mean, di);
            double ss = 0;
            foreach (var v in di) ss += (double)v * v;
            float scale = (float)(1.0 / Math.Sqrt(ss / d + eps));
            TensorPrimitives.Multiply(di, scale, di);
            TensorPrimitives.Multiply(di, w.Weight, di);
            if (w.Bias is not null) TensorPrimitives.Add(di, w.Bias, di);
        }
    }

    /// <summary>gate = silu(gate) * up, element-wise.</summary>
    public static void SwiGlu(Span<float> gate, ReadOnlySpan<float> up)
    {
        for (int i = 0; i < gate.Length; i++)
        {
            float g = gate[i];
            gate[i] = g / (1f + MathF.Exp(-g)) * up[i];
        }
    }

    /// <summary>GELU, tanh approximation (GPT-2's gelu_new).</summary>
    public static void GeluTanh(Span<float> x)
    {
        const float C = 0.7978845608028654f; // sqrt(2/pi)
        for (int i = 0; i < x.Length; i++)
        {
            float v = x[i];
            x[i] = 0.5f * v * (1f + MathF.Tanh(C * (v + 0.044715f * v * v * v)));
        }
    }

    /// <summary>
    /// Rotates one head vector in place by the angles of its position. <paramref name="cos"/> and <paramref name="sin"/>
    /// hold head_dim/2 values for that position.
    /// </summary>
    public static void Rope(Span<float> head, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin, RopeStyle style)
    {
        int half = cos.Length;
        if (style == RopeStyle.Interleaved)
        {
            for (int i = 0; i < half; i++)
            {
                float x0 = head[2 * i], x1 = head[2 * i + 1];
                head[2 * i] = x0 * cos[i] - x1 * sin[i];
                head[2 * i + 1] = x0 * sin[i] + x1 * cos[i];
            }
        }
        else
        {
            for (int i = 0; i < half; i++)
            {
                float x0 = head[i], x1 = head[i + half];
                head[i] = x0 * cos[i] - x1 * sin[i];
                head[i + half] = x0 * sin[i] + x1 * cos[i];
            }
        }
    }

    /// <summary>
    /// Fills cos/sin tables [positions, headDim/2] the way ggml does (ggml_rope_cache_init): θ starts at the position
    /// and is multiplied by base^(−2/d) once per pair in F32, so angles match llama.cpp's to the last bit of θ.
    /// </summary>
    public static void RopeTable(int firstPosition, int positions, int headDim, float theta, Span<float> cos, Span<float> sin)
    {
        int half = headDim / 2;
        float scale = MathF.Pow(theta, -2f / headDim);
        for (int p = 0; p < positions; p++)
        {
            float t = firstPosition + p;
            for (int i = 0; i < half; i++)
            {
                cos[p * half + i] = (float)Math.Cos(t);
                sin[p * half + i] = (float)Math.Sin(t);
                t *= scale;
            }
        }
    }
}
