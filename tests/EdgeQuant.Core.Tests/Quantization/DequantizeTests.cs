using System.Buffers.Binary;
using EdgeQuant.Core.Quantization;
using EdgeQuant.Core.Tensors;

namespace EdgeQuant.Core.Tests.Quantization;

/// <summary>
/// Every dequantizer against an independent reference written here from the ggml bit layout (ggml-common.h): each
/// element's bits are picked out one at a time by absolute bit position in the block, instead of the shifted, masked
/// and grouped loops of the implementation. The arithmetic order is ggml's (group scale first, then times the integer,
/// then minus the min), so the comparison is exact.
/// </summary>
public class DequantizeTests
{
    public static TheoryData<TensorType> Types => new()
    {
        TensorType.Q4_0, TensorType.Q4_1, TensorType.Q5_0, TensorType.Q5_1, TensorType.Q8_0, TensorType.Q8_1,
        TensorType.Q2_K, TensorType.Q3_K, TensorType.Q4_K, TensorType.Q5_K, TensorType.Q6_K, TensorType.Q8_K,
    };

    [Theory]
    [MemberData(nameof(Types))]
    public void Matches_the_bitwise_reference_on_random_blocks(TensorType type)
    {
        var info = TensorTypes.Get(type);
        var rng = new Random(1000 + (int)type);
        foreach (int blocks in new[] { 1, 2, 7, 64 })
        {
            var src = RandomBlocks(type, blocks, rng);
            var actual = new float[blocks * info.BlockSize];
            Dequantize.Row(type, src, actual);
            for (int b = 0; b < blocks; b++)
            {
                var block = src.AsSpan(b * info.BlockBytes, info.BlockBytes).ToArray();
                for (int k = 0; k < info.BlockSize; k++)
                {
                    float expected = Reference(type, block, k);
                    float got = actual[b * info.BlockSize + k];
                    if (BitConverter.SingleToInt32Bits(expected) != BitConverter.SingleToInt32Bits(got))
                        Assert.Fail($"{type} block {b} element {k}: expected {expected:R}, got {got:R}");
                }
            }
        }
    }

    [Theory]
    [MemberData(nameof(Types))]
    public void Extreme_codes_reach_the_ends_of_the_range(TensorType type)
    {
        // All-zero and all-one code bits with scale 1 (and min 0): the values must be the layout's extremes.
        var info = TensorTypes.Get(type);
        foreach (byte fill in new byte[] { 0x00, 0xFF })
        {
            var block = new byte[info.BlockBytes];
            Array.Fill(block, fill);
            SetScales(type, block, 1f, 0f);
            var y = new float[info.BlockSize];
            Dequantize.Row(type, block, y);
            for (int k = 0; k < info.BlockSize; k++) Assert.Equal(Reference(type, block, k), y[k]);
        }
    }

    [Fact]
    public void Q8_0_and_Q4_0_known_blocks()
    {
        // Hand-built blocks whose values follow from the format description alone.
        var q8 = new byte[34];
        BinaryPrimitives.WriteHalfLittleEndian(q8, (Half)0.5f);
        for (int i = 0; i < 32; i++) q8[2 + i] = (byte)(sbyte)(i - 16);
        var y = new float[32];
        Dequantize.Row(TensorType.Q8_0, q8, y);
        Assert.Equal(Enumerable.Range(0, 32).Select(i => (i - 16) * 0.5f), y);

        var q4 = new byte[18];
        BinaryPrimitives.WriteHalfLittleEndian(q4, (Half)2f);
        for (int i = 0; i < 16; i++) q4[2 + i] = (byte)(i | ((15 - i) << 4));
        Dequantize.Row(TensorType.Q4_0, q4, y);
        Assert.Equal(Enumerable.Range(0, 16).Select(i => (i - 8) * 2f).Concat(Enumerable.Range(0, 16).Select(i => (7 - i) * 2f)), y);
    }

    [Fact]
    public void Plain_types_convert()
    {
        float[] values = [1.5f, -2f, 0f, 1e-3f];
        var f32 = new byte[16];
        for (int i = 0; i < 4; i++) BinaryPrimitives.WriteSingleLittleEndian(f32.AsSpan(4 * i), values[i]);
        var y = new float[4];
        Dequantize.Row(TensorType.F32, f32, y);
        Assert.Equal(values, y);
        var f16 = new byte[8];
        for (int i = 0; i < 4; i++) BinaryPrimitives.WriteHalfLittleEndian(f16.AsSpan(2 * i), (Half)values[i]);
        Dequantize.Row(TensorType.F16, f16, y);
        Assert.Equal(values.Select(v => (float)(Half)v), y);
    }

    [Fact]
    public void Scalar_fallbacks_of_the_vectorized_types_match_the_reference()
    {
        var rng = new Random(77);
        var q4 = RandomBlocks(TensorType.Q4_0, 9, rng);
        var q8 = RandomBlocks(TensorType.Q8_0, 9, rng);
        var y4 = new float[9 * 32];
        var y8 = new float[9 * 32];
        Q4_0.DequantizeRowScalar(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, BlockQ4_0>(q4), y4);
        Q8_0.DequantizeRowScalar(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, BlockQ8_0>(q8), y8);
        for (int k = 0; k < y4.Length; k++)
        {
            Assert.Equal(Reference(TensorType.Q4_0, q4.AsSpan(k / 32 * 18, 18).ToArray(), k % 32), y4[k]);
            Assert.Equal(Reference(TensorType.Q8_0, q8.AsSpan(k / 32 * 34, 34).ToArray(), k % 32), y8[k]);
        }
        var k4 = RandomBlocks(TensorType.Q4_K, 5, rng);
        var k5 = RandomBlocks(TensorType.Q5_K, 5, rng);
        var yk4 = new float[5 * 256];
        var yk5 = new float[5 * 256];
        Q4_K.DequantizeRow(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, BlockQ4_K>(k4), yk4, vector: false);
        Q5_K.DequantizeRow(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, BlockQ5_K>(k5), yk5, vector: false);
        for (int k = 0; k < yk4.Length; k++)
        {
            Assert.Equal(Reference(TensorType.Q4_K, k4.AsSpan(k / 256 * 144, 144).ToArray(), k % 256), yk4[k]);
            Assert.Equal(Reference(TensorType.Q5_K, k5.AsSpan(k / 256 * 176, 176).ToArray(), k % 256), yk5[k]);
        }
    }

    [Fact]
    public void Integer_and_f64_types_convert()
    {
        var y = new float[3];
        Dequantize.Row(TensorType.I8, [0xFF, 0x7F, 0x80], y);
        Assert.Equal(new[] { -1f, 127f, -128f }, y);
        var i32 = new byte[12];
        BinaryPrimitives.WriteInt32LittleEndian(i32, -5);
        BinaryPrimitives.WriteInt32LittleEndian(i32.AsSpan(4), 1 << 24);
        BinaryPrimitives.WriteInt32LittleEndian(i32.AsSpan(8), 7);
        Dequantize.Row(TensorType.I32, i32, y);
        Assert.Equal(new[] { -5f, 16777216f, 7f }, y);
        var f64 = new byte[24];
        BinaryPrimitives.WriteDoubleLittleEndian(f64, 0.1);
        BinaryPrimitives.WriteDoubleLittleEndian(f64.AsSpan(8), -1e300);
        BinaryPrimitives.WriteDoubleLittleEndian(f64.AsSpan(16), 2.5);
        Dequantize.Row(TensorType.F64, f64, y);
        Assert.Equal(new[] { 0.1f, float.NegativeInfinity, 2.5f }, y);
    }

    [Fact]
    public void Wrong_lengths_are_rejected()
    {
        Assert.Throws<ArgumentException>(() => Dequantize.Row(TensorType.Q4_0, new byte[18], new float[31]));
        Assert.Throws<ArgumentException>(() => Dequantize.Row(TensorType.Q4_K, new byte[143], new float[256]));
        Assert.Throws<ArgumentException>(() => Dequantize.Row(TensorType.Q8_0, new byte[34], new float[64]));
    }

    // ---- the independent reference ----

    /// <summary><paramref name="count"/> bits starting at absolute bit <paramref name="bit"/> of the block, LSB first.</summary>
    private static int Bits(byte[] b, int bit, int count)
    {
        int v = 0;
        for (int i = 0; i < count; i++)
        {
            int at = bit + i;
            if (((b[at >> 3] >> (at & 7)) & 1) != 0) v |= 1 << i;
        }
        return v;
    }

    private static float F16(byte[] b, int byteOffset) => (float)BitConverter.UInt16BitsToHalf((ushort)Bits(b, byteOffset * 8, 16));

    /// <summary>Element k of a legacy block: the nibble of element k (k &lt; 16 low, else high nibble of byte k-16) of the qs at <paramref name="qsByte"/>.</summary>
    private static int Nibble(byte[] b, int qsByte, int k) => Bits(b, (qsByte + k % 16) * 8 + 4 * (k / 16), 4);

    internal static float Reference(TensorType type, byte[] b, int k)
    {
        switch (type)
        {
            case TensorType.Q4_0:
                return (Nibble(b, 2, k) - 8) * F16(b, 0);
            case TensorType.Q4_1:
                return Nibble(b, 4, k) * F16(b, 0) + F16(b, 2);
            case TensorType.Q5_0:
                return ((Nibble(b, 6, k) | (Bits(b, 2 * 8 + k, 1) << 4)) - 16) * F16(b, 0);
            case TensorType.Q5_1:
                return (Nibble(b, 8, k) | (Bits(b, 4 * 8 + k, 1) << 4)) * F16(b, 0) + F16(b, 2);
            case TensorType.Q8_0:
                return (sbyte)Bits(b, (2 + k) * 8, 8) * F16(b, 0);
            case TensorType.Q8_1:
                return (sbyte)Bits(b, (4 + k) * 8, 8) * F16(b, 0);
            case TensorType.Q8_K:
                return BitConverter.Int32BitsToSingle(Bits(b, 0, 16) | (Bits(b, 16, 16) << 16)) * (sbyte)Bits(b, (4 + k) * 8, 8);
            case TensorType.Q2_K:
            {
                // 256 = 2 halves x 4 bit-pairs x 32 bytes; group of 16 = k / 16 owns scale byte k / 16.
                int half = k / 128, pair = k % 128 / 32, l = k % 32;
                int q = Bits(b, (16 + 32 * half + l) * 8 + 2 * pair, 2);
                int g = k / 16;
                float dl = F16(b, 80) * Bits(b, g * 8, 4);
                float ml = F16(b, 82) * Bits(b, g * 8 + 4, 4);
                return dl * q - ml;
            }
            case TensorType.Q3_K:
            {
                int half = k / 128, pair = k % 128 / 32, l = k % 32;
                int low = Bits(b, (32 + 32 * half + l) * 8 + 2 * pair, 2);
                int high = Bits(b, l * 8 + 4 * half + pair, 1);
                int q = low - (high == 1 ? 0 : 4);
                int g = k / 16;
                int scLow = g < 8 ? Bits(b, (96 + g) * 8, 4) : Bits(b, (96 + g - 8) * 8 + 4, 4);
                int scHigh = Bits(b, (96 + 8 + g % 4) * 8 + 2 * (g / 4), 2);
                float dl = F16(b, 108) * ((scHigh << 4 | scLow) - 32);
                return dl * q;
            }
            case TensorType.Q4_K:
            case TensorType.Q5_K:
            {
                bool five = type == TensorType.Q5_K;
                int qsByte = five ? 48 : 16;
                int chunk = k / 64, hi = k % 64 / 32, l = k % 32;
                int q = Bits(b, (qsByte + 32 * chunk + l) * 8 + 4 * hi, 4);
                int g = k / 32;
                if (five) q += 16 * Bits(b, (16 + l) * 8 + g, 1);
                var (sc, m) = ScaleMinK4(b, g);
                return F16(b, 0) * sc * q - F16(b, 2) * m;
            }
            case TensorType.Q6_K:
            {
                int half = k / 128, quarter = k % 128 / 32, l = k % 32;
                int low = Bits(b, (64 * half + l + 32 * (quarter % 2)) * 8 + 4 * (quarter / 2), 4);
                int high = Bits(b, (128 + 32 * half + l) * 8 + 2 * quarter, 2);
                int q = (high << 4 | low) - 32;
                int sc = (sbyte)Bits(b, (192 + 8 * half + l / 16 + 2 * quarter) * 8, 8);
                return F16(b, 208) * sc * q;
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(type));
        }
    }

    /// <summary>The 6-bit scale and min of group g of Q4_K/Q5_K, from the 12 bytes at offset 4 (ggml-common.h's packing).</summary>
    private static (int Scale, int Min) ScaleMinK4(byte[] b, int g)
    {
        const int S = 4 * 8;
        if (g < 4) return (Bits(b, S + g * 8, 6), Bits(b, S + (g + 4) * 8, 6));
        int scale = Bits(b, S + (g + 4) * 8, 4) | Bits(b, S + (g - 4) * 8 + 6, 2) << 4;
        int min = Bits(b, S + (g + 4) * 8 + 4, 4) | Bits(b, S + g * 8 + 6, 2) << 4;
        return (scale, min);
    }

    // ---- random blocks ----

    internal static byte[] RandomBlocks(TensorType type, int blocks, Random rng)
    {
        var info = TensorTypes.Get(type);
        var bytes = new byte[blocks * info.BlockBytes];
        rng.NextBytes(bytes);
        for (int i = 0; i < blocks; i++)
        {
            var block = bytes.AsSpan(i * info.BlockBytes, info.BlockBytes);
            // Random f16 scales over several decades, both signs (ggml's mins may be negative too), never NaN/Inf.
            float Scale() => (float)((rng.NextDouble() * 2 - 1) * Math.Pow(10, rng.Next(-4, 2)));
            var tmp = block.ToArray();
            SetScales(type, tmp, Scale(), Scale());
            tmp.CopyTo(block);
        }
        return bytes;
    }

    internal static void SetScales(TensorType type, byte[] block, float d, float m)
    {
        void H(int at, float v) => BinaryPrimitives.WriteHalfLittleEndian(block.AsSpan(at), (Half)v);
        switch (type)
        {
            case TensorType.Q4_0 or TensorType.Q5_0 or TensorType.Q8_0: H(0, d); break;
            case TensorType.Q4_1 or TensorType.Q5_1 or TensorType.Q8_1 or TensorType.Q4_K or TensorType.Q5_K: H(0, d); H(2, m); break;
            case TensorType.Q2_K: H(80, d); H(82, m); break;
            case TensorType.Q3_K: H(108, d); break;
            case TensorType.Q6_K: H(208, d); break;
            case TensorType.Q8_K: BinaryPrimitives.WriteSingleLittleEndian(block, d); break;
        }
    }
}
