using System.Runtime.InteropServices;
using EdgeQuant.Core.Quantization;
using EdgeQuant.Core.Tensors;
using EdgeQuant.Testing;

namespace EdgeQuant.Core.Tests.Quantization;

/// <summary>
/// ggml's quantizers in the pinned <c>libggml-base</c> (see <see cref="GgmlNative"/>): <c>ggml_quantize_chunk</c>, the
/// entry point llama.cpp's model quantizer calls per tensor (with or without an imatrix), and
/// <c>ggml_fp32_to_fp16</c>, the scale conversion.
/// </summary>
internal static unsafe class GgmlQuantizeNative
{
    private static readonly Lazy<nint> Handle = new(() =>
        NativeLibrary.Load(GgmlNative.LibraryPath ?? throw new FileNotFoundException("libggml-base.so not found: run `make runtimes` or set EDGEQUANT_RUNTIMES")));

    /// <summary><c>size_t ggml_quantize_chunk(enum ggml_type type, const float *src, void *dst, int64_t start, int64_t nrows, int64_t n_per_row, const float *imatrix)</c>.</summary>
    public static byte[] QuantizeChunk(TensorType type, float[] src, int rows, int rowLength, float[]? importance)
    {
        var info = TensorTypes.Get(type);
        var dst = new byte[(long)rows * (rowLength / info.BlockSize) * info.BlockBytes];
        var fn = (delegate* unmanaged<int, float*, byte*, long, long, long, float*, nuint>)NativeLibrary.GetExport(Handle.Value, "ggml_quantize_chunk");
        nuint written;
        fixed (float* x = src)
        fixed (byte* y = dst)
        fixed (float* w = importance)
            written = fn((int)type, x, y, 0, rows, rowLength, importance is null ? null : w);
        Assert.Equal((nuint)dst.Length, written);
        return dst;
    }

    /// <summary><c>ggml_fp16_t ggml_fp32_to_fp16(float)</c>.</summary>
    public static ushort Fp32ToFp16(float f)
    {
        var fn = (delegate* unmanaged<float, ushort>)NativeLibrary.GetExport(Handle.Value, "ggml_fp32_to_fp16");
        return fn(f);
    }

    /// <summary><c>void ggml_fp32_to_fp16_row(const float *x, ggml_fp16_t *y, int64_t n)</c>.</summary>
    public static void Fp32ToFp16Row(ReadOnlySpan<float> x, Span<ushort> y)
    {
        var fn = (delegate* unmanaged<float*, ushort*, long, void>)NativeLibrary.GetExport(Handle.Value, "ggml_fp32_to_fp16_row");
        fixed (float* xp = x)
        fixed (ushort* yp = y)
            fn(xp, yp, x.Length);
    }
}

/// <summary>Runs when the pinned libggml-base is present; skipped without it, failed without it under CI=true.</summary>
public sealed class GgmlFactAttribute : FactAttribute
{
    public GgmlFactAttribute()
    {
        if (GgmlNative.LibraryPath is null && !SharedData.IsCi)
            Skip = "libggml-base.so not found (run `make runtimes` or set EDGEQUANT_RUNTIMES); under CI=true this fails instead";
    }
}

/// <summary>
/// The quantizers against the real ggml, byte for byte: <see cref="Quantize.Rows"/> (threaded, fast paths) against
/// ggml_quantize_chunk, QuantizeRowReference against quantize_row_*_ref, with and without an importance vector, on rows
/// chosen to hit every branch: ordinary weights, planted zeros of both signs, large and small magnitudes, rows of one
/// repeated value, ties for the largest magnitude, a single outlier.
/// </summary>
public class QuantizeTests
{
    public static TheoryData<TensorType> Types => new() { TensorType.Q8_0, TensorType.Q4_0, TensorType.Q4_1, TensorType.Q5_0, TensorType.Q5_1 };

    private static readonly int[] RowLengths = [32, 64, 96, 256, 1056, 4096];

    /// <summary>Named row generators; each row of a matrix gets its own draw.</summary>
    public static IEnumerable<(string Name, Func<Random, int, float[]> Make)> Kinds()
    {
        yield return ("gaussian", (r, n) => Fill(n, _ => Gauss(r) * 0.02f));
        yield return ("planted zeros", (r, n) => Fill(n, i => (i % 5) switch { 0 => 0f, 1 => -0f, _ => Gauss(r) * 0.05f }));
        yield return ("whole zero blocks", (r, n) => Fill(n, i => (i / 32) % 2 == 0 ? (i % 2 == 0 ? 0f : -0f) : Gauss(r)));
        // Scales beyond fp16 range (d overflows to infinity) and near fp16's subnormals.
        yield return ("huge", (r, n) => Fill(n, _ => Gauss(r) * 3e9f));
        yield return ("small", (r, n) => Fill(n, _ => Gauss(r) * 1e-6f));
        yield return ("tiny", (r, n) => Fill(n, _ => Gauss(r) * 1e-25f));
        // Scales below fp32 normal range: 1/d overflows and C conversions of infinities and NaNs decide the codes.
        yield return ("denormal scale", (r, n) => Fill(n, _ => Gauss(r) * 1e-38f));
        yield return ("all equal", (r, n) => { float v = Gauss(r); return Fill(n, _ => v); });
        yield return ("all equal negative", (r, n) => Fill(n, _ => -0.375f));
        // +a and -a both present: the symmetric types keep the first one met.
        yield return ("magnitude ties", (r, n) => Fill(n, i => i % 7 == 3 ? 0.5f : i % 7 == 5 ? -0.5f : Gauss(r) * 0.1f));
        yield return ("one outlier", (r, n) => Fill(n, i => i % 32 == 17 ? 40f * Gauss(r) : Gauss(r) * 0.01f));
        yield return ("positive only", (r, n) => Fill(n, _ => (float)r.NextDouble() + 0.25f));
        yield return ("on the grid", (r, n) => Fill(n, _ => r.Next(-8, 8) * 0.125f));
    }

    [GgmlTheory]
    [MemberData(nameof(Types))]
    public void Rows_equal_ggml_quantize_chunk_without_importance(TensorType type) => CompareWithChunk(type, weighted: false);

    [GgmlTheory]
    [MemberData(nameof(Types))]
    public void Rows_equal_ggml_quantize_chunk_with_importance(TensorType type) => CompareWithChunk(type, weighted: true);

    private static void CompareWithChunk(TensorType type, bool weighted)
    {
        var rng = new Random(7000 + (int)type * 2 + (weighted ? 1 : 0));
        foreach (int n in RowLengths)
        {
            foreach (var (name, make) in Kinds())
            {
                // Weighted searches overflow float sums (x^2 over a row) for magnitudes like 3e9 squared times 4096:
                // still compared, ggml's arithmetic with infinities is mirrored too.
                int rows = n >= 1024 ? 3 : 9;
                var src = new float[rows * n];
                for (int r = 0; r < rows; r++) make(rng, n).CopyTo(src, r * n);
                float[]? importance = weighted ? Importance(rng, n) : null;
                var expected = GgmlQuantizeNative.QuantizeChunk(type, src, rows, n, importance);
                var actual = new byte[expected.Length];
                long written = Quantize.Rows(type, src, actual, rows, n, importance, threads: 2);
                Assert.Equal(expected.Length, written);
                AssertBytes(type, $"{name}, rows {rows} x {n}, {(weighted ? "with" : "without")} importance", expected, actual);
            }
        }
    }

    [GgmlTheory]
    [MemberData(nameof(Types))]
    public void Row_reference_and_fast_path_equal_ggml_quantize_row_ref(TensorType type)
    {
        var rng = new Random(8000 + (int)type);
        foreach (int n in RowLengths)
        {
            foreach (var (name, make) in Kinds())
            {
                var x = make(rng, n);
                var expected = GgmlNative.QuantizeRowReference(type, x);
                AssertBytes(type, $"reference, {name}, {n}", expected, OursReference(type, x));
                AssertBytes(type, $"fast path, {name}, {n}", expected, OursFast(type, x));
            }
        }
    }

    [GgmlTheory]
    [InlineData(TensorType.Q4_0)]
    [InlineData(TensorType.Q4_1)]
    [InlineData(TensorType.Q5_0)]
    [InlineData(TensorType.Q5_1)]
    public void Weighted_row_scalar_search_and_vector_search_equal_ggml(TensorType type)
    {
        // The scalar mirror of make_qx_quants/make_qkx3_quants and the vector search, one row at a time, each
        // against ggml_quantize_chunk of that row.
        var rng = new Random(8500 + (int)type);
        foreach (int n in RowLengths)
        {
            foreach (var (name, make) in Kinds())
            {
                var x = make(rng, n);
                var w = Importance(rng, n);
                var expected = GgmlQuantizeNative.QuantizeChunk(type, x, 1, n, w);
                AssertBytes(type, $"scalar search, {name}, {n}", expected, OursWeighted(type, x, w, reference: true));
                AssertBytes(type, $"vector search, {name}, {n}", expected, OursWeighted(type, x, w, reference: false));
            }
        }
    }

    [Theory]
    [InlineData(TensorType.Q4_0)]
    [InlineData(TensorType.Q4_1)]
    [InlineData(TensorType.Q5_0)]
    [InlineData(TensorType.Q5_1)]
    public void Weighted_vector_search_equals_the_scalar_search_on_many_random_blocks(TensorType type)
    {
        var rng = new Random(8700 + (int)type);
        foreach (float scale in new[] { 1e-3f, 0.05f, 1f, 300f })
        {
            const int N = 1024;
            for (int row = 0; row < 16; row++)
            {
                var x = Fill(N, _ => Gauss(rng) * scale * (rng.Next(16) == 0 ? 8 : 1));
                var w = Importance(rng, N);
                AssertBytes(type, $"scale {scale} row {row}", OursWeighted(type, x, w, reference: true), OursWeighted(type, x, w, reference: false));
            }
        }
    }

    private static byte[] OursWeighted(TensorType type, float[] x, float[] w, bool reference)
    {
        var dst = new byte[x.Length / 32 * TensorTypes.Get(type).BlockBytes];
        switch (type, reference)
        {
            case (TensorType.Q4_0, true): Q4_0.QuantizeRowWeightedReference(x, MemoryMarshal.Cast<byte, BlockQ4_0>(dst.AsSpan()), w); break;
            case (TensorType.Q4_0, false): Q4_0.QuantizeRowWeighted(x, MemoryMarshal.Cast<byte, BlockQ4_0>(dst.AsSpan()), w); break;
            case (TensorType.Q4_1, true): Q4_1.QuantizeRowWeightedReference(x, MemoryMarshal.Cast<byte, BlockQ4_1>(dst.AsSpan()), w); break;
            case (TensorType.Q4_1, false): Q4_1.QuantizeRowWeighted(x, MemoryMarshal.Cast<byte, BlockQ4_1>(dst.AsSpan()), w); break;
            case (TensorType.Q5_0, true): Q5_0.QuantizeRowWeightedReference(x, MemoryMarshal.Cast<byte, BlockQ5_0>(dst.AsSpan()), w); break;
            case (TensorType.Q5_0, false): Q5_0.QuantizeRowWeighted(x, MemoryMarshal.Cast<byte, BlockQ5_0>(dst.AsSpan()), w); break;
            case (TensorType.Q5_1, true): Q5_1.QuantizeRowWeightedReference(x, MemoryMarshal.Cast<byte, BlockQ5_1>(dst.AsSpan()), w); break;
            case (TensorType.Q5_1, false): Q5_1.QuantizeRowWeighted(x, MemoryMarshal.Cast<byte, BlockQ5_1>(dst.AsSpan()), w); break;
            default: throw new NotSupportedException(type.ToString());
        }
        return dst;
    }

    [GgmlFact]
    public void Q6_K_reference_equals_ggml_with_and_without_importance()
    {
        var rng = new Random(8900);
        foreach (int n in new[] { 256, 512, 2304 })
        {
            foreach (var (name, make) in Kinds())
            {
                const int Rows = 3;
                var src = new float[Rows * n];
                for (int r = 0; r < Rows; r++) make(rng, n).CopyTo(src, r * n);
                var w = Importance(rng, n);
                foreach (var importance in new[] { null, w })
                {
                    var expected = GgmlQuantizeNative.QuantizeChunk(TensorType.Q6_K, src, Rows, n, importance);
                    var actual = new byte[expected.Length];
                    Assert.Equal(expected.Length, Quantize.Rows(TensorType.Q6_K, src, actual, Rows, n, importance, threads: 2));
                    AssertBytes(TensorType.Q6_K, $"{name}, {Rows} x {n}, {(importance is null ? "without" : "with")} importance", expected, actual);
                }
                var row = src.AsSpan(0, n).ToArray();
                var one = new byte[n / 256 * 210];
                Q6_K.QuantizeRowReference(row, MemoryMarshal.Cast<byte, BlockQ6_K>(one.AsSpan()));
                var rowRef = GgmlNative.QuantizeRowReference(TensorType.Q6_K, row);
                AssertBytes(TensorType.Q6_K, $"row reference, {name}, {n}", rowRef, one);
                Q6_K.QuantizeRow(row, MemoryMarshal.Cast<byte, BlockQ6_K>(one.AsSpan()));
                AssertBytes(TensorType.Q6_K, $"row fast path, {name}, {n}", rowRef, one);
                Q6_K.QuantizeRowWeightedReference(row, MemoryMarshal.Cast<byte, BlockQ6_K>(one.AsSpan()), w);
                AssertBytes(TensorType.Q6_K, $"row weighted reference, {name}, {n}", GgmlQuantizeNative.QuantizeChunk(TensorType.Q6_K, row, 1, n, w), one);
            }
        }
    }

    [Theory]
    [MemberData(nameof(Types))]
    public void Fast_path_equals_the_scalar_reference_on_many_random_blocks(TensorType type)
    {
        // No ggml needed: the vector path against the scalar mirror, on enough blocks to meet rare rounding cases.
        var rng = new Random(9000 + (int)type);
        foreach (float scale in new[] { 1e-3f, 0.05f, 1f, 300f })
        {
            var x = Fill(32 * 4096, _ => Gauss(rng) * scale * (rng.Next(16) == 0 ? 8 : 1));
            AssertBytes(type, $"scale {scale}", OursReference(type, x), OursFast(type, x));
        }
    }

    [Theory]
    [MemberData(nameof(Types))]
    public void Dequantized_rows_are_within_half_a_step_of_the_input(TensorType type)
    {
        // Sanity bound independent of ggml: without importance every element lands on the nearest grid point, up to
        // fp16 rounding of the scale (and min), so |x - y| <= d/2 plus a small relative slack per block. Q4_0/Q5_0 put
        // the block's largest magnitude at level -8 (-16), so the other side ends at +7d (+15d): elements there may
        // be clipped by up to one whole step.
        var info = TensorTypes.Get(type);
        var rng = new Random(9500 + (int)type);
        var x = Fill(32 * 512, _ => Gauss(rng) * 0.05f);
        var q = new byte[x.Length / 32 * info.BlockBytes];
        Quantize.Rows(type, x, q, 16, x.Length / 16);
        var y = new float[x.Length];
        Dequantize.Row(type, q, y);
        double sumErr2 = 0, sumX2 = 0;
        for (int b = 0; b < x.Length / 32; b++)
        {
            var block = x.AsSpan(b * 32, 32);
            float lo = float.MaxValue, hi = float.MinValue;
            foreach (float v in block) { lo = Math.Min(lo, v); hi = Math.Max(hi, v); }
            float amax = Math.Max(Math.Abs(lo), Math.Abs(hi));
            double step = type switch
            {
                TensorType.Q8_0 => amax / 127.0,
                TensorType.Q4_0 => amax / 8.0,
                TensorType.Q5_0 => amax / 16.0,
                TensorType.Q4_1 => (hi - lo) / 15.0,
                _ => (hi - lo) / 31.0,
            };
            double allowed = type is TensorType.Q4_0 or TensorType.Q5_0 ? step : step * 0.5;
            for (int k = 0; k < 32; k++)
            {
                double err = Math.Abs(y[b * 32 + k] - block[k]);
                Assert.True(err <= allowed * 1.01 + amax * 2e-3, $"{type} block {b} element {k}: x {block[k]}, y {y[b * 32 + k]}, step {step}");
                sumErr2 += err * err;
                sumX2 += block[k] * (double)block[k];
            }
        }
        // And the error is the size a uniform quantizer of that many levels gives, not larger.
        double maxRel = type switch { TensorType.Q8_0 => 1e-4, TensorType.Q4_0 => 1.5e-2, TensorType.Q4_1 => 1e-2, _ => 4e-3 };
        Assert.True(sumErr2 / sumX2 < maxRel, $"{type}: relative squared error {sumErr2 / sumX2}");
    }

    [Theory]
    [InlineData(TensorType.Q4_0)]
    [InlineData(TensorType.Q4_1)]
    [InlineData(TensorType.Q5_0)]
    [InlineData(TensorType.Q5_1)]
    public void Importance_lowers_the_weighted_error(TensorType type)
    {
        // What the weighted search is for: columns with large importance are reproduced better, so the error
        // weighted by that importance drops compared with the unweighted quantizer.
        var rng = new Random(9700 + (int)type);
        const int N = 2048, Rows = 16;
        var x = Fill(N * Rows, _ => Gauss(rng) * 0.05f);
        var importance = Fill(N, i => i % 32 < 4 ? 50f : 0.1f + (float)rng.NextDouble());
        double plain = WeightedError(type, x, Rows, N, importance, useImportance: false);
        double weighted = WeightedError(type, x, Rows, N, importance, useImportance: true);
        Assert.True(weighted < plain * 0.9, $"{type}: weighted error {weighted} vs plain {plain}");
    }

    [GgmlFact]
    public void Fp16_conversion_of_scales_equals_ggml()
    {
        // Every high half-word (sign, exponent, top 7 mantissa bits) with low half-words that sit on and around the
        // rounding boundaries of normal and subnormal halves, plus random ones: the cast and ggml's bit trick agree.
        ushort[] lows = [0x0000, 0x0001, 0x0FFF, 0x1000, 0x1001, 0x1FFF, 0x2000, 0x3000, 0x7FFF, 0x8000, 0x8001, 0xFFFF, 0x5A5A, 0xA5A5];
        var rng = new Random(31);
        var x = new float[65536 * (lows.Length + 4)];
        int k = 0;
        for (int hi = 0; hi < 65536; hi++)
        {
            foreach (ushort lo in lows) x[k++] = BitConverter.UInt32BitsToSingle((uint)hi << 16 | lo);
            for (int j = 0; j < 4; j++) x[k++] = BitConverter.UInt32BitsToSingle((uint)hi << 16 | (uint)rng.Next(65536));
        }
        var expected = new ushort[x.Length];
        GgmlQuantizeNative.Fp32ToFp16Row(x, expected);
        int nanMismatches = 0;
        for (int i = 0; i < x.Length; i++)
        {
            ushort ours = BitConverter.HalfToUInt16Bits(QuantMath.ToHalf(x[i]));
            if (ours != expected[i]) Assert.Fail($"0x{BitConverter.SingleToUInt32Bits(x[i]):X8}: ggml 0x{expected[i]:X4}, ours 0x{ours:X4}");
            ushort cast = BitConverter.HalfToUInt16Bits((Half)x[i]);
            if (cast != expected[i])
            {
                // The plain cast differs from ggml only in NaN payloads, which is why QuantMath.ToHalf exists.
                Assert.True(float.IsNaN(x[i]), $"0x{BitConverter.SingleToUInt32Bits(x[i]):X8}: ggml 0x{expected[i]:X4}, (Half) 0x{cast:X4}");
                nanMismatches++;
            }
        }
        // The row function and the scalar one are the same conversion (spot check a few).
        foreach (int i in new[] { 0, 12345, 777777, x.Length - 1 })
            Assert.Equal(GgmlQuantizeNative.Fp32ToFp16(x[i]), expected[i]);
        Assert.True(nanMismatches > 0, "the sweep contains NaNs whose payloads the plain cast keeps");
    }

    [Fact]
    public void Bad_arguments_are_refused()
    {
        var x = new float[64];
        var q = new byte[2 * 18];
        Assert.Throws<ArgumentException>(() => Q4_0.Quantize(x, q, 1, 48));           // not whole blocks
        Assert.Throws<ArgumentException>(() => Q4_0.Quantize(x, q, 2, 64));           // source too short
        Assert.Throws<ArgumentException>(() => Q4_0.Quantize(x, q[..20], 1, 64));     // destination too short
        Assert.Throws<ArgumentException>(() => Q4_0.Quantize(x, q, 1, 64, new float[32])); // importance length
        Assert.Throws<ArgumentOutOfRangeException>(() => Q4_0.Quantize(x, q, -1, 64));
        Assert.Throws<NotSupportedException>(() => Quantize.Rows(TensorType.Q8_K, x, q, 1, 64));
        Assert.Throws<ArgumentException>(() => Quantize.Rows(TensorType.Q6_K, x, q, 1, 64)); // 256-element blocks
        Assert.Equal(0, Q8_0.Quantize(x, q, 0, 64));
    }

    private static double WeightedError(TensorType type, float[] x, int rows, int n, float[] importance, bool useImportance)
    {
        var info = TensorTypes.Get(type);
        var q = new byte[x.Length / 32 * info.BlockBytes];
        Quantize.Rows(type, x, q, rows, n, useImportance ? importance : default);
        var y = new float[x.Length];
        Dequantize.Row(type, q, y);
        double e = 0;
        for (int i = 0; i < x.Length; i++) e += importance[i % n] * (double)(x[i] - y[i]) * (x[i] - y[i]);
        return e;
    }

    private static byte[] OursReference(TensorType type, float[] x)
    {
        var dst = new byte[x.Length / 32 * TensorTypes.Get(type).BlockBytes];
        switch (type)
        {
            case TensorType.Q8_0: Q8_0.QuantizeRowReference(x, MemoryMarshal.Cast<byte, BlockQ8_0>(dst.AsSpan())); break;
            case TensorType.Q4_0: Q4_0.QuantizeRowReference(x, MemoryMarshal.Cast<byte, BlockQ4_0>(dst.AsSpan())); break;
            case TensorType.Q4_1: Q4_1.QuantizeRowReference(x, MemoryMarshal.Cast<byte, BlockQ4_1>(dst.AsSpan())); break;
            case TensorType.Q5_0: Q5_0.QuantizeRowReference(x, MemoryMarshal.Cast<byte, BlockQ5_0>(dst.AsSpan())); break;
            case TensorType.Q5_1: Q5_1.QuantizeRowReference(x, MemoryMarshal.Cast<byte, BlockQ5_1>(dst.AsSpan())); break;
            default: throw new NotSupportedException(type.ToString());
        }
        return dst;
    }

    private static byte[] OursFast(TensorType type, float[] x)
    {
        var dst = new byte[x.Length / 32 * TensorTypes.Get(type).BlockBytes];
        switch (type)
        {
            case TensorType.Q8_0: Q8_0.QuantizeRow(x, MemoryMarshal.Cast<byte, BlockQ8_0>(dst.AsSpan())); break;
            case TensorType.Q4_0: Q4_0.QuantizeRow(x, MemoryMarshal.Cast<byte, BlockQ4_0>(dst.AsSpan())); break;
            case TensorType.Q4_1: Q4_1.QuantizeRow(x, MemoryMarshal.Cast<byte, BlockQ4_1>(dst.AsSpan())); break;
            case TensorType.Q5_0: Q5_0.QuantizeRow(x, MemoryMarshal.Cast<byte, BlockQ5_0>(dst.AsSpan())); break;
            case TensorType.Q5_1: Q5_1.QuantizeRow(x, MemoryMarshal.Cast<byte, BlockQ5_1>(dst.AsSpan())); break;
            default: throw new NotSupportedException(type.ToString());
        }
        return dst;
    }

    /// <summary>imatrix-like: positive mean squared activations spanning three decades, with a few zero columns.</summary>
    internal static float[] Importance(Random rng, int n) =>
        Fill(n, i => i % 61 == 7 ? 0f : MathF.Pow(10f, (float)rng.NextDouble() * 3 - 2));

    internal static float[] Fill(int n, Func<int, float> f)
    {
        var a = new float[n];
        for (int i = 0; i < n; i++) a[i] = f(i);
        return a;
    }

    internal static float Gauss(Random r) =>
        (float)(Math.Sqrt(-2 * Math.Log(1 - r.NextDouble())) * Math.Cos(2 * Math.PI * r.NextDouble()));

    private static void AssertBytes(TensorType type, string what, byte[] expected, byte[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        int bb = TensorTypes.Get(type).BlockBytes;
        for (int i = 0; i < expected.Length; i++)
            if (expected[i] != actual[i])
                Assert.Fail($"{type} {what}: first difference in block {i / bb} byte {i % bb}: ggml {Convert.ToHexString(expected, i / bb * bb, bb)}, ours {Convert.ToHexString(actual, i / bb * bb, bb)}");
    }
}
