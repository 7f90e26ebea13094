using EdgeQuant.Compression.OnnxQuant;
using EdgeQuant.Core.Errors;
using Xunit.Abstractions;

namespace EdgeQuant.Compression.Tests.OnnxQuant;

/// <summary>
/// 4-bit block quantization in MatMulNBits layout. The layout itself is checked against the real ONNX Runtime kernel in
/// EdgeQuant.Export.Tests (MatMulNBitsTests); here: the rounding formulas on hand-worked blocks, padding, packing of
/// zero points, and that importance-weighted rounding beats round-to-nearest on the error it minimizes.
/// </summary>
public sealed class Int4QuantizationTests(ITestOutputHelper output)
{
    [Fact]
    public void Symmetric_rtn_maps_the_largest_magnitude_to_code_0_and_packs_low_nibble_first()
    {
        // ORT's symmetric rule: m = signed value of largest |w| (here −1), scale = −m/8 = 0.125, code = round(w/scale) + 8.
        var w = new float[32];
        w[0] = -1f; w[1] = 0.5f; w[2] = 0.25f; w[3] = 0.3f; w[4] = 0.9f; w[5] = 0.0625f;
        var q = Int4Quantization.Quantize(w, 1, 32, 32, symmetric: true);
        Assert.True(q.Symmetric);
        Assert.Equal(0.125f, q.Scales[0]);
        // 0.3/0.125 = 2.4 → 2; 0.9/0.125 = 7.2 → 7 (+8 = 15); 0.0625/0.125 = 0.5 rounds away from zero → 1.
        Assert.Equal([0, 12, 10, 10, 15, 9, 8], Enumerable.Range(0, 7).Select(i => q.Code(0, i)));
        Assert.Equal(0x0C << 4 | 0x0, q.Data[0]); // element 0 low nibble, element 1 high nibble
        Assert.Equal(16, q.Data.Length);
        var deq = q.Dequantize();
        Assert.Equal([-1f, 0.5f, 0.25f, 0.25f, 0.875f, 0.125f, 0f], deq[..7]);
    }

    [Fact]
    public void Symmetric_rtn_with_a_positive_extreme_flips_the_scale_sign()
    {
        var w = new float[32];
        w[0] = 2f; w[1] = -2f; w[2] = 1f; // |max| == |min|: ORT picks the minimum (−2) → scale 0.25
        var q = Int4Quantization.Quantize(w, 1, 32, 32, symmetric: true);
        Assert.Equal(0.25f, q.Scales[0]);
        Assert.Equal([15, 0, 12], Enumerable.Range(0, 3).Select(i => q.Code(0, i))); // 2/0.25 + 8 = 16 → clamped 15
        w[1] = -1.5f; // now m = +2 → scale = −0.25, +2 lands on code 0
        q = Int4Quantization.Quantize(w, 1, 32, 32, symmetric: true);
        Assert.Equal(-0.25f, q.Scales[0]);
        Assert.Equal([0, 14, 4], Enumerable.Range(0, 3).Select(i => q.Code(0, i)));
    }

    [Fact]
    public void Asymmetric_rtn_uses_the_range_including_zero_and_packs_zero_points_per_row()
    {
        // Row 0: block 0 in [−0.5, 1] → scale 0.1, zp round(5) = 5; block 1 (8 real values, K = 40) all positive → zp 0.
        // Row 1: all zeros → scale 0, codes = zp 0.
        var w = new float[80];
        w[0] = -0.5f; w[1] = 1f; w[2] = 0.26f; w[3] = 0f;
        w[32] = 0.3f; w[33] = 1.5f; w[39] = 0.75f;
        var q = Int4Quantization.Quantize(w, 2, 40, 32, symmetric: false);
        Assert.False(q.Symmetric);
        Assert.Equal(2, q.BlocksPerRow);
        Assert.Equal(1, q.ZeroPointBytesPerRow);
        Assert.Equal(2, q.ZeroPoints!.Length);
        Assert.Equal(1.5f / 15f, q.Scales[0], 7);
        int zp0 = q.ZeroPoint(0, 0);
        Assert.Equal(5, zp0);
        Assert.Equal(0, q.ZeroPoint(0, 1));
        Assert.Equal((byte)(5 | 0 << 4), q.ZeroPoints[0]);
        Assert.Equal([0, 15, 8, 5], Enumerable.Range(0, 4).Select(i => q.Code(0, i))); // 0.26/0.1 = 2.6 → 3 (+5)
        Assert.Equal(0.1f, q.Scales[1], 6);
        Assert.Equal([3, 15], new[] { q.Code(0, 32), q.Code(0, 33) });
        // Padding (elements 40..63 of row 0's second block) holds the block's zero point: dequantizes to exactly 0.
        for (int c = 40; c < 64; c++) Assert.Equal(q.ZeroPoint(0, 1), q.Code(0, c));
        Assert.Equal(0f, q.Scales[2]);
        Assert.All(q.Dequantize()[40..], v => Assert.Equal(0f, v));
    }

    [Theory]
    [InlineData(32, true)]
    [InlineData(32, false)]
    [InlineData(64, true)]
    [InlineData(64, false)]
    [InlineData(128, true)]
    [InlineData(128, false)]
    public void Padding_of_a_partial_last_block_is_the_zero_point(int block, bool symmetric)
    {
        var (w, _) = Synthetic(5, 172, 7);
        var q = Int4Quantization.Quantize(w, 5, 172, block, symmetric);
        int blocks = (172 + block - 1) / block;
        Assert.Equal(blocks, q.BlocksPerRow);
        Assert.Equal(5L * blocks * block / 2, q.Data.Length);
        for (int r = 0; r < 5; r++)
            for (int c = 172; c < blocks * block; c++)
                Assert.Equal(q.ZeroPoint(r, blocks - 1), q.Code(r, c));
        // And the codes stand for the weights: per-block RTN error of 4-bit blocks (with 1% outliers ×6) stays under 25%; wrong codes would be ~100%.
        double err = Math.Sqrt(Int4Quantization.WeightedError(w, q, default) / w.Sum(v => (double)v * v));
        Assert.InRange(err, 0.01, 0.25);
    }

    [Theory]
    [InlineData(32, true)]
    [InlineData(32, false)]
    [InlineData(64, true)]
    [InlineData(64, false)]
    [InlineData(128, true)]
    [InlineData(128, false)]
    public void Importance_weighted_rounding_lowers_the_weighted_error(int block, bool symmetric)
    {
        // Columns of very unequal importance (log-normal, as LLM activations are) and a few outlier weights.
        const int n = 64, k = 256;
        var (w, imp) = Synthetic(n, k, 11 + block);
        var rtn = Int4Quantization.Quantize(w, n, k, block, symmetric);
        var weighted = Int4Quantization.Quantize(w, n, k, block, symmetric, imp);
        double eRtn = Int4Quantization.WeightedError(w, rtn, imp), eImp = Int4Quantization.WeightedError(w, weighted, imp);
        double plainRtn = Int4Quantization.WeightedError(w, rtn, default), plainImp = Int4Quantization.WeightedError(w, weighted, default);
        output.WriteLine($"block {block} {(symmetric ? "sym" : "asym")}: weighted error RTN {eRtn:G4} → imatrix {eImp:G4} ({eImp / eRtn - 1:P1}); unweighted {plainRtn:G4} → {plainImp:G4}");
        Assert.True(eImp < 0.9 * eRtn, $"weighted error {eImp} is not 10% below RTN's {eRtn}");
        // Per block the search keeps RTN when nothing beats it, so no block may get worse.
        for (int r = 0; r < n; r++)
            for (int b = 0; b < k / block; b++)
            {
                double Block(Int4Matrix q)
                {
                    var deq = q.Dequantize();
                    double s = 0;
                    for (int j = b * block; j < (b + 1) * block; j++) s += imp[j] * Math.Pow(w[r * k + j] - deq[r * k + j], 2);
                    return s;
                }
                Assert.True(Block(weighted) <= Block(rtn) * (1 + 1e-6), $"row {r} block {b} got worse");
            }
    }

    [Fact]
    public void Uniform_or_zero_importance_is_handled()
    {
        var (w, _) = Synthetic(8, 64, 3);
        var ones = Enumerable.Repeat(1f, 64).ToArray();
        var rtn = Int4Quantization.Quantize(w, 8, 64, 32, true);
        var flat = Int4Quantization.Quantize(w, 8, 64, 32, true, ones);
        Assert.True(Int4Quantization.WeightedError(w, flat, ones) <= Int4Quantization.WeightedError(w, rtn, ones));
        // All-zero importance (columns never activated): nothing to weigh, round to nearest.
        var zero = Int4Quantization.Quantize(w, 8, 64, 32, false, new float[64]);
        Assert.Equal(Int4Quantization.Quantize(w, 8, 64, 32, false).Data, zero.Data);
    }

    [Fact]
    public void Bad_input_is_refused()
    {
        var w = new float[64];
        Assert.Contains("block size 16", Assert.Throws<BadInputException>(() => Int4Quantization.Quantize(w, 1, 64, 16, true)).Message);
        Assert.Contains("63 columns", Assert.Throws<BadInputException>(() => Int4Quantization.Quantize(w, 1, 64, 32, true, new float[63], "blk.0.attn_q.weight")).Message);
        var neg = new float[64];
        neg[5] = -1;
        Assert.Contains("column 5", Assert.Throws<BadInputException>(() => Int4Quantization.Quantize(w, 1, 64, 32, true, neg)).Message);
        neg[5] = float.NaN;
        Assert.Throws<BadInputException>(() => Int4Quantization.Quantize(w, 1, 64, 32, true, neg));
        Assert.Throws<InternalFailureException>(() => Int4Quantization.Quantize(w, 2, 64, 32, true));
    }

    /// <summary>Gaussian weights with ~1% outliers ×6, and log-normal column importances.</summary>
    internal static (float[] W, float[] Importance) Synthetic(int n, int k, int seed)
    {
        var rng = new Random(seed);
        double Gauss() => Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
        var w = new float[n * k];
        for (int i = 0; i < w.Length; i++) w[i] = (float)(Gauss() * 0.02 * (rng.NextDouble() < 0.01 ? 6 : 1));
        var imp = new float[k];
        for (int j = 0; j < k; j++) imp[j] = (float)Math.Exp(1.5 * Gauss());
        return (w, imp);
    }
}
