using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace EdgeQuant.Core.Quantization;

internal static partial class QuantMath
{
    /// <summary>
    /// ggml's make_q3_quants: levels L in 0..2*nmax-1 for a symmetric grid and their scale. With
    /// <paramref name="doRmse"/>, the weights are x^2 and each level is revisited (at most five passes) while moving it
    /// to its least-squares position raises sumlx^2/suml2. ggml's float operations in ggml's order.
    /// </summary>
    public static unsafe float MakeQ3Quants(int n, int nmax, float* x, sbyte* L, bool doRmse)
    {
        float max = 0, amax = 0;
        for (int i = 0; i < n; ++i)
        {
            float ax = MathF.Abs(x[i]);
            if (ax > amax) { amax = ax; max = x[i]; }
        }
        if (amax < GroupMaxEps)
        {
            for (int i = 0; i < n; ++i) L[i] = 0;
            return 0f;
        }
        float iscale = -nmax / max;
        if (doRmse)
        {
            float sumlx = 0, suml2 = 0;
            for (int i = 0; i < n; ++i)
            {
                int l = NearestInt(iscale * x[i]);
                l = Math.Max(-nmax, Math.Min(nmax - 1, l));
                L[i] = (sbyte)l;
                float w = x[i] * x[i];
                sumlx += w * x[i] * l;
                suml2 += w * l * l;
            }
            for (int itry = 0; itry < 5; ++itry)
            {
                int changed = 0;
                for (int i = 0; i < n; ++i)
                {
                    float w = x[i] * x[i];
                    float slx = sumlx - w * x[i] * L[i];
                    if (slx > 0)
                    {
                        float sl2 = suml2 - w * L[i] * L[i];
                        int newL = NearestInt(x[i] * sl2 / slx);
                        newL = Math.Max(-nmax, Math.Min(nmax - 1, newL));
                        if (newL != L[i])
                        {
                            slx += w * x[i] * newL;
                            sl2 += w * newL * newL;
                            if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2)
                            {
                                L[i] = (sbyte)newL;
                                sumlx = slx;
                                suml2 = sl2;
                                ++changed;
                            }
                        }
                    }
                }
                if (changed == 0) break;
            }
            for (int i = 0; i < n; ++i) L[i] += (sbyte)nmax;
            return suml2 > 0f ? sumlx / suml2 : 0f;
        }
        for (int i = 0; i < n; ++i)
        {
            int l = NearestInt(iscale * x[i]);
            l = Math.Max(-nmax, Math.Min(nmax - 1, l));
            L[i] = (sbyte)(l + nmax);
        }
        return 1 / iscale;
    }
}

/// <summary>
/// A vector of float lanes for the K-quant group searches, where lane g holds group g's running state (or, for the
/// scale search, candidate g's). Each group runs ggml's scalar loop unchanged in its own lane, so the floats are
/// ggml's: no reordering of sums, no fused multiply-add. Masks are lanes of all ones or all zeros.
/// </summary>
internal unsafe interface IGroupLanes<T> where T : unmanaged, IGroupLanes<T>
{
    static abstract int Count { get; }
    static abstract T Zero { get; }
    static abstract T Load(float* p);
    static abstract void Store(T v, float* p);
    static abstract T Splat(float f);
    static abstract T operator +(T a, T b);
    static abstract T operator -(T a, T b);
    static abstract T operator *(T a, T b);
    static abstract T operator /(T a, T b);
    static abstract T operator &(T a, T b);
    static abstract T operator |(T a, T b);
    static abstract T Sqrt(T a);
    static abstract T Abs(T a);
    static abstract T GreaterThan(T a, T b);
    static abstract T EqualTo(T a, T b);
    /// <summary><paramref name="a"/> and not <paramref name="b"/>.</summary>
    static abstract T AndNot(T a, T b);
    static abstract T Select(T mask, T ifSet, T ifClear);
    static abstract bool Any(T mask);
    /// <summary>Bit k set when lane k of <paramref name="mask"/> is set.</summary>
    static abstract uint Bits(T mask);
    /// <summary>ggml's nearest_int (the 1.5*2^23 bit trick, garbage-for-garbage beyond its range) clamped to [lo, hi], as floats.</summary>
    static abstract T Level(T v, int lo, int hi);
}

internal readonly unsafe struct GroupLanes512 : IGroupLanes<GroupLanes512>
{
    private readonly Vector512<float> v;
    private GroupLanes512(Vector512<float> v) => this.v = v;
    public static int Count => 16;
    public static GroupLanes512 Zero => default;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static GroupLanes512 Load(float* p) => new(Vector512.Load(p));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(GroupLanes512 a, float* p) => a.v.Store(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static GroupLanes512 Splat(float f) => new(Vector512.Create(f));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static GroupLanes512 operator +(GroupLanes512 a, GroupLanes512 b) => new(a.v + b.v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static GroupLanes512 operator -(GroupLanes512 a, GroupLanes512 b) => new(a.v - b.v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static GroupLanes512 operator *(GroupLanes512 a, GroupLanes512 b) => new(a.v * b.v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static GroupLanes512 operator /(GroupLanes512 a, GroupLanes512 b) => new(a.v / b.v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static GroupLanes512 operator &(GroupLanes512 a, GroupLanes512 b) => new(a.v & b.v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static GroupLanes512 operator |(GroupLanes512 a, GroupLanes512 b) => new(a.v | b.v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static GroupLanes512 Sqrt(GroupLanes512 a) => new(Vector512.Sqrt(a.v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static GroupLanes512 Abs(GroupLanes512 a) => new(Vector512.Abs(a.v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static GroupLanes512 GreaterThan(GroupLanes512 a, GroupLanes512 b) => new(Vector512.GreaterThan(a.v, b.v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static GroupLanes512 EqualTo(GroupLanes512 a, GroupLanes512 b) => new(Vector512.Equals(a.v, b.v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static GroupLanes512 AndNot(GroupLanes512 a, GroupLanes512 b) => new(Vector512.AndNot(a.v, b.v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static GroupLanes512 Select(GroupLanes512 m, GroupLanes512 a, GroupLanes512 b) => new(Vector512.ConditionalSelect(m.v, a.v, b.v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static bool Any(GroupLanes512 m) => m.v.ExtractMostSignificantBits() != 0;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static uint Bits(GroupLanes512 m) => (uint)m.v.ExtractMostSignificantBits();
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static GroupLanes512 Level(GroupLanes512 a, int lo, int hi)
    {
        var i = ((a.v + Vector512.Create(12582912f)).AsInt32() & Vector512.Create(0x007fffff)) - Vector512.Create(0x00400000);
        return new(Vector512.ConvertToSingle(Vector512.Min(Vector512.Max(i, Vector512.Create(lo)), Vector512.Create(hi))));
    }
}

internal readonly unsafe struct GroupLanes256 : IGroupLanes<GroupLanes256>
{
    private readonly Vector256<float> v;
    private GroupLanes256(Vector256<float> v) => this.v = v;
    public static int Count => 8;
    public static GroupLanes256 Zero => default;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static GroupLanes256 Load(float* p) => new(Vector256.Load(p));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(GroupLanes256 a, float* p) => a.v.Store(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static GroupLanes256 Splat(float f) => new(Vector256.Create(f));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static GroupLanes256 operator +(GroupLanes256 a, GroupLanes256 b) => new(a.v + b.v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static GroupLanes256 operator -(GroupLanes256 a, GroupLanes256 b) => new(a.v - b.v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static GroupLanes256 operator *(GroupLanes256 a, GroupLanes256 b) => new(a.v * b.v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static GroupLanes256 operator /(GroupLanes256 a, GroupLanes256 b) => new(a.v / b.v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static GroupLanes256 operator &(GroupLanes256 a, GroupLanes256 b) => new(a.v & b.v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static GroupLanes256 operator |(GroupLanes256 a, GroupLanes256 b) => new(a.v | b.v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static GroupLanes256 Sqrt(GroupLanes256 a) => new(Vector256.Sqrt(a.v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static GroupLanes256 Abs(GroupLanes256 a) => new(Vector256.Abs(a.v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static GroupLanes256 GreaterThan(GroupLanes256 a, GroupLanes256 b) => new(Vector256.GreaterThan(a.v, b.v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static GroupLanes256 EqualTo(GroupLanes256 a, GroupLanes256 b) => new(Vector256.Equals(a.v, b.v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static GroupLanes256 AndNot(GroupLanes256 a, GroupLanes256 b) => new(Vector256.AndNot(a.v, b.v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static GroupLanes256 Select(GroupLanes256 m, GroupLanes256 a, GroupLanes256 b) => new(Vector256.ConditionalSelect(m.v, a.v, b.v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static bool Any(GroupLanes256 m) => m.v.ExtractMostSignificantBits() != 0;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static uint Bits(GroupLanes256 m) => m.v.ExtractMostSignificantBits();
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static GroupLanes256 Level(GroupLanes256 a, int lo, int hi)
    {
        var i = ((a.v + Vector256.Create(12582912f)).AsInt32() & Vector256.Create(0x007fffff)) - Vector256.Create(0x00400000);
        return new(Vector256.ConvertToSingle(Vector256.Min(Vector256.Max(i, Vector256.Create(lo)), Vector256.Create(hi))));
    }
}

/// <summary>
/// Two lane vectors side by side (lanes 0..n-1 in the first). Besides width, this gives the core independent
/// dependency chains for the in-order sums, which are serial within a lane.
/// </summary>
internal readonly unsafe struct GroupLanePair<T> : IGroupLanes<GroupLanePair<T>> where T : unmanaged, IGroupLanes<T>
{
    private readonly T a, b;
    private GroupLanePair(T a, T b) { this.a = a; this.b = b; }
    public static int Count => 2 * T.Count;
    public static GroupLanePair<T> Zero => default;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static GroupLanePair<T> Load(float* p) => new(T.Load(p), T.Load(p + T.Count));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(GroupLanePair<T> v, float* p) { T.Store(v.a, p); T.Store(v.b, p + T.Count); }
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static GroupLanePair<T> Splat(float f) { var s = T.Splat(f); return new(s, s); }
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static GroupLanePair<T> operator +(GroupLanePair<T> x, GroupLanePair<T> y) => new(x.a + y.a, x.b + y.b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static GroupLanePair<T> operator -(GroupLanePair<T> x, GroupLanePair<T> y) => new(x.a - y.a, x.b - y.b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static GroupLanePair<T> operator *(GroupLanePair<T> x, GroupLanePair<T> y) => new(x.a * y.a, x.b * y.b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static GroupLanePair<T> operator /(GroupLanePair<T> x, GroupLanePair<T> y) => new(x.a / y.a, x.b / y.b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static GroupLanePair<T> operator &(GroupLanePair<T> x, GroupLanePair<T> y) => new(x.a & y.a, x.b & y.b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static GroupLanePair<T> operator |(GroupLanePair<T> x, GroupLanePair<T> y) => new(x.a | y.a, x.b | y.b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static GroupLanePair<T> Sqrt(GroupLanePair<T> x) => new(T.Sqrt(x.a), T.Sqrt(x.b));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static GroupLanePair<T> Abs(GroupLanePair<T> x) => new(T.Abs(x.a), T.Abs(x.b));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static GroupLanePair<T> GreaterThan(GroupLanePair<T> x, GroupLanePair<T> y) => new(T.GreaterThan(x.a, y.a), T.GreaterThan(x.b, y.b));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static GroupLanePair<T> EqualTo(GroupLanePair<T> x, GroupLanePair<T> y) => new(T.EqualTo(x.a, y.a), T.EqualTo(x.b, y.b));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static GroupLanePair<T> AndNot(GroupLanePair<T> x, GroupLanePair<T> y) => new(T.AndNot(x.a, y.a), T.AndNot(x.b, y.b));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static GroupLanePair<T> Select(GroupLanePair<T> m, GroupLanePair<T> x, GroupLanePair<T> y) => new(T.Select(m.a, x.a, y.a), T.Select(m.b, x.b, y.b));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static bool Any(GroupLanePair<T> m) => T.Any(m.a | m.b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static uint Bits(GroupLanePair<T> m) => T.Bits(m.a) | T.Bits(m.b) << T.Count;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static GroupLanePair<T> Level(GroupLanePair<T> x, int lo, int hi) => new(T.Level(x.a, lo, hi), T.Level(x.b, lo, hi));
}

/// <summary>
/// 32 lanes from four 256-bit vectors as one flat struct with direct vector operations: nesting
/// <see cref="GroupLanePair{T}"/> twice, or a generic four-field struct, exceeds what the JIT inlines and promotes
/// to registers in the search loops and runs several times slower.
/// </summary>
internal readonly unsafe struct GroupLanes256x4 : IGroupLanes<GroupLanes256x4>
{
    private readonly Vector256<float> a, b, c, d;
    private GroupLanes256x4(Vector256<float> a, Vector256<float> b, Vector256<float> c, Vector256<float> d) { this.a = a; this.b = b; this.c = c; this.d = d; }
    public static int Count => 32;
    public static GroupLanes256x4 Zero => default;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static GroupLanes256x4 Load(float* p) => new(Vector256.Load(p), Vector256.Load(p + 8), Vector256.Load(p + 16), Vector256.Load(p + 24));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(GroupLanes256x4 v, float* p) { v.a.Store(p); v.b.Store(p + 8); v.c.Store(p + 16); v.d.Store(p + 24); }
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static GroupLanes256x4 Splat(float f) { var s = Vector256.Create(f); return new(s, s, s, s); }
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static GroupLanes256x4 operator +(GroupLanes256x4 x, GroupLanes256x4 y) => new(x.a + y.a, x.b + y.b, x.c + y.c, x.d + y.d);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static GroupLanes256x4 operator -(GroupLanes256x4 x, GroupLanes256x4 y) => new(x.a - y.a, x.b - y.b, x.c - y.c, x.d - y.d);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static GroupLanes256x4 operator *(GroupLanes256x4 x, GroupLanes256x4 y) => new(x.a * y.a, x.b * y.b, x.c * y.c, x.d * y.d);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static GroupLanes256x4 operator /(GroupLanes256x4 x, GroupLanes256x4 y) => new(x.a / y.a, x.b / y.b, x.c / y.c, x.d / y.d);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static GroupLanes256x4 operator &(GroupLanes256x4 x, GroupLanes256x4 y) => new(x.a & y.a, x.b & y.b, x.c & y.c, x.d & y.d);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static GroupLanes256x4 operator |(GroupLanes256x4 x, GroupLanes256x4 y) => new(x.a | y.a, x.b | y.b, x.c | y.c, x.d | y.d);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static GroupLanes256x4 Sqrt(GroupLanes256x4 x) => new(Vector256.Sqrt(x.a), Vector256.Sqrt(x.b), Vector256.Sqrt(x.c), Vector256.Sqrt(x.d));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static GroupLanes256x4 Abs(GroupLanes256x4 x) => new(Vector256.Abs(x.a), Vector256.Abs(x.b), Vector256.Abs(x.c), Vector256.Abs(x.d));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static GroupLanes256x4 GreaterThan(GroupLanes256x4 x, GroupLanes256x4 y) => new(Vector256.GreaterThan(x.a, y.a), Vector256.GreaterThan(x.b, y.b), Vector256.GreaterThan(x.c, y.c), Vector256.GreaterThan(x.d, y.d));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static GroupLanes256x4 EqualTo(GroupLanes256x4 x, GroupLanes256x4 y) => new(Vector256.Equals(x.a, y.a), Vector256.Equals(x.b, y.b), Vector256.Equals(x.c, y.c), Vector256.Equals(x.d, y.d));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static GroupLanes256x4 AndNot(GroupLanes256x4 x, GroupLanes256x4 y) => new(Vector256.AndNot(x.a, y.a), Vector256.AndNot(x.b, y.b), Vector256.AndNot(x.c, y.c), Vector256.AndNot(x.d, y.d));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static GroupLanes256x4 Select(GroupLanes256x4 m, GroupLanes256x4 x, GroupLanes256x4 y) => new(Vector256.ConditionalSelect(m.a, x.a, y.a), Vector256.ConditionalSelect(m.b, x.b, y.b), Vector256.ConditionalSelect(m.c, x.c, y.c), Vector256.ConditionalSelect(m.d, x.d, y.d));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static bool Any(GroupLanes256x4 m) => (m.a | m.b | m.c | m.d).ExtractMostSignificantBits() != 0;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static uint Bits(GroupLanes256x4 m) =>
        m.a.ExtractMostSignificantBits() | m.b.ExtractMostSignificantBits() << 8 | m.c.ExtractMostSignificantBits() << 16 | m.d.ExtractMostSignificantBits() << 24;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static GroupLanes256x4 Level(GroupLanes256x4 x, int lo, int hi) => new(Level8(x.a, lo, hi), Level8(x.b, lo, hi), Level8(x.c, lo, hi), Level8(x.d, lo, hi));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Level8(Vector256<float> v, int lo, int hi)
    {
        var i = ((v + Vector256.Create(12582912f)).AsInt32() & Vector256.Create(0x007fffff)) - Vector256.Create(0x00400000);
        return Vector256.ConvertToSingle(Vector256.Min(Vector256.Max(i, Vector256.Create(lo)), Vector256.Create(hi)));
    }
}

/// <summary>
/// The Q3_K searches with one group per lane (<see cref="IGroupLanes{T}"/>): the data is transposed so that row i
/// of a [16 x lanes] array holds element i of every group. Same floats as <see cref="QuantMath.MakeQ3Quants"/> and
/// <see cref="QuantMath.MakeQxQuants"/>, per lane.
/// </summary>
internal static unsafe class Q3KLanes
{
    private const int G = 16;

    /// <summary>Per-lane largest magnitude and the signed value that has it (the first one met, as ggml keeps it).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static T SignedMax<T>(float* xt, out T zeroGroups) where T : unmanaged, IGroupLanes<T>
    {
        int c = T.Count;
        T amax = T.Zero, max = T.Zero;
        for (int i = 0; i < G; i++)
        {
            var v = T.Load(xt + i * c);
            var ax = T.Abs(v);
            var m = T.GreaterThan(ax, amax);
            amax = T.Select(m, ax, amax);
            max = T.Select(m, v, max);
        }
        zeroGroups = T.GreaterThan(T.Splat(QuantMath.GroupMaxEps), amax);
        return max;
    }

    /// <summary>
    /// make_q3_quants(16, 4, do_rmse = true), first part, for every lane: the inverse scale -4/max, the sums over the
    /// first levels (in element order), and which groups are all zeros (levels 0, scale 0, no refinement).
    /// </summary>
    public static void StartQ3<T>(float* xt, float* iscales, float* sumlx, float* suml2, float* zeroGroups) where T : unmanaged, IGroupLanes<T>
    {
        int c = T.Count;
        var max = SignedMax<T>(xt, out var zero);
        var iscale = T.Splat(-4f) / max;
        T slx = T.Zero, sl2 = T.Zero;
        for (int i = 0; i < G; i++)
        {
            var v = T.Load(xt + i * c);
            var w = v * v;
            var l = T.Level(iscale * v, -4, 3);
            slx += w * v * l;
            sl2 += w * l * l;
        }
        T.Store(iscale, iscales);
        T.Store(slx, sumlx);
        T.Store(sl2, suml2);
        T.Store(zero, zeroGroups);
    }

    /// <summary>
    /// make_q3_quants' refinement passes for one group, its 16 elements in the lanes of <typeparamref name="T"/>
    /// (16 lanes). ggml visits the elements in order and a move changes the sums the next element sees; moves are
    /// rare (about one group in four moves anything on Gaussian weights), so all remaining elements are evaluated
    /// at once against the current sums, the first that moves is taken (exactly what ggml computes for it, nothing
    /// having changed since the pass or the last move began), and the elements after it are evaluated again. Levels
    /// 0..7 go to <paramref name="lrow"/>; returns the scale.
    /// </summary>
    [SkipLocalsInit]
    public static float RefineQ3<T>(float* x, float* lrow, float iscale, float sumlx, float suml2) where T : unmanaged, IGroupLanes<T>
    {
        var v = T.Load(x);
        var w = v * v;
        var wx = w * v;
        var l = T.Level(T.Splat(iscale) * v, -4, 3);
        var wl2 = w * l * l;
        var wxl = wx * l;
        var zero = T.Zero;
        float* lane = stackalloc float[3 * G];
        for (int itry = 0; itry < 5; ++itry)
        {
            int changed = 0;
            int start = 0;
            while (start < G)
            {
                var s1 = T.Splat(sumlx);
                var s2 = T.Splat(suml2);
                var slx = s1 - wxl;
                var sl2 = s2 - wl2;
                var nl = T.Level(v * sl2 / slx, -4, 3);
                var slxN = slx + wx * nl;
                var sl2N = sl2 + w * nl * nl;
                var accept = T.AndNot(T.GreaterThan(slx, zero), T.EqualTo(nl, l))
                    & T.GreaterThan(sl2N, zero)
                    & T.GreaterThan(slxN * slxN * s2, T.Splat(sumlx * sumlx) * sl2N);
                uint moves = T.Bits(accept) & (0xFFFFu << start);
                if (moves == 0) break;
                int f = System.Numerics.BitOperations.TrailingZeroCount(moves);
                T.Store(nl, lane);
                T.Store(slxN, lane + G);
                T.Store(sl2N, lane + 2 * G);
                var at = T.EqualTo(T.Load(Iota), T.Splat(f));
                l = T.Select(at, nl, l);
                wxl = T.Select(at, wx * nl, wxl);
                wl2 = T.Select(at, w * nl * nl, wl2);
                sumlx = lane[G + f];
                suml2 = lane[2 * G + f];
                ++changed;
                start = f + 1;
            }
            if (changed == 0) break;
        }
        T.Store(l + T.Splat(4f), lrow);
        return suml2 > 0f ? sumlx / suml2 : 0f;
    }

    private static readonly float* Iota = MakeIota();

    private static float* MakeIota()
    {
        // Native memory for the life of the process: 64 bytes, read by vector loads of up to 16 lanes.
        var p = (float*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc(G * sizeof(float), 64);
        for (int i = 0; i < G; i++) p[i] = i;
        return p;
    }

    /// <summary>
    /// quantize_row_q3_K_impl's per-group part for every lane: weights qw*sqrt(sigma2 + x^2) (into
    /// <paramref name="wt"/>), their sums (<paramref name="sw"/>), and make_qx_quants(16, 4, rmse_type 1) with them.
    /// <paramref name="sigma2"/> holds each lane's block value.
    /// </summary>
    public static void MakeQxQuantsWeighted<T>(float* xt, float* qwt, float* sigma2, float* lt, float* scales, float* sw, float* wt, float* wxt)
        where T : unmanaged, IGroupLanes<T>
    {
        int c = T.Count;
        var s2 = T.Load(sigma2);
        T sumw = T.Zero;
        for (int i = 0; i < G; i++)
        {
            var v = T.Load(xt + i * c);
            var w = T.Load(qwt + i * c) * T.Sqrt(s2 + v * v);
            T.Store(w, wt + i * c);
            T.Store(w * v, wxt + i * c);
            sumw += w;
        }
        T.Store(sumw, sw);

        var max = SignedMax<T>(xt, out var zeroGroups);
        var zero = T.Zero;
        var iscale = T.Splat(-4f) / max;
        Sums<T>(iscale, xt, wt, wxt, out var sumlx, out var suml2);
        var scale = T.Select(T.EqualTo(suml2, zero), zero, sumlx / suml2);
        var best = scale * sumlx;
        var bestIscale = iscale;
        for (int step = -9; step <= 9; ++step)
        {
            if (step == 0) continue;
            iscale = T.Splat(-(4 + 0.1f * step)) / max;
            Sums<T>(iscale, xt, wt, wxt, out sumlx, out suml2);
            var accept = T.GreaterThan(suml2, zero) & T.GreaterThan(sumlx * sumlx, best * suml2);
            var s = sumlx / suml2;
            scale = T.Select(accept, s, scale);
            best = T.Select(accept, s * sumlx, best);
            bestIscale = T.Select(accept, iscale, bestIscale);
        }
        var four = T.Splat(4f);
        for (int i = 0; i < G; i++)
            T.Store(T.Select(zeroGroups, zero, T.Level(bestIscale * T.Load(xt + i * c), -4, 3) + four), lt + i * c);
        T.Store(T.Select(zeroGroups, zero, scale), scales);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Sums<T>(T iscale, float* xt, float* wt, float* wxt, out T sumlx, out T suml2) where T : unmanaged, IGroupLanes<T>
    {
        int c = T.Count;
        sumlx = T.Zero;
        suml2 = T.Zero;
        for (int i = 0; i < G; i++)
        {
            var l = T.Level(iscale * T.Load(xt + i * c), -4, 3);
            sumlx += T.Load(wxt + i * c) * l;
            suml2 += T.Load(wt + i * c) * l * l;
        }
    }

    /// <summary>
    /// make_qx_quants(16, 32, rmse_type 1) on one block's 16 group scales with weights <paramref name="w"/>, the 19
    /// candidate inverse scales in lanes (lane 0 the first guess, lanes 1..18 steps -9..-1, 1..9) so that each
    /// candidate's sums still run in element order; the choice among them is then ggml's, in ggml's order.
    /// </summary>
    [SkipLocalsInit]
    public static float MakeQxQuants32<T>(float* x, sbyte* L, float* w) where T : unmanaged, IGroupLanes<T>
    {
        const int N = 16, Nmax = 32, Candidates = 19;
        float max = 0, amax = 0;
        for (int i = 0; i < N; ++i)
        {
            float ax = MathF.Abs(x[i]);
            if (ax > amax) { amax = ax; max = x[i]; }
        }
        if (amax < QuantMath.GroupMaxEps)
        {
            for (int i = 0; i < N; ++i) L[i] = 0;
            return 0f;
        }
        const int Padded = 64; // 19 candidates rounded up to whole vectors of up to 32 lanes
        float* isc = stackalloc float[Padded];
        float* s1 = stackalloc float[Padded];
        float* s2 = stackalloc float[Padded];
        isc[0] = -Nmax / max;
        for (int k = 1; k < Padded; k++)
        {
            int step = k <= 9 ? k - 10 : k < Candidates ? k - 9 : 0;
            isc[k] = step == 0 ? isc[0] : -(Nmax + 0.1f * step) / max;
        }
        for (int k0 = 0; k0 < Candidates; k0 += T.Count)
        {
            var vi = T.Load(isc + k0);
            T sumlx = T.Zero, suml2 = T.Zero;
            for (int i = 0; i < N; ++i)
            {
                var l = T.Level(vi * T.Splat(x[i]), -Nmax, Nmax - 1);
                sumlx += T.Splat(w[i] * x[i]) * l;
                suml2 += T.Splat(w[i]) * l * l;
            }
            T.Store(sumlx, s1 + k0);
            T.Store(suml2, s2 + k0);
        }
        float scale = s2[0] != 0 ? s1[0] / s2[0] : 0f;
        float best = scale * s1[0];
        int win = 0;
        for (int k = 1; k <= 18; k++)
        {
            if (s2[k] > 0 && s1[k] * s1[k] > best * s2[k])
            {
                scale = s1[k] / s2[k];
                best = scale * s1[k];
                win = k;
            }
        }
        for (int i = 0; i < N; ++i)
        {
            int l = QuantMath.NearestInt(isc[win] * x[i]);
            L[i] = (sbyte)(Nmax + Math.Max(-Nmax, Math.Min(Nmax - 1, l)));
        }
        return scale;
    }
}
