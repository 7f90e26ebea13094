using System.Runtime.InteropServices;
using EdgeQuant.Core.Tensors;
using EdgeQuant.Models.Loading;

namespace EdgeQuant.Models.Tests.Loading;

public class TensorTransformTests
{
    private static float[] Random(int n, int seed)
    {
        var r = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => (float)(r.NextDouble() * 2 - 1)).ToArray();
    }

    private static byte[] Bytes(float[] v) => MemoryMarshal.AsBytes(v.AsSpan()).ToArray();
    private static float[] Floats(byte[] b) => MemoryMarshal.Cast<byte, float>(b).ToArray();

    private static float[] MatVec(float[] w, int rows, int cols, float[] x)
    {
        var y = new float[rows];
        for (int r = 0; r < rows; r++)
        {
            double s = 0;
            for (int c = 0; c < cols; c++) s += w[r * cols + c] * x[c];
            y[r] = (float)s;
        }
        return y;
    }

    /// <summary>HF's apply_rotary_pos_emb: dimension i pairs with i + hd/2 (rotate_half).</summary>
    private static float[] RopeRotateHalf(float[] q, int heads, int hd, int pos)
    {
        var o = (float[])q.Clone();
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < hd / 2; i++)
            {
                double theta = pos * Math.Pow(10000, -2.0 * i / hd);
                float a = q[h * hd + i], b = q[h * hd + i + hd / 2];
                o[h * hd + i] = (float)(a * Math.Cos(theta) - b * Math.Sin(theta));
                o[h * hd + i + hd / 2] = (float)(b * Math.Cos(theta) + a * Math.Sin(theta));
            }
        return o;
    }

    /// <summary>llama.cpp's normal RoPE (and Meta's, and llama2.c's): dimension 2i pairs with 2i + 1.</summary>
    private static float[] RopeInterleaved(float[] q, int heads, int hd, int pos)
    {
        var o = (float[])q.Clone();
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < hd / 2; i++)
            {
                double theta = pos * Math.Pow(10000, -2.0 * i / hd);
                float a = q[h * hd + 2 * i], b = q[h * hd + 2 * i + 1];
                o[h * hd + 2 * i] = (float)(a * Math.Cos(theta) - b * Math.Sin(theta));
                o[h * hd + 2 * i + 1] = (float)(b * Math.Cos(theta) + a * Math.Sin(theta));
            }
        return o;
    }

    private static double Dot(float[] a, float[] b, int offset, int n)
    {
        double s = 0;
        for (int i = 0; i < n; i++) s += (double)a[offset + i] * b[offset + i];
        return s;
    }

    [Theory]
    [InlineData(4, 2, 16, 32)]
    [InlineData(8, 8, 8, 64)]
    [InlineData(6, 3, 10, 24)]
    public void Permuted_weights_with_interleaved_rope_give_the_same_attention_scores_as_hf_weights_with_rotate_half(int heads, int kvHeads, int hd, int embd)
    {
        // An HF checkpoint's q_proj / k_proj (rotate-half layout), made canonical by the loader's transforms.
        var wqHf = Random(heads * hd * embd, 1);
        var wkHf = Random(kvHeads * hd * embd, 2);
        var wq = new byte[wqHf.Length * 4];
        var wk = new byte[wkHf.Length * 4];
        new RopeInterleaveTransform(heads).Apply(Bytes(wqHf), wq, [heads * hd, embd], 4);
        new RopeInterleaveTransform(kvHeads).Apply(Bytes(wkHf), wk, [kvHeads * hd, embd], 4);

        var xq = Random(embd, 3);
        var xk = Random(embd, 4);
        var qHf = RopeRotateHalf(MatVec(wqHf, heads * hd, embd, xq), heads, hd, pos: 7);
        var kHf = RopeRotateHalf(MatVec(wkHf, kvHeads * hd, embd, xk), kvHeads, hd, pos: 3);
        var qC = RopeInterleaved(MatVec(Floats(wq), heads * hd, embd, xq), heads, hd, pos: 7);
        var kC = RopeInterleaved(MatVec(Floats(wk), kvHeads * hd, embd, xk), kvHeads, hd, pos: 3);

        for (int h = 0; h < heads; h++)
        {
            int kvHead = h / (heads / kvHeads);
            double hf = 0, canon = 0;
            for (int i = 0; i < hd; i++)
            {
                hf += (double)qHf[h * hd + i] * kHf[kvHead * hd + i];
                canon += (double)qC[h * hd + i] * kC[kvHead * hd + i];
            }
            Assert.Equal(hf, canon, 1e-4);
        }
        // Not vacuous: the raw layouts really differ.
        Assert.NotEqual(wqHf, Floats(wq));
    }

    [Fact]
    public void Rotate_half_and_interleave_are_inverse_and_match_the_reshape_definition()
    {
        const int heads = 3, hd = 8, cols = 5;
        var src = Random(heads * hd * cols, 9);
        var inter = new byte[src.Length * 4];
        RopeInterleaveTransform.ToInterleaved(Bytes(src), inter, heads * hd, cols * 4, heads);
        var f = Floats(inter);
        // convert_hf_to_gguf: w.reshape(n_head, 2, hd/2, cols).swapaxes(1, 2).reshape(w.shape)
        for (int h = 0; h < heads; h++)
            for (int a = 0; a < 2; a++)
                for (int b = 0; b < hd / 2; b++)
                    for (int c = 0; c < cols; c++)
                        Assert.Equal(src[((h * 2 + a) * (hd / 2) + b) * cols + c], f[((h * (hd / 2) + b) * 2 + a) * cols + c]);
        var back = new byte[inter.Length];
        RopeInterleaveTransform.ToRotateHalf(inter, back, heads * hd, cols * 4, heads);
        Assert.Equal(Bytes(src), back);
    }

    [Theory]
    [InlineData(1, 1, 4)]
    [InlineData(3, 70, 4)]
    [InlineData(65, 33, 2)]
    [InlineData(64, 96, 8)]
    [InlineData(5, 7, 1)]
    public void Transpose_matches_the_naive_definition(int rows, int cols, int elementBytes)
    {
        var src = new byte[rows * cols * elementBytes];
        new Random(rows * 31 + cols).NextBytes(src);
        var dst = new byte[src.Length];
        TransposeTransform.Transpose(src, dst, rows, cols, elementBytes);
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++)
                Assert.Equal(src.AsSpan((r * cols + c) * elementBytes, elementBytes).ToArray(), dst.AsSpan((c * rows + r) * elementBytes, elementBytes).ToArray());
    }

    [Fact]
    public void Model_tensor_reads_a_transposed_f16_conv1d_weight_as_out_by_in()
    {
        // Stored [in=3, out=2] as Conv1D does; canonical [out=2, in=3].
        float[] stored = [1, 2, 3, 4, 5, 6];
        var bytes = new byte[12];
        HalfConversions.F32ToF16(stored, bytes);
        var t = new ModelTensor
        {
            Name = "blk.0.ffn_up.weight",
            Shape = [2, 3],
            Type = TensorType.F16,
            SourceName = "h.0.mlp.c_fc.weight",
            Storage = new ArrayTensorStorage(bytes),
            Transform = TransposeTransform.Instance,
        };
        Assert.Equal(new float[] { 1, 3, 5, 2, 4, 6 }, t.ToFloat32());
        Assert.Equal(new long[] { 3, 2 }, TransposeTransform.Instance.StoredShape(t.Shape));
    }
}
