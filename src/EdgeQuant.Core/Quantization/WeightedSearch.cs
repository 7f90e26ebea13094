using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace EdgeQuant.Core.Quantization;

/// <summary>
/// Vector versions of <see cref="QuantMath.MakeQxQuants"/> and <see cref="QuantMath.MakeQkx3Quants"/> for 32-element
/// blocks, returning the same floats. Why this is exact: every per-element product is the same IEEE operation in a
/// lane as in ggml's scalar loop (no fused multiply-add), and the sums, which must keep ggml's left-to-right order,
/// are added one element at a time from the stored products. The vectors remove the per-element rounding, clamping
/// and conversion work; the in-order sums are what remains (ggml's compiler cannot reorder them either).
/// </summary>
internal static unsafe class WeightedSearch
{
    private const int N = QuantBlocks.QK;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> NearestInt(Vector256<float> f) =>
        ((f + Vector256.Create(12582912f)).AsInt32() & Vector256.Create(0x007fffff)) - Vector256.Create(0x00400000);

    /// <summary>Same result as <see cref="QuantMath.MakeQxQuants"/> with n = 32.</summary>
    public static float MakeQxQuants(int nmax, float* x, sbyte* L, float* qw) => MakeQxQuants(N, nmax, x, L, qw);

    /// <summary>
    /// Same result as <see cref="QuantMath.MakeQxQuants"/> for n = 16 or 32; a null <paramref name="qw"/> means
    /// weights x^2 (the products x*x are formed first, as in ggml's loop).
    /// </summary>
    public static float MakeQxQuants(int n, int nmax, float* x, sbyte* L, float* qw)
    {
        if (!Vector256.IsHardwareAccelerated || (n != 16 && n != 32)) return QuantMath.MakeQxQuants(n, nmax, x, L, qw);
        float* w2 = stackalloc float[N];
        if (qw == null)
        {
            for (int k = 0; k < n; k += 8)
            {
                var xv = Vector256.Load(x + k);
                Vector256.Store(xv * xv, w2 + k);
            }
            qw = w2;
        }
        float max = 0, amax = 0;
        for (int i = 0; i < n; ++i)
        {
            float ax = MathF.Abs(x[i]);
            if (ax > amax) { amax = ax; max = x[i]; }
        }
        if (amax < QuantMath.GroupMaxEps)
        {
            for (int i = 0; i < n; ++i) L[i] = 0;
            return 0f;
        }
        float* p1 = stackalloc float[N];
        float* p2 = stackalloc float[N];
        var lo = Vector256.Create(-nmax);
        var hi = Vector256.Create(nmax - 1);

        float iscale = -nmax / max;
        Levels(n, iscale, x, qw, p1, p2, lo, hi, nmax, L);
        float sumlx = 0, suml2 = 0;
        for (int i = 0; i < n; ++i) { sumlx += p1[i]; suml2 += p2[i]; }
        float scale = suml2 != 0 ? sumlx / suml2 : 0f;
        float best = scale * sumlx;
        for (int step = -9; step <= 9; ++step)
        {
            if (step == 0) continue;
            iscale = -(nmax + 0.1f * step) / max;
            Levels(n, iscale, x, qw, p1, p2, lo, hi, nmax, null);
            sumlx = suml2 = 0;
            for (int i = 0; i < n; ++i) { sumlx += p1[i]; suml2 += p2[i]; }
            if (suml2 > 0 && sumlx * sumlx > best * suml2)
            {
                Levels(n, iscale, x, qw, p1, p2, lo, hi, nmax, L);
                scale = sumlx / suml2;
                best = scale * sumlx;
            }
        }
        return scale;
    }

    /// <summary>The levels for one inverse scale, the products w*x*l and w*l*l (ggml's association), and optionally L = l + nmax.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Levels(int n, float iscale, float* x, float* w, float* p1, float* p2, Vector256<int> lo, Vector256<int> hi, int nmax, sbyte* L)
    {
        var vs = Vector256.Create(iscale);
        Vector256<int> l0 = default, l1 = default, l2 = default, l3 = default;
        for (int k = 0; k < n / 8; k++)
        {
            var xv = Vector256.Load(x + 8 * k);
            var wv = Vector256.Load(w + 8 * k);
            var l = Vector256.Min(Vector256.Max(NearestInt(vs * xv), lo), hi);
            var lf = Vector256.ConvertToSingle(l);
            Vector256.Store(wv * xv * lf, p1 + 8 * k);
            Vector256.Store(wv * lf * lf, p2 + 8 * k);
            switch (k) { case 0: l0 = l; break; case 1: l1 = l; break; case 2: l2 = l; break; default: l3 = l; break; }
        }
        if (L != null)
        {
            var off = Vector256.Create(nmax);
            var s0 = Vector256.Narrow(l0 + off, l1 + off);
            if (n == 16)
            {
                Vector128.Narrow(s0.GetLower(), s0.GetUpper()).Store(L);
                return;
            }
            var s1 = Vector256.Narrow(l2 + off, l3 + off);
            Vector256.Narrow(s0, s1).Store(L);
        }
    }

    /// <summary>Same result as <see cref="QuantMath.MakeQkx3Quants"/> with n = 32 (use_mad false).</summary>
    public static float MakeQkx3Quants(int nmax, float* x, float* weights, byte* L, out float theMin, float rmin, float rdelta, int nstep)
    {
        if (!Vector256.IsHardwareAccelerated)
        {
            byte* aux = stackalloc byte[N];
            return QuantMath.MakeQkx3Quants(N, nmax, x, weights, L, out theMin, aux, rmin, rdelta, nstep);
        }
        if (!QuantMath.Qkx3Start(N, x, weights, L, out float min, out float max, out float sumW, out float sumX))
        {
            theMin = -min;
            return 0f;
        }
        float* pa = stackalloc float[N];
        float* pb = stackalloc float[N];
        float* pc = stackalloc float[N];
        byte* laux = stackalloc byte[N];
        var zero = Vector256<int>.Zero;
        var top = Vector256.Create(nmax);

        float iscale = nmax / (max - min);
        float scale = 1 / iscale;
        AffineLevels(iscale, min, x, zero, top, L, out var l0, out var l1, out var l2, out var l3);
        float bestMad = Mad(scale, min, x, weights, l0, l1, l2, l3, pa);
        if (nstep < 1)
        {
            theMin = -min;
            return scale;
        }
        for (int step = 0; step <= nstep; ++step)
        {
            iscale = (rmin + rdelta * step + nmax) / (max - min);
            AffineLevels(iscale, min, x, zero, top, laux, out l0, out l1, out l2, out l3);
            for (int k = 0; k < 4; k++)
            {
                var lf = Vector256.ConvertToSingle(k switch { 0 => l0, 1 => l1, 2 => l2, _ => l3 });
                var wl = Vector256.Load(weights + 8 * k) * lf;
                Vector256.Store(wl, pa + 8 * k);
                Vector256.Store(wl * lf, pb + 8 * k);
                Vector256.Store(wl * Vector256.Load(x + 8 * k), pc + 8 * k);
            }
            float sumL = 0, sumL2 = 0, sumXL = 0;
            for (int i = 0; i < N; ++i) { sumL += pa[i]; sumL2 += pb[i]; sumXL += pc[i]; }
            float D = sumW * sumL2 - sumL * sumL;
            if (D > 0)
            {
                float thisScale = (sumW * sumXL - sumX * sumL) / D;
                float thisMin = (sumL2 * sumX - sumL * sumXL) / D;
                if (thisMin > 0)
                {
                    thisMin = 0;
                    thisScale = sumXL / sumL2;
                }
                float mad = Mad(thisScale, thisMin, x, weights, l0, l1, l2, l3, pa);
                if (mad < bestMad)
                {
                    Vector256.Load(laux).Store(L);
                    bestMad = mad;
                    scale = thisScale;
                    min = thisMin;
                }
            }
        }
        theMin = -min;
        return scale;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AffineLevels(float iscale, float min, float* x, Vector256<int> zero, Vector256<int> top, byte* L,
        out Vector256<int> l0, out Vector256<int> l1, out Vector256<int> l2, out Vector256<int> l3)
    {
        var vs = Vector256.Create(iscale);
        var vm = Vector256.Create(min);
        l0 = Vector256.Min(Vector256.Max(NearestInt(vs * (Vector256.Load(x) - vm)), zero), top);
        l1 = Vector256.Min(Vector256.Max(NearestInt(vs * (Vector256.Load(x + 8) - vm)), zero), top);
        l2 = Vector256.Min(Vector256.Max(NearestInt(vs * (Vector256.Load(x + 16) - vm)), zero), top);
        l3 = Vector256.Min(Vector256.Max(NearestInt(vs * (Vector256.Load(x + 24) - vm)), zero), top);
        Vector256.Narrow(Vector256.Narrow(l0, l1), Vector256.Narrow(l2, l3)).AsByte().Store(L);
    }

    /// <summary>Sum of w * (scale*l + min - x)^2 in element order, ggml's association.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Mad(float scale, float min, float* x, float* w, Vector256<int> l0, Vector256<int> l1, Vector256<int> l2, Vector256<int> l3, float* p)
    {
        var vs = Vector256.Create(scale);
        var vm = Vector256.Create(min);
        for (int k = 0; k < 4; k++)
        {
            var lf = Vector256.ConvertToSingle(k switch { 0 => l0, 1 => l1, 2 => l2, _ => l3 });
            var diff = vs * lf + vm - Vector256.Load(x + 8 * k);
            Vector256.Store(Vector256.Load(w + 8 * k) * (diff * diff), p + 8 * k);
        }
        float mad = 0;
        for (int i = 0; i < N; ++i) mad += p[i];
        return mad;
    }
}
