using System.Runtime.InteropServices;
using EdgeQuant.Core.Quantization;
using EdgeQuant.Core.Tensors;

namespace EdgeQuant.Core.Tests.Quantization;

/// <summary>
/// Q3_K against the real ggml byte for byte: <see cref="Quantize.Rows"/> (threaded, lane-parallel searches) against
/// ggml_quantize_chunk with and without an importance vector (quantize_row_q3_K_ref / quantize_row_q3_K_impl), the
/// scalar mirrors one row at a time against quantize_row_q3_K_ref and ggml_quantize_chunk, and the fast rows against
/// the scalar mirrors on many random blocks. Rows are chosen to reach every branch: make_q3_quants' refinement
/// (accepted and rejected moves, early exit), all-zero and flat groups and blocks, group scales that round to 0 (the
/// search's levels are kept), one sign only, magnitudes from 1e-38 to 3e9 (x^2 underflows, sums overflow), importance
/// with zeros up to whole zero blocks. Row lengths with an odd number of blocks take the one-block remainder path.
/// </summary>
public class Q3KQuantizeTests
{
    private const int BlockBytes = 110;
    private static readonly int[] RowLengths = [256, 512, 768, 2304];

    private static IEnumerable<(string Name, Func<Random, int, float[]> Make)> Kinds()
    {
        foreach (var kind in QuantizeTests.Kinds()) yield return kind;
        var gauss = QuantizeTests.Gauss;
        var fill = QuantizeTests.Fill;
        yield return ("gaussian with outliers", (r, n) => fill(n, i => r.Next(40) == 0 ? 25f * gauss(r) : gauss(r) * 0.02f));
        yield return ("zero blocks", (r, n) => fill(n, i => (i / 256) % 2 == 0 ? 0f : gauss(r) * 0.1f));
        yield return ("zero groups", (r, n) => fill(n, i => (i / 16) % 3 == 1 ? 0f : gauss(r)));
        yield return ("constant groups", (r, n) => { var c = fill(n / 16, _ => gauss(r)); return fill(n, i => (i / 16) % 2 == 0 ? c[i / 16] : gauss(r)); });
        yield return ("constant blocks", (r, n) => { var c = fill(n / 256, _ => gauss(r)); return fill(n, i => c[i / 256]); });
        yield return ("negative only", (r, n) => fill(n, _ => -(float)r.NextDouble() - 0.01f));
        yield return ("negative gaussian magnitudes", (r, n) => fill(n, _ => -MathF.Abs(gauss(r)) * 0.05f));
        yield return ("1e-20", (r, n) => fill(n, _ => gauss(r) * 1e-20f));
        yield return ("large", (r, n) => fill(n, _ => gauss(r) * 1e5f));
        yield return ("3e19 (x^2 overflows)", (r, n) => fill(n, _ => gauss(r) * 3e19f));
        yield return ("groups of different sizes", (r, n) => fill(n, i => gauss(r) * MathF.Pow(10f, (i / 16) % 5 - 3)));
        yield return ("one value per group", (r, n) => fill(n, i => i % 16 == 5 ? gauss(r) : 0f));
        yield return ("two levels", (r, n) => fill(n, _ => r.Next(2) == 0 ? 0.25f : -0.75f));
        yield return ("uniform", (r, n) => fill(n, _ => (float)r.NextDouble() * 2 - 1));
        // Non-finite weights (quantize --allow-nonfinite): ggml's arithmetic on them is mirrored too.
        yield return ("planted infinities", (r, n) => fill(n, i => i % 97 == 5 ? (i % 2 == 0 ? float.PositiveInfinity : float.NegativeInfinity) : gauss(r)));
        yield return ("planted NaN", (r, n) => fill(n, i => i % 89 == 7 ? float.NaN : gauss(r)));
    }

    /// <summary>imatrix-like importance (a few zero columns), or one with whole zero groups and a zero block.</summary>
    private static float[] Importance(Random rng, int n, bool zeroGroups) =>
        zeroGroups
            ? QuantizeTests.Fill(n, i => i < 256 && n > 256 ? 0f : (i / 16) % 4 == 1 ? 0f : MathF.Pow(10f, (float)rng.NextDouble() * 3 - 2))
            : QuantizeTests.Importance(rng, n);

    [GgmlFact]
    public void Rows_equal_ggml_quantize_chunk_without_importance() => CompareWithChunk(weighted: false, zeroGroups: false);

    [GgmlFact]
    public void Rows_equal_ggml_quantize_chunk_with_importance() => CompareWithChunk(weighted: true, zeroGroups: false);

    [GgmlFact]
    public void Rows_equal_ggml_quantize_chunk_with_importance_that_has_zero_groups() => CompareWithChunk(weighted: true, zeroGroups: true);

    private static void CompareWithChunk(bool weighted, bool zeroGroups)
    {
        var rng = new Random(33000 + (weighted ? 1 : 0) + (zeroGroups ? 2 : 0));
        foreach (int n in RowLengths)
        {
            foreach (var (name, make) in Kinds())
            {
                int rows = n >= 2048 ? 3 : 5;
                var src = new float[rows * n];
                for (int r = 0; r < rows; r++) make(rng, n).CopyTo(src, r * n);
                float[]? importance = weighted ? Importance(rng, n, zeroGroups) : null;
                var expected = GgmlQuantizeNative.QuantizeChunk(TensorType.Q3_K, src, rows, n, importance);
                var actual = new byte[expected.Length];
                Assert.Equal(expected.Length, Quantize.Rows(TensorType.Q3_K, src, actual, rows, n, importance, threads: 2));
                AssertBytes($"{name}, rows {rows} x {n}, {(weighted ? "with" : "without")} importance", expected, actual);
            }
        }
    }

    [GgmlFact]
    public void Row_functions_equal_ggml_one_row_at_a_time()
    {
        var rng = new Random(33100);
        foreach (int n in RowLengths)
        {
            foreach (var (name, make) in Kinds())
            {
                var x = make(rng, n);
                var expected = GgmlNative.QuantizeRowReference(TensorType.Q3_K, x);
                AssertBytes($"reference, {name}, {n}", expected, Ours(x, null, reference: true));
                AssertBytes($"fast path, {name}, {n}", expected, Ours(x, null, reference: false));
                foreach (bool zeroGroups in new[] { false, true })
                {
                    var w = Importance(rng, n, zeroGroups);
                    var expectedWeighted = GgmlQuantizeNative.QuantizeChunk(TensorType.Q3_K, x, 1, n, w);
                    AssertBytes($"weighted reference, {name}, {n}, zero groups {zeroGroups}", expectedWeighted, Ours(x, w, reference: true));
                    AssertBytes($"weighted fast path, {name}, {n}, zero groups {zeroGroups}", expectedWeighted, Ours(x, w, reference: false));
                }
            }
        }
    }

    [Fact]
    public void Fast_path_equals_the_scalar_reference_on_many_random_blocks()
    {
        // No ggml needed: the lane-parallel searches against the scalar mirrors on enough blocks (4 x 2048) to meet
        // rare cases: refinement passes that run to the limit of five, near-ties between candidate scales.
        var rng = new Random(33200);
        foreach (float scale in new[] { 1e-3f, 0.05f, 1f, 300f })
        {
            const int N = 256 * 64;
            for (int row = 0; row < 8; row++)
            {
                var x = QuantizeTests.Fill(N, _ => QuantizeTests.Gauss(rng) * scale * (rng.Next(16) == 0 ? 8 : 1));
                var w = Importance(rng, N, zeroGroups: row % 4 == 3);
                AssertBytes($"scale {scale} row {row}", Ours(x, null, reference: true), Ours(x, null, reference: false));
                AssertBytes($"scale {scale} row {row} weighted", Ours(x, w, reference: true), Ours(x, w, reference: false));
            }
        }
    }

    [Fact]
    public void Dequantized_rows_track_the_input_and_importance_lowers_the_weighted_error()
    {
        // Independent of ggml: Q3_K's 8 levels per group give a relative squared error around 3-4% on Gaussian
        // weights, and the imatrix search lowers the error weighted by that importance.
        var rng = new Random(33300);
        const int N = 2048, Rows = 16;
        var x = QuantizeTests.Fill(N * Rows, _ => QuantizeTests.Gauss(rng) * 0.05f);
        var importance = QuantizeTests.Fill(N, i => i % 16 < 3 ? 50f : 0.1f + (float)rng.NextDouble());
        double plain = WeightedError(x, Rows, N, importance, useImportance: false, out double relative);
        double weighted = WeightedError(x, Rows, N, importance, useImportance: true, out _);
        Assert.True(relative < 0.06, $"relative squared error {relative}");
        Assert.True(weighted < plain * 0.9, $"weighted error {weighted} vs plain {plain}");
    }

    [Fact]
    public void Bad_arguments_are_refused()
    {
        var x = new float[512];
        var q = new byte[2 * BlockBytes];
        Assert.True(Quantize.IsSupported(TensorType.Q3_K));
        Assert.Throws<ArgumentException>(() => Q3_K.Quantize(x, q, 1, 384));                   // not whole blocks
        Assert.Throws<ArgumentException>(() => Q3_K.Quantize(x, q, 2, 512));                   // source too short
        Assert.Throws<ArgumentException>(() => Q3_K.Quantize(x, q[..200], 1, 512));            // destination too short
        Assert.Throws<ArgumentException>(() => Q3_K.Quantize(x, q, 1, 512, new float[256]));  // importance length
        Assert.Throws<ArgumentException>(() => Q3_K.QuantizeRowWeighted(x, MemoryMarshal.Cast<byte, BlockQ3_K>(q.AsSpan()), new float[256]));
        Assert.Throws<ArgumentException>(() => Q3_K.QuantizeRow(x, MemoryMarshal.Cast<byte, BlockQ3_K>(q.AsSpan(0, BlockBytes))));
        Assert.Equal(0, Q3_K.Quantize(x, q, 0, 512));
    }

    private static double WeightedError(float[] x, int rows, int n, float[] importance, bool useImportance, out double relative)
    {
        var q = new byte[x.Length / 256 * BlockBytes];
        Quantize.Rows(TensorType.Q3_K, x, q, rows, n, useImportance ? importance : default);
        var y = new float[x.Length];
        Dequantize.Row(TensorType.Q3_K, q, y);
        double e = 0, e2 = 0, x2 = 0;
        for (int i = 0; i < x.Length; i++)
        {
            double d = x[i] - y[i];
            e += importance[i % n] * d * d;
            e2 += d * d;
            x2 += x[i] * (double)x[i];
        }
        relative = e2 / x2;
        return e;
    }

    private static byte[] Ours(float[] x, float[]? w, bool reference)
    {
        var dst = new byte[x.Length / 256 * BlockBytes];
        var blocks = MemoryMarshal.Cast<byte, BlockQ3_K>(dst.AsSpan());
        switch (w is null, reference)
        {
            case (true, true): Q3_K.QuantizeRowReference(x, blocks); break;
            case (true, false): Q3_K.QuantizeRow(x, blocks); break;
            case (false, true): Q3_K.QuantizeRowWeightedReference(x, blocks, w!); break;
            default: Q3_K.QuantizeRowWeighted(x, blocks, w!); break;
        }
        return dst;
    }

    private static void AssertBytes(string what, byte[] expected, byte[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            if (expected[i] != actual[i])
                Assert.Fail($"Q3_K {what}: first difference in block {i / BlockBytes} byte {i % BlockBytes}: ggml {Convert.ToHexString(expected, i / BlockBytes * BlockBytes, BlockBytes)}, ours {Convert.ToHexString(actual, i / BlockBytes * BlockBytes, BlockBytes)}");
    }
}
