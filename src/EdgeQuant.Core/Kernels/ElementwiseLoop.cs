using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace EdgeQuant.Core.Kernels;

/// <summary>
/// The one loop driver behind every element-wise kernel. It picks the widest accelerated vector that fits the
/// length (so short rows still use 256/128-bit paths, and those paths are exercised by the 0..257 tests even on
/// AVX-512 hardware), unrolls by four to keep independent dependency chains in flight, and finishes with one
/// overlapping vector computed from the input before the loop stores anything, which makes exact in-place use safe
/// without a scalar tail.
/// </summary>
internal static class ElementwiseLoop
{
    public static void Unary<TOp>(ReadOnlySpan<float> x, Span<float> y, TOp op) where TOp : struct, IUnaryOperator
    {
        CheckDestination(x, y, nameof(y));
        nuint n = (nuint)x.Length;
        ref float xr = ref MemoryMarshal.GetReference(x);
        ref float yr = ref MemoryMarshal.GetReference(y);
        nuint i = 0;
        if (Vector512.IsHardwareAccelerated && n >= (nuint)Vector512<float>.Count)
        {
            const int w = 16;
            Vector512<float> last = op.Invoke(Vector512.LoadUnsafe(ref xr, n - w));
            for (; i + 4 * w <= n; i += 4 * w)
            {
                Vector512<float> a = op.Invoke(Vector512.LoadUnsafe(ref xr, i));
                Vector512<float> b = op.Invoke(Vector512.LoadUnsafe(ref xr, i + w));
                Vector512<float> c = op.Invoke(Vector512.LoadUnsafe(ref xr, i + 2 * w));
                Vector512<float> d = op.Invoke(Vector512.LoadUnsafe(ref xr, i + 3 * w));
                a.StoreUnsafe(ref yr, i); b.StoreUnsafe(ref yr, i + w); c.StoreUnsafe(ref yr, i + 2 * w); d.StoreUnsafe(ref yr, i + 3 * w);
            }
            for (; i + w <= n; i += w) op.Invoke(Vector512.LoadUnsafe(ref xr, i)).StoreUnsafe(ref yr, i);
            last.StoreUnsafe(ref yr, n - w);
            return;
        }
        if (Vector256.IsHardwareAccelerated && n >= (nuint)Vector256<float>.Count)
        {
            const int w = 8;
            Vector256<float> last = op.Invoke(Vector256.LoadUnsafe(ref xr, n - w));
            for (; i + 4 * w <= n; i += 4 * w)
            {
                Vector256<float> a = op.Invoke(Vector256.LoadUnsafe(ref xr, i));
                Vector256<float> b = op.Invoke(Vector256.LoadUnsafe(ref xr, i + w));
                Vector256<float> c = op.Invoke(Vector256.LoadUnsafe(ref xr, i + 2 * w));
                Vector256<float> d = op.Invoke(Vector256.LoadUnsafe(ref xr, i + 3 * w));
                a.StoreUnsafe(ref yr, i); b.StoreUnsafe(ref yr, i + w); c.StoreUnsafe(ref yr, i + 2 * w); d.StoreUnsafe(ref yr, i + 3 * w);
            }
            for (; i + w <= n; i += w) op.Invoke(Vector256.LoadUnsafe(ref xr, i)).StoreUnsafe(ref yr, i);
            last.StoreUnsafe(ref yr, n - w);
            return;
        }
        if (Vector128.IsHardwareAccelerated && n >= (nuint)Vector128<float>.Count)
        {
            const int w = 4;
            Vector128<float> last = op.Invoke(Vector128.LoadUnsafe(ref xr, n - w));
            for (; i + w <= n; i += w) op.Invoke(Vector128.LoadUnsafe(ref xr, i)).StoreUnsafe(ref yr, i);
            last.StoreUnsafe(ref yr, n - w);
            return;
        }
        for (; i < n; i++) Unsafe.Add(ref yr, i) = op.Invoke(Unsafe.Add(ref xr, i));
    }

    public static void Binary<TOp>(ReadOnlySpan<float> x, ReadOnlySpan<float> y, Span<float> z, TOp op)
        where TOp : struct, IBinaryOperator
    {
        if (y.Length != x.Length) throw new ArgumentException($"length {y.Length} differs from {x.Length}", nameof(y));
        CheckDestination(x, z, nameof(z));
        CheckDestination(y, z, nameof(z));
        nuint n = (nuint)x.Length;
        ref float xr = ref MemoryMarshal.GetReference(x);
        ref float yr = ref MemoryMarshal.GetReference(y);
        ref float zr = ref MemoryMarshal.GetReference(z);
        nuint i = 0;
        if (Vector512.IsHardwareAccelerated && n >= (nuint)Vector512<float>.Count)
        {
            const int w = 16;
            Vector512<float> last = op.Invoke(Vector512.LoadUnsafe(ref xr, n - w), Vector512.LoadUnsafe(ref yr, n - w));
            for (; i + 2 * w <= n; i += 2 * w)
            {
                Vector512<float> a = op.Invoke(Vector512.LoadUnsafe(ref xr, i), Vector512.LoadUnsafe(ref yr, i));
                Vector512<float> b = op.Invoke(Vector512.LoadUnsafe(ref xr, i + w), Vector512.LoadUnsafe(ref yr, i + w));
                a.StoreUnsafe(ref zr, i); b.StoreUnsafe(ref zr, i + w);
            }
            for (; i + w <= n; i += w) op.Invoke(Vector512.LoadUnsafe(ref xr, i), Vector512.LoadUnsafe(ref yr, i)).StoreUnsafe(ref zr, i);
            last.StoreUnsafe(ref zr, n - w);
            return;
        }
        if (Vector256.IsHardwareAccelerated && n >= (nuint)Vector256<float>.Count)
        {
            const int w = 8;
            Vector256<float> last = op.Invoke(Vector256.LoadUnsafe(ref xr, n - w), Vector256.LoadUnsafe(ref yr, n - w));
            for (; i + 2 * w <= n; i += 2 * w)
            {
                Vector256<float> a = op.Invoke(Vector256.LoadUnsafe(ref xr, i), Vector256.LoadUnsafe(ref yr, i));
                Vector256<float> b = op.Invoke(Vector256.LoadUnsafe(ref xr, i + w), Vector256.LoadUnsafe(ref yr, i + w));
                a.StoreUnsafe(ref zr, i); b.StoreUnsafe(ref zr, i + w);
            }
            for (; i + w <= n; i += w) op.Invoke(Vector256.LoadUnsafe(ref xr, i), Vector256.LoadUnsafe(ref yr, i)).StoreUnsafe(ref zr, i);
            last.StoreUnsafe(ref zr, n - w);
            return;
        }
        if (Vector128.IsHardwareAccelerated && n >= (nuint)Vector128<float>.Count)
        {
            const int w = 4;
            Vector128<float> last = op.Invoke(Vector128.LoadUnsafe(ref xr, n - w), Vector128.LoadUnsafe(ref yr, n - w));
            for (; i + w <= n; i += w) op.Invoke(Vector128.LoadUnsafe(ref xr, i), Vector128.LoadUnsafe(ref yr, i)).StoreUnsafe(ref zr, i);
            last.StoreUnsafe(ref zr, n - w);
            return;
        }
        for (; i < n; i++) Unsafe.Add(ref zr, i) = op.Invoke(Unsafe.Add(ref xr, i), Unsafe.Add(ref yr, i));
    }

    public static void Ternary<TOp>(ReadOnlySpan<float> x, ReadOnlySpan<float> y, ReadOnlySpan<float> z, Span<float> d, TOp op)
        where TOp : struct, ITernaryOperator
    {
        if (y.Length != x.Length) throw new ArgumentException($"length {y.Length} differs from {x.Length}", nameof(y));
        if (z.Length != x.Length) throw new ArgumentException($"length {z.Length} differs from {x.Length}", nameof(z));
        CheckDestination(x, d, nameof(d));
        CheckDestination(y, d, nameof(d));
        CheckDestination(z, d, nameof(d));
        nuint n = (nuint)x.Length;
        ref float xr = ref MemoryMarshal.GetReference(x);
        ref float yr = ref MemoryMarshal.GetReference(y);
        ref float zr = ref MemoryMarshal.GetReference(z);
        ref float dr = ref MemoryMarshal.GetReference(d);
        nuint i = 0;
        if (Vector512.IsHardwareAccelerated && n >= (nuint)Vector512<float>.Count)
        {
            const int w = 16;
            Vector512<float> last = op.Invoke(Vector512.LoadUnsafe(ref xr, n - w), Vector512.LoadUnsafe(ref yr, n - w), Vector512.LoadUnsafe(ref zr, n - w));
            for (; i + w <= n; i += w)
                op.Invoke(Vector512.LoadUnsafe(ref xr, i), Vector512.LoadUnsafe(ref yr, i), Vector512.LoadUnsafe(ref zr, i)).StoreUnsafe(ref dr, i);
            last.StoreUnsafe(ref dr, n - w);
            return;
        }
        if (Vector256.IsHardwareAccelerated && n >= (nuint)Vector256<float>.Count)
        {
            const int w = 8;
            Vector256<float> last = op.Invoke(Vector256.LoadUnsafe(ref xr, n - w), Vector256.LoadUnsafe(ref yr, n - w), Vector256.LoadUnsafe(ref zr, n - w));
            for (; i + w <= n; i += w)
                op.Invoke(Vector256.LoadUnsafe(ref xr, i), Vector256.LoadUnsafe(ref yr, i), Vector256.LoadUnsafe(ref zr, i)).StoreUnsafe(ref dr, i);
            last.StoreUnsafe(ref dr, n - w);
            return;
        }
        if (Vector128.IsHardwareAccelerated && n >= (nuint)Vector128<float>.Count)
        {
            const int w = 4;
            Vector128<float> last = op.Invoke(Vector128.LoadUnsafe(ref xr, n - w), Vector128.LoadUnsafe(ref yr, n - w), Vector128.LoadUnsafe(ref zr, n - w));
            for (; i + w <= n; i += w)
                op.Invoke(Vector128.LoadUnsafe(ref xr, i), Vector128.LoadUnsafe(ref yr, i), Vector128.LoadUnsafe(ref zr, i)).StoreUnsafe(ref dr, i);
            last.StoreUnsafe(ref dr, n - w);
            return;
        }
        for (; i < n; i++) Unsafe.Add(ref dr, i) = op.Invoke(Unsafe.Add(ref xr, i), Unsafe.Add(ref yr, i), Unsafe.Add(ref zr, i));
    }

    /// <summary>y = f(x) and returns the sum of y. The overlapping last vector is masked so no element counts twice.</summary>
    public static float UnaryWithSum<TOp>(ReadOnlySpan<float> x, Span<float> y, TOp op) where TOp : struct, IUnaryOperator
    {
        CheckDestination(x, y, nameof(y));
        nuint n = (nuint)x.Length;
        ref float xr = ref MemoryMarshal.GetReference(x);
        ref float yr = ref MemoryMarshal.GetReference(y);
        nuint i = 0;
        if (Vector512.IsHardwareAccelerated && n >= (nuint)Vector512<float>.Count)
        {
            const int w = 16;
            Vector512<float> last = op.Invoke(Vector512.LoadUnsafe(ref xr, n - w));
            Vector512<float> s0 = Vector512<float>.Zero, s1 = Vector512<float>.Zero;
            for (; i + 2 * w <= n; i += 2 * w)
            {
                Vector512<float> a = op.Invoke(Vector512.LoadUnsafe(ref xr, i));
                Vector512<float> b = op.Invoke(Vector512.LoadUnsafe(ref xr, i + w));
                a.StoreUnsafe(ref yr, i); b.StoreUnsafe(ref yr, i + w);
                s0 += a; s1 += b;
            }
            for (; i + w <= n; i += w)
            {
                Vector512<float> a = op.Invoke(Vector512.LoadUnsafe(ref xr, i));
                a.StoreUnsafe(ref yr, i);
                s0 += a;
            }
            last.StoreUnsafe(ref yr, n - w);
            // Lanes of `last` below i were already summed by the loop.
            Vector512<int> lane = Vector512.Create((int)(n - w)) + Vector512<int>.Indices;
            s1 += Vector512.ConditionalSelect(Vector512.GreaterThanOrEqual(lane, Vector512.Create((int)i)).AsSingle(), last, Vector512<float>.Zero);
            return Vector512.Sum(s0 + s1);
        }
        if (Vector256.IsHardwareAccelerated && n >= (nuint)Vector256<float>.Count)
        {
            const int w = 8;
            Vector256<float> last = op.Invoke(Vector256.LoadUnsafe(ref xr, n - w));
            Vector256<float> s0 = Vector256<float>.Zero;
            for (; i + w <= n; i += w)
            {
                Vector256<float> a = op.Invoke(Vector256.LoadUnsafe(ref xr, i));
                a.StoreUnsafe(ref yr, i);
                s0 += a;
            }
            last.StoreUnsafe(ref yr, n - w);
            Vector256<int> lane = Vector256.Create((int)(n - w)) + Vector256<int>.Indices;
            s0 += Vector256.ConditionalSelect(Vector256.GreaterThanOrEqual(lane, Vector256.Create((int)i)).AsSingle(), last, Vector256<float>.Zero);
            return Vector256.Sum(s0);
        }
        if (Vector128.IsHardwareAccelerated && n >= (nuint)Vector128<float>.Count)
        {
            const int w = 4;
            Vector128<float> last = op.Invoke(Vector128.LoadUnsafe(ref xr, n - w));
            Vector128<float> s0 = Vector128<float>.Zero;
            for (; i + w <= n; i += w)
            {
                Vector128<float> a = op.Invoke(Vector128.LoadUnsafe(ref xr, i));
                a.StoreUnsafe(ref yr, i);
                s0 += a;
            }
            last.StoreUnsafe(ref yr, n - w);
            Vector128<int> lane = Vector128.Create((int)(n - w)) + Vector128<int>.Indices;
            s0 += Vector128.ConditionalSelect(Vector128.GreaterThanOrEqual(lane, Vector128.Create((int)i)).AsSingle(), last, Vector128<float>.Zero);
            return Vector128.Sum(s0);
        }
        float s = 0;
        for (; i < n; i++)
        {
            float v = op.Invoke(Unsafe.Add(ref xr, i));
            Unsafe.Add(ref yr, i) = v;
            s += v;
        }
        return s;
    }

    /// <summary>
    /// The destination must be as long as the source and either be the very same memory (in place) or not overlap
    /// it at all: a shifted overlap would read elements this loop has already overwritten.
    /// </summary>
    internal static void CheckDestination(ReadOnlySpan<float> source, Span<float> destination, string name)
    {
        if (destination.Length < source.Length)
            throw new ArgumentException($"destination holds {destination.Length} elements, {source.Length} needed", name);
        if (source.Overlaps(destination, out int offset) && offset != 0)
            throw new ArgumentException("destination partially overlaps a source; use the same span for in-place work", name);
    }
}
