using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace EdgeQuant.Core.Kernels;

/// <summary>
/// Rotary position embedding, in place, with a precomputed <see cref="RopeTable"/> (no TensorPrimitives
/// equivalent). Both layouts reduce to y = x·cos + partner(x)·sin with signed sin, so each is a short vector loop.
/// </summary>
public static class Rope
{
    /// <summary>
    /// Rotates every head of every token of x laid out [tokens x heads x headSize]; token t is at
    /// positions[t]. The first table.Dims elements of each head rotate; the rest (partial rotary) stay.
    /// </summary>
    public static void Apply(Span<float> x, int tokens, int heads, int headSize, ReadOnlySpan<int> positions, RopeTable table)
    {
        ArgumentNullException.ThrowIfNull(table);
        if (heads < 0) throw new ArgumentOutOfRangeException(nameof(heads), heads, "must not be negative");
        if (headSize < table.Dims) throw new ArgumentOutOfRangeException(nameof(headSize), headSize, $"smaller than the table's {table.Dims} rotary dims");
        if (tokens < 0 || positions.Length < tokens) throw new ArgumentException($"{positions.Length} positions for {tokens} tokens", nameof(positions));
        long rowLength = (long)heads * headSize;
        KernelGuard.Matrix(x.Length, tokens, (int)Math.Min(rowLength, int.MaxValue), nameof(x));
        int width = table.RowWidth;
        for (int t = 0; t < tokens; t++)
        {
            int p = positions[t];
            if ((uint)p >= (uint)table.MaxPositions)
                throw new ArgumentOutOfRangeException(nameof(positions), p, $"position of token {t} is outside the table's 0..{table.MaxPositions - 1}");
            ReadOnlySpan<float> cos = table.Cos.AsSpan(p * width, width);
            ReadOnlySpan<float> sin = table.Sin.AsSpan(p * width, width);
            for (int h = 0; h < heads; h++)
            {
                Span<float> head = x.Slice((int)(t * rowLength + h * headSize), table.Dims);
                if (table.Layout == RopeLayout.Interleaved) Interleaved(head, cos, sin);
                else RotateHalf(head, cos, sin);
            }
        }
    }

    /// <summary>Pairs (2i, 2i+1): y = x·(c,c) + swap(x)·(-s,+s). Pairs never straddle a vector, so no tail overlap.</summary>
    private static void Interleaved(Span<float> x, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin)
    {
        ref float xr = ref MemoryMarshal.GetReference(x);
        ref float cr = ref MemoryMarshal.GetReference(cos);
        ref float sr = ref MemoryMarshal.GetReference(sin);
        nuint n = (nuint)x.Length, i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            Vector512<int> swap = Vector512.Create(1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14);
            for (; i + 16 <= n; i += 16)
            {
                Vector512<float> v = Vector512.LoadUnsafe(ref xr, i);
                Vector512<float> r = v * Vector512.LoadUnsafe(ref cr, i) + Vector512.Shuffle(v, swap) * Vector512.LoadUnsafe(ref sr, i);
                r.StoreUnsafe(ref xr, i);
            }
        }
        if (Vector256.IsHardwareAccelerated)
        {
            Vector256<int> swap = Vector256.Create(1, 0, 3, 2, 5, 4, 7, 6);
            for (; i + 8 <= n; i += 8)
            {
                Vector256<float> v = Vector256.LoadUnsafe(ref xr, i);
                Vector256<float> r = v * Vector256.LoadUnsafe(ref cr, i) + Vector256.Shuffle(v, swap) * Vector256.LoadUnsafe(ref sr, i);
                r.StoreUnsafe(ref xr, i);
            }
        }
        if (Vector128.IsHardwareAccelerated)
        {
            Vector128<int> swap = Vector128.Create(1, 0, 3, 2);
            for (; i + 4 <= n; i += 4)
            {
                Vector128<float> v = Vector128.LoadUnsafe(ref xr, i);
                Vector128<float> r = v * Vector128.LoadUnsafe(ref cr, i) + Vector128.Shuffle(v, swap) * Vector128.LoadUnsafe(ref sr, i);
                r.StoreUnsafe(ref xr, i);
            }
        }
        for (; i < n; i += 2)
        {
            float a = Unsafe.Add(ref xr, i), b = Unsafe.Add(ref xr, i + 1);
            Unsafe.Add(ref xr, i) = a * Unsafe.Add(ref cr, i) + b * Unsafe.Add(ref sr, i);
            Unsafe.Add(ref xr, i + 1) = b * Unsafe.Add(ref cr, i + 1) + a * Unsafe.Add(ref sr, i + 1);
        }
    }

    /// <summary>Pairs (i, i + d/2): y1 = x1·c − x2·s, y2 = x2·c + x1·s, both halves read before either is written.</summary>
    private static void RotateHalf(Span<float> x, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin)
    {
        nuint half = (nuint)x.Length / 2, i = 0;
        ref float x1 = ref MemoryMarshal.GetReference(x);
        ref float x2 = ref Unsafe.Add(ref x1, half);
        ref float cr = ref MemoryMarshal.GetReference(cos);
        ref float sr = ref MemoryMarshal.GetReference(sin);
        if (Vector512.IsHardwareAccelerated)
        {
            for (; i + 16 <= half; i += 16)
            {
                Vector512<float> a = Vector512.LoadUnsafe(ref x1, i), b = Vector512.LoadUnsafe(ref x2, i);
                Vector512<float> c = Vector512.LoadUnsafe(ref cr, i), s = Vector512.LoadUnsafe(ref sr, i);
                (a * c - b * s).StoreUnsafe(ref x1, i);
                (b * c + a * s).StoreUnsafe(ref x2, i);
            }
        }
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i + 8 <= half; i += 8)
            {
                Vector256<float> a = Vector256.LoadUnsafe(ref x1, i), b = Vector256.LoadUnsafe(ref x2, i);
                Vector256<float> c = Vector256.LoadUnsafe(ref cr, i), s = Vector256.LoadUnsafe(ref sr, i);
                (a * c - b * s).StoreUnsafe(ref x1, i);
                (b * c + a * s).StoreUnsafe(ref x2, i);
            }
        }
        if (Vector128.IsHardwareAccelerated)
        {
            for (; i + 4 <= half; i += 4)
            {
                Vector128<float> a = Vector128.LoadUnsafe(ref x1, i), b = Vector128.LoadUnsafe(ref x2, i);
                Vector128<float> c = Vector128.LoadUnsafe(ref cr, i), s = Vector128.LoadUnsafe(ref sr, i);
                (a * c - b * s).StoreUnsafe(ref x1, i);
                (b * c + a * s).StoreUnsafe(ref x2, i);
            }
        }
        for (; i < half; i++)
        {
            float a = Unsafe.Add(ref x1, i), b = Unsafe.Add(ref x2, i), c = Unsafe.Add(ref cr, i), s = Unsafe.Add(ref sr, i);
            Unsafe.Add(ref x1, i) = a * c - b * s;
            Unsafe.Add(ref x2, i) = b * c + a * s;
        }
    }
}
