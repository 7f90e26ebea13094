using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace EdgeQuant.Core.Quantization;

/// <summary>
/// Vector pieces of the 32-element quantizers: a block is four Vector256&lt;float&gt;. Every step is exact or the same
/// single IEEE operation as ggml's scalar code, so the fast paths produce the reference bytes.
/// </summary>
internal static unsafe class BlockVectors
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float HorizontalMax(Vector256<float> v)
    {
        var m = Vector128.Max(v.GetLower(), v.GetUpper());
        m = Vector128.Max(m, Vector128.Shuffle(m, Vector128.Create(2, 3, 0, 1)));
        m = Vector128.Max(m, Vector128.Shuffle(m, Vector128.Create(1, 0, 3, 2)));
        return m.ToScalar();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float HorizontalMin(Vector256<float> v)
    {
        var m = Vector128.Min(v.GetLower(), v.GetUpper());
        m = Vector128.Min(m, Vector128.Shuffle(m, Vector128.Create(2, 3, 0, 1)));
        m = Vector128.Min(m, Vector128.Shuffle(m, Vector128.Create(1, 0, 3, 2)));
        return m.ToScalar();
    }

    /// <summary>Bit j set where element j of the block equals <paramref name="value"/> (so +0 and -0 both match 0).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint EqualMask(Vector256<float> a, Vector256<float> b, Vector256<float> c, Vector256<float> d, float value)
    {
        var s = Vector256.Create(value);
        return Vector256.Equals(a, s).ExtractMostSignificantBits()
            | Vector256.Equals(b, s).ExtractMostSignificantBits() << 8
            | Vector256.Equals(c, s).ExtractMostSignificantBits() << 16
            | Vector256.Equals(d, s).ExtractMostSignificantBits() << 24;
    }

    /// <summary>
    /// ggml's "first element of largest magnitude" (a strict &gt; scan), signed: the value the symmetric types divide by.
    /// A block of zeros gives +0, as ggml's initial value does, even when it holds -0.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float SignedAbsMax(float* x, Vector256<float> a, Vector256<float> b, Vector256<float> c, Vector256<float> d)
    {
        var abs = Vector256.Max(Vector256.Max(Vector256.Abs(a), Vector256.Abs(b)), Vector256.Max(Vector256.Abs(c), Vector256.Abs(d)));
        float amax = HorizontalMax(abs);
        if (amax == 0) return 0f;
        uint mask = EqualMask(Vector256.Abs(a), Vector256.Abs(b), Vector256.Abs(c), Vector256.Abs(d), amax);
        return x[BitOperations.TrailingZeroCount(mask)];
    }

    /// <summary>
    /// ggml's min and max of a block (strict scans from the first element). Vector min/max may pick either zero
    /// when +0 and -0 tie, so a zero result is replaced by the first zero in the block, which is what the scan keeps.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static (float Min, float Max) MinMax(float* x, Vector256<float> a, Vector256<float> b, Vector256<float> c, Vector256<float> d)
    {
        float min = HorizontalMin(Vector256.Min(Vector256.Min(a, b), Vector256.Min(c, d)));
        float max = HorizontalMax(Vector256.Max(Vector256.Max(a, b), Vector256.Max(c, d)));
        if (min == 0) min = x[BitOperations.TrailingZeroCount(EqualMask(a, b, c, d, 0f))];
        if (max == 0) max = x[BitOperations.TrailingZeroCount(EqualMask(a, b, c, d, 0f))];
        return (min, max);
    }

    /// <summary>
    /// C's float-to-int conversion (see <see cref="QuantMath.CInt"/>) of four vectors, the low byte of each kept, in
    /// element order: what ggml's (int8_t)/(uint8_t) casts store.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<byte> TruncateToBytes(Vector256<float> a, Vector256<float> b, Vector256<float> c, Vector256<float> d)
    {
        var s0 = Vector256.Narrow(Vector256.ConvertToInt32Native(a), Vector256.ConvertToInt32Native(b));
        var s1 = Vector256.Narrow(Vector256.ConvertToInt32Native(c), Vector256.ConvertToInt32Native(d));
        return Vector256.Narrow(s0, s1).AsByte();
    }

    /// <summary>Nibble packing of ggml's 4- and 5-bit types: element j in the low nibble of byte j, element j+16 in its high nibble.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<byte> PackNibbles(Vector256<byte> q)
    {
        var lo = q.GetLower() & Vector128.Create((byte)0x0F);
        var hi = q.GetUpper() & Vector128.Create((byte)0x0F);
        return lo | Vector128.ShiftLeft(hi, 4);
    }

    /// <summary>Bit j = bit 4 of element j: the fifth bits of Q5_0/Q5_1 as ggml's qh word.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint FifthBits(Vector256<byte> q) => Vector256.ShiftLeft(q, 3).ExtractMostSignificantBits();

    /// <summary>
    /// C's roundf (halfway cases away from zero) of values well inside the int range: x - trunc(x) is exact, so
    /// comparing it with ±0.5 decides the rounding without the double rounding of adding 0.5.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> RoundAwayFromZero(Vector256<float> x)
    {
        var t = Vector256.Truncate(x);
        var f = x - t;
        var up = Vector256.GreaterThanOrEqual(f, Vector256.Create(0.5f)).AsInt32();
        var down = Vector256.LessThanOrEqual(f, Vector256.Create(-0.5f)).AsInt32();
        // The masks are -1 where true: subtracting "up" adds one, adding "down" subtracts one.
        return Vector256.ConvertToInt32Native(t) - up + down;
    }
}
