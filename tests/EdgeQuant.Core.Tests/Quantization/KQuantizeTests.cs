using System.Runtime.InteropServices;
using EdgeQuant.Core.Quantization;
using EdgeQuant.Core.Tensors;

namespace EdgeQuant.Core.Tests.Quantization;

/// <summary>
/// Q2_K, Q4_K and Q5_K against the real ggml byte for byte: <see cref="Quantize.Rows"/> (threaded, vector search)
/// against ggml_quantize_chunk with and without an importance vector, the scalar mirrors (QuantizeRowReference,
/// QuantizeRowWeightedReference) and the vector rows one row at a time, on rows chosen to reach every branch of
/// make_qkx2_quants, make_qkx3_quants and make_qp_quants: flat groups, whole zero super-blocks, one sign only,
/// magnitudes from 1e-38 to 3e9, groups of very different sizes (scales and mins clipped at 63 or 15), importance with
/// zeros up to whole zero groups.
/// </summary>
public class KQuantizeTests
{
    public static TheoryData<TensorType> Types => new() { TensorType.Q2_K, TensorType.Q4_K, TensorType.Q5_K };

    private static readonly int[] RowLengths = [256, 512, 2304];

    /// <summary>The legacy quantizers' row kinds plus ones aimed at the super-block structure.</summary>
    private static IEnumerable<(string Name, Func<Random, int, float[]> Make)> Kinds()
    {
        foreach (var kind in QuantizeTests.Kinds()) yield return kind;
        var gauss = QuantizeTests.Gauss;
        yield return ("gaussian with outliers", (r, n) => QuantizeTests.Fill(n, i => r.Next(50) == 0 ? 30f * gauss(r) : gauss(r) * 0.02f));
        yield return ("zero super-blocks", (r, n) => QuantizeTests.Fill(n, i => (i / 256) % 2 == 0 ? 0f : gauss(r) * 0.1f));
        yield return ("constant groups", (r, n) => { var c = QuantizeTests.Fill(n / 16, _ => gauss(r)); return QuantizeTests.Fill(n, i => (i / 16) % 3 == 0 ? c[i / 16] : gauss(r)); });
        yield return ("negative only", (r, n) => QuantizeTests.Fill(n, _ => -(float)r.NextDouble() - 0.01f));
        yield return ("negative gaussian magnitudes", (r, n) => QuantizeTests.Fill(n, _ => -MathF.Abs(gauss(r)) * 0.05f));
        yield return ("1e-20", (r, n) => QuantizeTests.Fill(n, _ => gauss(r) * 1e-20f));
        yield return ("large", (r, n) => QuantizeTests.Fill(n, _ => gauss(r) * 1e5f));
        // Group scales spanning decades: the smaller groups' 4/6-bit scales round to 0 and keep their search levels.
        yield return ("groups of different sizes", (r, n) => QuantizeTests.Fill(n, i => gauss(r) * MathF.Pow(10f, (i / 16) % 5 - 3)));
        yield return ("one value per group", (r, n) => QuantizeTests.Fill(n, i => i % 16 == 5 ? gauss(r) : 0f));
        yield return ("two levels", (r, n) => QuantizeTests.Fill(n, _ => r.Next(2) == 0 ? 0.25f : -0.75f));
        // Export refuses non-finite weights unless --allow-nonfinite; then ggml's arithmetic on them is mirrored too.
        yield return ("non-finite", (r, n) => QuantizeTests.Fill(n, i => (i % 97) switch { 3 => float.NaN, 40 => float.PositiveInfinity, 77 => float.NegativeInfinity, _ => gauss(r) * 0.05f }));
    }

    /// <summary>imatrix-like importance, or one with whole zero groups and a zero super-block (weights all 0).</summary>
    private static float[] Importance(Random rng, int n, bool zeroGroups) =>
        zeroGroups
            ? QuantizeTests.Fill(n, i => i < 256 && n > 256 ? 0f : (i / 16) % 4 == 1 ? 0f : MathF.Pow(10f, (float)rng.NextDouble() * 3 - 2))
            : QuantizeTests.Importance(rng, n);

    [GgmlTheory]
    [MemberData(nameof(Types))]
    public void Rows_equal_ggml_quantize_chunk_without_importance(TensorType type) => CompareWithChunk(type, weighted: false);

    [GgmlTheory]
    [MemberData(nameof(Types))]
    public void Rows_equal_ggml_quantize_chunk_with_importance(TensorType type) => CompareWithChunk(type, weighted: true);

    private static void CompareWithChunk(TensorType type, bool weighted)
    {
        var rng = new Random(24500 + (int)type * 2 + (weighted ? 1 : 0));
        foreach (int n in RowLengths)
        {
            foreach (var (name, make) in Kinds())
            {
                int rows = n >= 2048 ? 3 : 7;
                var src = new float[rows * n];
                for (int r = 0; r < rows; r++) make(rng, n).CopyTo(src, r * n);
                foreach (bool zeroGroups in weighted ? new[] { false, true } : [false])
                {
                    float[]? importance = weighted ? Importance(rng, n, zeroGroups) : null;
                    var expected = GgmlQuantizeNative.QuantizeChunk(type, src, rows, n, importance);
                    var actual = new byte[expected.Length];
                    Assert.Equal(expected.Length, Quantize.Rows(type, src, actual, rows, n, importance, threads: 2));
                    AssertBytes(type, $"{name}, rows {rows} x {n}, {(weighted ? zeroGroups ? "with zero-group importance" : "with importance" : "without importance")}", expected, actual);
                }
            }
        }
    }

    [GgmlTheory]
    [MemberData(nameof(Types))]
    public void Many_rows_split_over_threads_equal_ggml(TensorType type)
    {
        // 192 rows of 512 make six of the driver's row chunks, so the threads really share the matrix.
        var rng = new Random(24550 + (int)type);
        const int Rows = 192, N = 512;
        var src = QuantizeTests.Fill(Rows * N, i => QuantizeTests.Gauss(rng) * (0.01f + (i / N) % 7 * 0.02f));
        var w = QuantizeTests.Importance(rng, N);
        foreach (var importance in new[] { null, w })
        {
            var expected = GgmlQuantizeNative.QuantizeChunk(type, src, Rows, N, importance);
            foreach (int threads in new[] { 1, 2, 3 })
            {
                var actual = new byte[expected.Length];
                Assert.Equal(expected.Length, Quantize.Rows(type, src, actual, Rows, N, importance, threads));
                AssertBytes(type, $"{threads} threads, {(importance is null ? "without" : "with")} importance", expected, actual);
            }
        }
    }

    [GgmlTheory]
    [MemberData(nameof(Types))]
    public void Row_reference_and_fast_path_equal_ggml_quantize_row_ref(TensorType type)
    {
        var rng = new Random(24600 + (int)type);
        foreach (int n in RowLengths)
        {
            foreach (var (name, make) in Kinds())
            {
                var x = make(rng, n);
                var expected = GgmlNative.QuantizeRowReference(type, x);
                AssertBytes(type, $"reference, {name}, {n}", expected, Ours(type, x, null, reference: true));
                AssertBytes(type, $"fast path, {name}, {n}", expected, Ours(type, x, null, reference: false));
            }
        }
    }

    [GgmlTheory]
    [MemberData(nameof(Types))]
    public void Weighted_row_reference_and_fast_path_equal_ggml(TensorType type)
    {
        var rng = new Random(24700 + (int)type);
        foreach (int n in RowLengths)
        {
            foreach (var (name, make) in Kinds())
            {
                var x = make(rng, n);
                foreach (bool zeroGroups in new[] { false, true })
                {
                    var w = Importance(rng, n, zeroGroups);
                    var expected = GgmlQuantizeNative.QuantizeChunk(type, x, 1, n, w);
                    AssertBytes(type, $"weighted reference, {name}, {n}, zero groups {zeroGroups}", expected, Ours(type, x, w, reference: true));
                    AssertBytes(type, $"weighted fast path, {name}, {n}, zero groups {zeroGroups}", expected, Ours(type, x, w, reference: false));
                }
            }
        }
    }

    [Theory]
    [MemberData(nameof(Types))]
    public void Fast_path_equals_the_scalar_reference_on_many_random_blocks(TensorType type)
    {
        // No ggml needed: the lane search against the scalar mirror on enough super-blocks to meet rare ties.
        var rng = new Random(24800 + (int)type);
        foreach (float scale in new[] { 1e-3f, 0.05f, 1f, 300f })
        {
            const int N = 256 * 64;
            var x = QuantizeTests.Fill(N, _ => QuantizeTests.Gauss(rng) * scale * (rng.Next(16) == 0 ? 8 : 1));
            var w = QuantizeTests.Importance(rng, N);
            AssertBytes(type, $"scale {scale}", Ours(type, x, null, reference: true), Ours(type, x, null, reference: false));
            AssertBytes(type, $"scale {scale}, weighted", Ours(type, x, w, reference: true), Ours(type, x, w, reference: false));
        }
    }

    [Theory]
    [InlineData(16, 3, -0.5f, 0.1f, 15, true)]
    [InlineData(32, 15, -1f, 0.1f, 20, false)]
    [InlineData(32, 31, -0.5f, 0.1f, 15, false)]
    [InlineData(16, 3, -0.9f, 0.05f, 36, false)]
    [InlineData(32, 15, -0.9f, 0.05f, 36, false)]
    [InlineData(32, 31, -0.9f, 0.05f, 36, false)]
    public unsafe void Lane_search_returns_the_scalar_search_floats(int n, int nmax, float rmin, float rdelta, int nstep, bool useMad)
    {
        // The vector search against make_qkx2_quants' scalar mirror, group by group: same scale and min bits, same levels.
        var rng = new Random(25000 + n + nmax + nstep);
        var L1 = new byte[n];
        var L2 = new byte[n];
        var aux = new byte[n];
        for (int t = 0; t < 4000; t++)
        {
            float scale = MathF.Pow(10f, rng.Next(-6, 4));
            var x = QuantizeTests.Fill(n, _ => QuantizeTests.Gauss(rng) * scale * (rng.Next(16) == 0 ? 8 : 1) + (t % 3 == 0 ? scale : 0));
            var w = t % 2 == 0 ? x.Select(MathF.Abs).ToArray() : QuantizeTests.Importance(rng, n);
            float s1, s2, m1, m2;
            fixed (float* xp = x)
            fixed (float* wp = w)
            fixed (byte* l1 = L1)
            fixed (byte* l2 = L2)
            fixed (byte* a = aux)
            {
                s1 = QuantMath.MakeQkx2Quants(n, nmax, xp, wp, l1, out m1, a, rmin, rdelta, nstep, useMad);
                s2 = StepLanes.Search(n, nmax, xp, wp, l2, out m2, rmin, rdelta, nstep, useMad);
            }
            Assert.True(BitConverter.SingleToInt32Bits(s1) == BitConverter.SingleToInt32Bits(s2) && BitConverter.SingleToInt32Bits(m1) == BitConverter.SingleToInt32Bits(m2),
                $"group {t}: scalar {s1:R}/{m1:R}, lanes {s2:R}/{m2:R}");
            Assert.Equal(L1, L2);
        }
    }

    [Theory]
    [MemberData(nameof(Types))]
    public void Dequantized_rows_track_the_input_and_importance_lowers_the_weighted_error(TensorType type)
    {
        // Independent of ggml: the relative squared error is what a grid of that many levels gives, and the weighted
        // quantizer reproduces heavily weighted columns better than the plain one.
        var rng = new Random(24900 + (int)type);
        const int N = 2048, Rows = 16;
        var x = QuantizeTests.Fill(N * Rows, _ => QuantizeTests.Gauss(rng) * 0.05f);
        var importance = QuantizeTests.Fill(N, i => i % 32 < 4 ? 50f : 0.1f + (float)rng.NextDouble());
        var ones = QuantizeTests.Fill(N, _ => 1f);
        double plain = WeightedError(type, x, Rows, N, ones, importance: null);
        double maxRel = type switch { TensorType.Q2_K => 0.15, TensorType.Q4_K => 1e-2, _ => 3e-3 };
        double sumX2 = x.Sum(v => (double)v * v);
        Assert.True(plain / sumX2 < maxRel, $"{type}: relative squared error {plain / sumX2}");
        double weightedPlain = WeightedError(type, x, Rows, N, importance, importance: null);
        double weighted = WeightedError(type, x, Rows, N, importance, importance);
        Assert.True(weighted < weightedPlain * 0.9, $"{type}: weighted error {weighted} vs plain {weightedPlain}");
    }

    [Fact]
    public void Bad_arguments_are_refused()
    {
        var x = new float[512];
        var q = new byte[2 * 176];
        foreach (var type in new[] { TensorType.Q2_K, TensorType.Q4_K, TensorType.Q5_K })
        {
            Assert.True(Quantize.IsSupported(type));
            Assert.Throws<ArgumentException>(() => Quantize.Rows(type, x, q, 2, 128));          // not whole super-blocks
            Assert.Throws<ArgumentException>(() => Quantize.Rows(type, x, q, 3, 256));          // source too short
            Assert.Throws<ArgumentException>(() => Quantize.Rows(type, x, q[..100], 2, 256));   // destination too short
            Assert.Throws<ArgumentException>(() => Quantize.Rows(type, x, q, 2, 256, new float[128])); // importance length
            Assert.Throws<ArgumentOutOfRangeException>(() => Quantize.Rows(type, x, q, -1, 256));
            Assert.Equal(0, Quantize.Rows(type, x, q, 0, 256));
        }
        Assert.Throws<ArgumentException>(() => Q4_K.QuantizeRowReference(x, new BlockQ4_K[1]));
        Assert.Throws<ArgumentException>(() => Q5_K.QuantizeRowWeighted(x, new BlockQ5_K[2], new float[256]));
        Assert.Throws<ArgumentException>(() => Q2_K.QuantizeRowWeightedReference(x.AsSpan(0, 300), new BlockQ2_K[1], new float[300]));
    }

    private static double WeightedError(TensorType type, float[] x, int rows, int n, float[] weight, float[]? importance)
    {
        var info = TensorTypes.Get(type);
        var q = new byte[x.Length / info.BlockSize * info.BlockBytes];
        Quantize.Rows(type, x, q, rows, n, importance);
        var y = new float[x.Length];
        Dequantize.Row(type, q, y);
        double e = 0;
        for (int i = 0; i < x.Length; i++) e += weight[i % n] * (double)(x[i] - y[i]) * (x[i] - y[i]);
        return e;
    }

    /// <summary>One row through our row functions: reference or fast, with importance when <paramref name="w"/> is given.</summary>
    private static byte[] Ours(TensorType type, float[] x, float[]? w, bool reference)
    {
        var dst = new byte[x.Length / 256 * TensorTypes.Get(type).BlockBytes];
        var span = dst.AsSpan();
        switch (type, w is null, reference)
        {
            case (TensorType.Q2_K, true, true): Q2_K.QuantizeRowReference(x, MemoryMarshal.Cast<byte, BlockQ2_K>(span)); break;
            case (TensorType.Q2_K, true, false): Q2_K.QuantizeRow(x, MemoryMarshal.Cast<byte, BlockQ2_K>(span)); break;
            case (TensorType.Q2_K, false, true): Q2_K.QuantizeRowWeightedReference(x, MemoryMarshal.Cast<byte, BlockQ2_K>(span), w); break;
            case (TensorType.Q2_K, false, false): Q2_K.QuantizeRowWeighted(x, MemoryMarshal.Cast<byte, BlockQ2_K>(span), w); break;
            case (TensorType.Q4_K, true, true): Q4_K.QuantizeRowReference(x, MemoryMarshal.Cast<byte, BlockQ4_K>(span)); break;
            case (TensorType.Q4_K, true, false): Q4_K.QuantizeRow(x, MemoryMarshal.Cast<byte, BlockQ4_K>(span)); break;
            case (TensorType.Q4_K, false, true): Q4_K.QuantizeRowWeightedReference(x, MemoryMarshal.Cast<byte, BlockQ4_K>(span), w); break;
            case (TensorType.Q4_K, false, false): Q4_K.QuantizeRowWeighted(x, MemoryMarshal.Cast<byte, BlockQ4_K>(span), w); break;
            case (TensorType.Q5_K, true, true): Q5_K.QuantizeRowReference(x, MemoryMarshal.Cast<byte, BlockQ5_K>(span)); break;
            case (TensorType.Q5_K, true, false): Q5_K.QuantizeRow(x, MemoryMarshal.Cast<byte, BlockQ5_K>(span)); break;
            case (TensorType.Q5_K, false, true): Q5_K.QuantizeRowWeightedReference(x, MemoryMarshal.Cast<byte, BlockQ5_K>(span), w); break;
            case (TensorType.Q5_K, false, false): Q5_K.QuantizeRowWeighted(x, MemoryMarshal.Cast<byte, BlockQ5_K>(span), w); break;
            default: throw new NotSupportedException(type.ToString());
        }
        return dst;
    }

    private static void AssertBytes(TensorType type, string what, byte[] expected, byte[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        int bb = TensorTypes.Get(type).BlockBytes;
        for (int i = 0; i < expected.Length; i++)
            if (expected[i] != actual[i])
                Assert.Fail($"{type} {what}: first difference in block {i / bb} byte {i % bb}: ggml {Convert.ToHexString(expected, i / bb * bb, bb)}, ours {Convert.ToHexString(actual, i / bb * bb, bb)}");
    }
}
