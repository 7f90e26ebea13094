using System.Runtime.InteropServices;
using EdgeQuant.Core.Quantization;

namespace EdgeQuant.Kernels.FeatureRunner;

public static partial class KernelChecks
{
    /// <summary>
    /// Q3_K's vector rows (32 lanes of 512-bit or 256-bit vectors, or the scalar mirror when neither is accelerated)
    /// against the scalar mirror of ggml's code, with and without importance, on row lengths with an even and an odd
    /// number of blocks. The mirror itself is checked against libggml-base in EdgeQuant.Core.Tests.
    /// </summary>
    public static void Q3K()
    {
        var rng = new Random(31337);
        foreach (int n in new[] { 256, 768, 4096 })
        {
            foreach (float scale in new[] { 1e-20f, 0.02f, 1f, 3e4f })
            {
                var x = new float[n];
                var w = new float[n];
                for (int i = 0; i < n; i++)
                {
                    float g = (float)(Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble()));
                    x[i] = (i / 16) % 7 == 3 ? 0f : g * scale * (rng.Next(20) == 0 ? 10 : 1);
                    w[i] = i % 37 == 0 ? 0f : MathF.Pow(10f, (float)rng.NextDouble() * 3 - 2);
                }
                foreach (bool weighted in new[] { false, true })
                {
                    var expected = new byte[n / 256 * 110];
                    var actual = new byte[expected.Length];
                    var e = MemoryMarshal.Cast<byte, BlockQ3_K>(expected.AsSpan());
                    var a = MemoryMarshal.Cast<byte, BlockQ3_K>(actual.AsSpan());
                    if (weighted)
                    {
                        Q3_K.QuantizeRowWeightedReference(x, e, w);
                        Q3_K.QuantizeRowWeighted(x, a, w);
                    }
                    else
                    {
                        Q3_K.QuantizeRowReference(x, e);
                        Q3_K.QuantizeRow(x, a);
                    }
                    int at = expected.AsSpan().CommonPrefixLength(actual);
                    if (at != expected.Length)
                        throw new KernelCheckException($"q3_k n {n} scale {scale} weighted {weighted}: byte {at} of block {at / 110} differs from the scalar mirror");
                }
            }
        }
    }
}
