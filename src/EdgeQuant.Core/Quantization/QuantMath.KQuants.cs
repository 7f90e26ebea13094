using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace EdgeQuant.Core.Quantization;

// The pieces of ggml-quants.c that Q2_K, Q4_K and Q5_K share: make_qkx2_quants (the affine scale/min search without
// an importance vector), make_qp_quants (quantizing a super-block's group scales against importance sums), the 6-bit
// scale/min packing of Q4_K/Q5_K, and the whole Q4_K/Q5_K super-block up to the levels. Each exists as ggml's scalar
// code in ggml's order (the tested reference) and, where it pays, as a vector version returning the same floats.
internal static partial class QuantMath
{
    /// <summary>
    /// ggml's make_qkx2_quants: scale and (negated) min of an affine 0..nmax grid under <paramref name="weights"/>,
    /// the error being w*|diff| (<paramref name="useMad"/>, Q2_K) or w*diff^2, over nstep+1 candidate inverse scales
    /// refitted by weighted least squares. make_qkx3_quants with weights is the same function with use_mad false (its
    /// flat test max &lt;= min equals qkx2's max == min once min is clamped to at most 0), so both searches share
    /// <see cref="Qkx3Start"/>.
    /// </summary>
    public static unsafe float MakeQkx2Quants(int n, int nmax, float* x, float* weights, byte* L, out float theMin, byte* Laux,
        float rmin, float rdelta, int nstep, bool useMad)
    {
        if (!Qkx3Start(n, x, weights, L, out float min, out float max, out float sumW, out float sumX))
        {
            theMin = -min;
            return 0f;
        }
        float iscale = nmax / (max - min);
        float scale = 1 / iscale;
        float bestError = 0;
        for (int i = 0; i < n; ++i)
        {
            int l = NearestInt(iscale * (x[i] - min));
            L[i] = (byte)Math.Max(0, Math.Min(nmax, l));
            float diff = scale * L[i] + min - x[i];
            diff = useMad ? MathF.Abs(diff) : diff * diff;
            bestError += weights[i] * diff;
        }
        if (nstep < 1)
        {
            theMin = -min;
            return scale;
        }
        for (int step = 0; step <= nstep; ++step)
        {
            iscale = (rmin + rdelta * step + nmax) / (max - min);
            float sumL = 0, sumL2 = 0, sumXL = 0;
            for (int i = 0; i < n; ++i)
            {
                int l = NearestInt(iscale * (x[i] - min));
                l = Math.Max(0, Math.Min(nmax, l));
                Laux[i] = (byte)l;
                float w = weights[i];
                sumL += w * l;
                sumL2 += w * l * l;
                sumXL += w * l * x[i];
            }
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
                float error = 0;
                for (int i = 0; i < n; ++i)
                {
                    float diff = thisScale * Laux[i] + thisMin - x[i];
                    diff = useMad ? MathF.Abs(diff) : diff * diff;
                    error += weights[i] * diff;
                }
                if (error < bestError)
                {
                    for (int i = 0; i < n; ++i) L[i] = Laux[i];
                    bestError = error;
                    scale = thisScale;
                    min = thisMin;
                }
            }
        }
        theMin = -min;
        return scale;
    }

    /// <summary>
    /// ggml's make_qp_quants: the scale of the non-negative values <paramref name="x"/> (group scales or mins) on the
    /// grid 0..nmax under importance <paramref name="qw"/>; 9 candidate scales, then up to 5 rounds of one-level
    /// changes that raise sumlx^2/suml2. L is uint8_t in ggml: a negative level wraps and is read back wrapped, which
    /// the byte pointer here reproduces.
    /// </summary>
    public static unsafe float MakeQpQuants(int n, int nmax, float* x, byte* L, float* qw)
    {
        float max = 0;
        for (int i = 0; i < n; ++i) max = max > x[i] ? max : x[i];
        if (max < GroupMaxEps)
        {
            for (int i = 0; i < n; ++i) L[i] = 0;
            return 0f;
        }
        float iscale = nmax / max;
        for (int i = 0; i < n; ++i) L[i] = (byte)NearestInt(iscale * x[i]);
        float scale = 1 / iscale;
        float bestMse = 0;
        for (int i = 0; i < n; ++i)
        {
            float diff = x[i] - scale * L[i];
            float w = qw[i];
            bestMse += w * diff * diff;
        }
        for (int step = -4; step <= 4; ++step)
        {
            if (step == 0) continue;
            float iscaleStep = (0.1f * step + nmax) / max;
            float scaleStep = 1 / iscaleStep;
            float mse = 0;
            for (int i = 0; i < n; ++i)
            {
                int l = Math.Min(nmax, NearestInt(iscaleStep * x[i]));
                float diff = x[i] - scaleStep * l;
                float w = qw[i];
                mse += w * diff * diff;
            }
            if (mse < bestMse)
            {
                bestMse = mse;
                iscale = iscaleStep;
            }
        }
        float sumlx = 0, suml2 = 0;
        for (int i = 0; i < n; ++i)
        {
            int l = Math.Min(nmax, NearestInt(iscale * x[i]));
            L[i] = (byte)l;
            float w = qw[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        for (int round = 0; round < 5; ++round)
        {
            int changed = 0;
            for (int i = 0; i < n; ++i)
            {
                float w = qw[i];
                float slx = sumlx - w * x[i] * L[i];
                float sl2 = suml2 - w * L[i] * L[i];
                if (slx > 0 && sl2 > 0)
                {
                    int newL = Math.Min(nmax, NearestInt(x[i] * sl2 / slx));
                    if (newL != L[i])
                    {
                        slx += w * x[i] * newL;
                        sl2 += w * newL * newL;
                        if (slx * slx * suml2 > sumlx * sumlx * sl2)
                        {
                            L[i] = (byte)newL;
                            sumlx = slx;
                            suml2 = sl2;
                            ++changed;
                        }
                    }
                }
            }
            if (changed == 0) break;
        }
        return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
    }

    /// <summary>
    /// Q4_K/Q5_K's packing of group <paramref name="j"/>'s 6-bit scale and min into 12 bytes (the inverse of
    /// get_scale_min_k4), with ggml's byte truncations: groups 0..3 must be stored before 4..7 OR their top bits in.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void PackScaleMinK4(byte* scales, int j, byte ls, byte lm)
    {
        if (j < 4)
        {
            scales[j] = ls;
            scales[j + 4] = lm;
        }
        else
        {
            scales[j + 4] = (byte)((ls & 0xF) | ((lm & 0xF) << 4));
            scales[j - 4] |= (byte)((ls >> 4) << 6);
            scales[j] |= (byte)((lm >> 4) << 6);
        }
    }
}

/// <summary>
/// The Q4_K/Q5_K super-block up to its levels (quantize_row_q4_K_ref/_impl and quantize_row_q5_K_ref/_impl differ
/// only in nmax, the search's parameters, whether the importance path clamps the packed levels to 63, and how the
/// levels are finally packed). Fills <c>L[256]</c> and the block header (d, dmin, 12 bytes of scales).
/// </summary>
internal static unsafe class KScaleMinBlock
{
    private const int QK_K = QuantBlocks.QK_K;

    /// <param name="x">256 inputs.</param>
    /// <param name="qw">The super-block's 256 importance entries, or null for the _ref quantizer.</param>
    /// <param name="nmax">15 (Q4_K) or 31 (Q5_K).</param>
    /// <param name="rmin">The _ref search's first step offset (Q4_K -1, Q5_K -0.5).</param>
    /// <param name="nstep">The _ref search's steps (Q4_K 20, Q5_K 15).</param>
    /// <param name="clampWeighted">Q5_K's _impl clamps make_qp_quants' levels to 63; Q4_K's stores them as they are.</param>
    /// <param name="reference">ggml's scalar loops instead of the vector ones.</param>
    public static void Quantize(float* x, float* qw, int nmax, float rmin, int nstep, bool clampWeighted, bool reference,
        byte* L, Half* d, Half* dmin, byte* packed)
    {
        float* weights = stackalloc float[32];
        float* scales = stackalloc float[8];
        float* mins = stackalloc float[8];
        byte* laux = stackalloc byte[32];
        bool vector = !reference && Vector256.IsHardwareAccelerated;
        if (qw == null)
        {
            float maxScale = 0, maxMin = 0;
            for (int j = 0; j < 8; ++j)
            {
                float* xs = x + 32 * j;
                float sumX2 = 0;
                for (int l = 0; l < 32; ++l) sumX2 += xs[l] * xs[l];
                float avX = MathF.Sqrt(sumX2 / 32);
                if (vector)
                {
                    var va = Vector256.Create(avX);
                    for (int l = 0; l < 32; l += 8) Vector256.Store(va + Vector256.Abs(Vector256.Load(xs + l)), weights + l);
                    scales[j] = StepLanes.Search(32, nmax, xs, weights, L + 32 * j, out mins[j], rmin, 0.1f, nstep, useMad: false);
                }
                else
                {
                    for (int l = 0; l < 32; ++l) weights[l] = avX + MathF.Abs(xs[l]);
                    scales[j] = QuantMath.MakeQkx2Quants(32, nmax, xs, weights, L + 32 * j, out mins[j], laux, rmin, 0.1f, nstep, useMad: false);
                }
                if (scales[j] > maxScale) maxScale = scales[j];
                if (mins[j] > maxMin) maxMin = mins[j];
            }
            float invScale = maxScale > 0 ? 63f / maxScale : 0f;
            float invMin = maxMin > 0 ? 63f / maxMin : 0f;
            for (int j = 0; j < 8; ++j)
            {
                byte ls = (byte)QuantMath.NearestInt(invScale * scales[j]);
                byte lm = (byte)QuantMath.NearestInt(invMin * mins[j]);
                QuantMath.PackScaleMinK4(packed, j, Math.Min((byte)63, ls), Math.Min((byte)63, lm));
            }
            *d = QuantMath.ToHalf(maxScale / 63f);
            *dmin = QuantMath.ToHalf(maxMin / 63f);
        }
        else
        {
            float* sw = stackalloc float[8];
            byte* Ls = stackalloc byte[8];
            byte* Lm = stackalloc byte[8];
            float sumX2 = 0;
            for (int l = 0; l < QK_K; ++l) sumX2 += x[l] * x[l];
            float sigma2 = 2 * sumX2 / QK_K;
            for (int j = 0; j < 8; ++j)
            {
                float* xs = x + 32 * j;
                if (vector)
                {
                    var vs = Vector256.Create(sigma2);
                    for (int l = 0; l < 32; l += 8)
                    {
                        var xv = Vector256.Load(xs + l);
                        Vector256.Store(Vector256.Load(qw + 32 * j + l) * Vector256.Sqrt(vs + xv * xv), weights + l);
                    }
                }
                else
                {
                    QuantMath.BlockWeights(xs, qw + 32 * j, sigma2, weights, 32);
                }
                float sumw = 0;
                for (int l = 0; l < 32; ++l) sumw += weights[l];
                sw[j] = sumw;
                scales[j] = vector
                    ? StepLanes.Search(32, nmax, xs, weights, L + 32 * j, out mins[j], -0.9f, 0.05f, 36, useMad: false)
                    : QuantMath.MakeQkx3Quants(32, nmax, xs, weights, L + 32 * j, out mins[j], laux, -0.9f, 0.05f, 36);
            }
            float dBlock = QuantMath.MakeQpQuants(8, 63, scales, Ls, sw);
            float mBlock = QuantMath.MakeQpQuants(8, 63, mins, Lm, sw);
            for (int j = 0; j < 8; ++j)
            {
                byte ls = Ls[j], lm = Lm[j];
                if (clampWeighted)
                {
                    ls = Math.Min((byte)63, ls);
                    lm = Math.Min((byte)63, lm);
                }
                QuantMath.PackScaleMinK4(packed, j, ls, lm);
            }
            *d = QuantMath.ToHalf(dBlock);
            *dmin = QuantMath.ToHalf(mBlock);
        }

        // Requantize every group against its stored (fp16 times 6-bit) scale and min; a zero scale keeps the search's levels.
        float dAll = (float)*d, mAll = (float)*dmin;
        for (int j = 0; j < 8; ++j)
        {
            KScales.Get(j, packed, out int sc, out int m);
            float dj = dAll * sc;
            if (dj == 0) continue;
            float dm = mAll * m;
            float* xs = x + 32 * j;
            if (vector) StepLanes.Requantize32(xs, dm, dj, nmax, L + 32 * j);
            else
            {
                for (int ii = 0; ii < 32; ++ii)
                {
                    int l = QuantMath.NearestInt((xs[ii] + dm) / dj);
                    L[32 * j + ii] = (byte)Math.Max(0, Math.Min(nmax, l));
                }
            }
        }
    }
}

/// <summary>
/// The vector form of make_qkx2_quants / make_qkx3_quants. ggml tries nstep+1 candidate inverse scales one after the
/// other, each with in-order sums over the group. Here a window of 8 consecutive candidates runs at once, one per
/// vector lane (the first window's lane 0 is the opening guess nmax/(max-min)), so a lane performs exactly ggml's
/// scalar sequence of float operations for its candidate (same products, same left-to-right sums, no fused
/// multiply-add). The candidates are not independent, though: when one wins, ggml moves min to the winner's min, and
/// the later candidates' inverse scales and levels use the new min. So the window's candidates are judged in ggml's
/// order with ggml's comparisons, and after a win the next window starts at the candidate after the winner, computed
/// with the new min. The returned floats and levels are ggml's.
/// </summary>
[SkipLocalsInit]
internal static unsafe class StepLanes
{
    private const int W = 8;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> NearestInt(Vector256<float> f) =>
        ((f + Vector256.Create(12582912f)).AsInt32() & Vector256.Create(0x007fffff)) - Vector256.Create(0x00400000);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Level(Vector256<float> v, Vector256<int> top) =>
        Vector256.ConvertToSingle(Vector256.Min(Vector256.Max(NearestInt(v), Vector256<int>.Zero), top));

    /// <summary>
    /// Same scale, min and levels as <see cref="QuantMath.MakeQkx2Quants"/> (and, with useMad false, as
    /// <see cref="QuantMath.MakeQkx3Quants"/>) for n = 16 or 32 and nstep &gt;= 1.
    /// </summary>
    public static float Search(int n, int nmax, float* x, float* w, byte* L, out float theMin, float rmin, float rdelta, int nstep, bool useMad)
    {
        if (nstep < 1 || (n != 16 && n != 32) || !Vector256.IsHardwareAccelerated)
        {
            byte* aux = stackalloc byte[n];
            return QuantMath.MakeQkx2Quants(n, nmax, x, w, L, out theMin, aux, rmin, rdelta, nstep, useMad);
        }
        return useMad
            ? Search<AbsoluteError>(n, nmax, x, w, L, out theMin, rmin, rdelta, nstep)
            : Search<SquaredError>(n, nmax, x, w, L, out theMin, rmin, rdelta, nstep);
    }

    /// <summary>L = clamp(nearest_int(iscale * (x - min)), 0, nmax) for n = 16 or 32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreLevels(int n, float* x, float iscale, float min, Vector256<int> top, byte* L)
    {
        var vs = Vector256.Create(iscale);
        var vm = Vector256.Create(min);
        var l0 = Vector256.Min(Vector256.Max(NearestInt(vs * (Vector256.Load(x) - vm)), Vector256<int>.Zero), top);
        var l1 = Vector256.Min(Vector256.Max(NearestInt(vs * (Vector256.Load(x + 8) - vm)), Vector256<int>.Zero), top);
        var s0 = Vector256.Narrow(l0, l1);
        if (n == 16)
        {
            Vector128.Narrow(s0.GetLower(), s0.GetUpper()).AsByte().Store(L);
            return;
        }
        var l2 = Vector256.Min(Vector256.Max(NearestInt(vs * (Vector256.Load(x + 16) - vm)), Vector256<int>.Zero), top);
        var l3 = Vector256.Min(Vector256.Max(NearestInt(vs * (Vector256.Load(x + 24) - vm)), Vector256<int>.Zero), top);
        Vector256.Narrow(s0, Vector256.Narrow(l2, l3)).AsByte().Store(L);
    }

    /// <summary>Element i of ggml's sums for 8 candidates: sum_l += w*l, sum_l2 += w*l*l, sum_xl += w*l*x.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Accumulate(int i, Vector256<float> vs, Vector256<int> top, float* xm, float* x, float* w, float* lv,
        ref Vector256<float> sL, ref Vector256<float> sL2, ref Vector256<float> sXL)
    {
        var l = Level(vs * Vector256.Create(xm[i]), top);
        Vector256.Store(l, lv + i * W);
        var wl = Vector256.Create(w[i]) * l;
        sL += wl;
        sL2 += wl * l;
        sXL += wl * Vector256.Create(x[i]);
    }

    private interface IError { static abstract Vector256<float> Of(Vector256<float> diff); }
    private readonly struct AbsoluteError : IError { public static Vector256<float> Of(Vector256<float> diff) => Vector256.Abs(diff); }
    private readonly struct SquaredError : IError { public static Vector256<float> Of(Vector256<float> diff) => diff * diff; }

    private static float Search<TError>(int n, int nmax, float* x, float* w, byte* L, out float theMin, float rmin, float rdelta, int nstep)
        where TError : IError
    {
        if (!QuantMath.Qkx3Start(n, x, w, L, out float min, out float max, out float sumW, out float sumX))
        {
            theMin = -min;
            return 0f;
        }
        float* iscales = stackalloc float[W];
        float* errors = stackalloc float[W];
        float* fitScale = stackalloc float[W];
        float* fitMin = stackalloc float[W];
        float* det = stackalloc float[W];
        float* xm = stackalloc float[32];
        float* lv = stackalloc float[32 * W];
        var top = Vector256.Create(nmax);
        var vSumW = Vector256.Create(sumW);
        var vSumX = Vector256.Create(sumX);
        var laneIndex = Vector256.Create(0f, 1, 2, 3, 4, 5, 6, 7);

        // The candidate whose levels end up in L: its inverse scale and the min its levels were computed with.
        float bestIscale = nmax / (max - min), bestLevelMin = min;
        float scale = 1 / bestIscale, bestError = 0;
        int step = 0;
        bool first = true;
        while (step <= nstep)
        {
            // Window: candidates step .. step+7 (the first window: the opening guess, then steps 0..6). Each lane's
            // inverse scale is ggml's (rmin + rdelta*is + nmax)/(max - min), the same operations lane by lane.
            int lead = first ? 1 : 0;
            var vmin = Vector256.Create(min);
            var isf = laneIndex + Vector256.Create((float)(step - lead));
            var vs = (Vector256.Create(rmin) + Vector256.Create(rdelta) * isf + Vector256.Create((float)nmax)) / (Vector256.Create(max) - vmin);
            if (first) vs = vs.WithElement(0, bestIscale);
            vs.Store(iscales);
            for (int i = 0; i < n; i += 8) (Vector256.Load(x + i) - vmin).Store(xm + i);

            // Unrolled by 4 (n is 16 or 32): the JIT does not unroll, and loop overhead is a fifth of the work here.
            Vector256<float> sL = default, sL2 = default, sXL = default;
            for (int i = 0; i < n; i += 4)
            {
                Accumulate(i, vs, top, xm, x, w, lv, ref sL, ref sL2, ref sXL);
                Accumulate(i + 1, vs, top, xm, x, w, lv, ref sL, ref sL2, ref sXL);
                Accumulate(i + 2, vs, top, xm, x, w, lv, ref sL, ref sL2, ref sXL);
                Accumulate(i + 3, vs, top, xm, x, w, lv, ref sL, ref sL2, ref sXL);
            }
            var D = vSumW * sL2 - sL * sL;
            var ts = (vSumW * sXL - vSumX * sL) / D;
            var tm = (sL2 * vSumX - sL * sXL) / D;
            // ggml: a positive min becomes 0, the scale refitted through the origin.
            var positive = Vector256.GreaterThan(tm, Vector256<float>.Zero);
            ts = Vector256.ConditionalSelect(positive, sXL / sL2, ts);
            tm = Vector256.ConditionalSelect(positive, Vector256<float>.Zero, tm);
            if (first)
            {
                // The opening guess's error is measured with scale 1/iscale and the data's min.
                ts = ts.WithElement(0, scale);
                tm = tm.WithElement(0, min);
            }
            Vector256<float> err = default;
            for (int i = 0; i < n; i += 4)
            {
                err += Vector256.Create(w[i]) * TError.Of(ts * Vector256.Load(lv + i * W) + tm - Vector256.Create(x[i]));
                err += Vector256.Create(w[i + 1]) * TError.Of(ts * Vector256.Load(lv + (i + 1) * W) + tm - Vector256.Create(x[i + 1]));
                err += Vector256.Create(w[i + 2]) * TError.Of(ts * Vector256.Load(lv + (i + 2) * W) + tm - Vector256.Create(x[i + 2]));
                err += Vector256.Create(w[i + 3]) * TError.Of(ts * Vector256.Load(lv + (i + 3) * W) + tm - Vector256.Create(x[i + 3]));
            }
            err.Store(errors);
            ts.Store(fitScale);
            tm.Store(fitMin);
            D.Store(det);

            if (first) bestError = errors[0];
            first = false;
            int next = step + W - lead;
            for (int k = lead; k < W && step + k - lead <= nstep; ++k)
            {
                if (det[k] > 0 && errors[k] < bestError)
                {
                    // ggml moves min to the winner's: the later candidates must be recomputed with it.
                    bestError = errors[k];
                    scale = fitScale[k];
                    bestIscale = iscales[k];
                    bestLevelMin = min;
                    min = fitMin[k];
                    next = step + k - lead + 1;
                    break;
                }
            }
            step = next;
        }
        StoreLevels(n, x, bestIscale, bestLevelMin, top, L);
        theMin = -min;
        return scale;
    }

    /// <summary>L = clamp(nearest_int((x + dm) / d), 0, nmax) for 16 elements: one division per element, as ggml.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Requantize16(float* x, float dm, float d, int nmax, byte* L)
    {
        var vdm = Vector256.Create(dm);
        var vd = Vector256.Create(d);
        var top = Vector256.Create(nmax);
        var l0 = Vector256.Min(Vector256.Max(NearestInt((Vector256.Load(x) + vdm) / vd), Vector256<int>.Zero), top);
        var l1 = Vector256.Min(Vector256.Max(NearestInt((Vector256.Load(x + 8) + vdm) / vd), Vector256<int>.Zero), top);
        var s = Vector256.Narrow(l0, l1);
        Vector128.Narrow(s.GetLower(), s.GetUpper()).AsByte().Store(L);
    }

    /// <summary>L = clamp(nearest_int((x + dm) / d), 0, nmax) for 32 elements: one division per element, as ggml.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Requantize32(float* x, float dm, float d, int nmax, byte* L)
    {
        var vdm = Vector256.Create(dm);
        var vd = Vector256.Create(d);
        var top = Vector256.Create(nmax);
        var l0 = Vector256.Min(Vector256.Max(NearestInt((Vector256.Load(x) + vdm) / vd), Vector256<int>.Zero), top);
        var l1 = Vector256.Min(Vector256.Max(NearestInt((Vector256.Load(x + 8) + vdm) / vd), Vector256<int>.Zero), top);
        var l2 = Vector256.Min(Vector256.Max(NearestInt((Vector256.Load(x + 16) + vdm) / vd), Vector256<int>.Zero), top);
        var l3 = Vector256.Min(Vector256.Max(NearestInt((Vector256.Load(x + 24) + vdm) / vd), Vector256<int>.Zero), top);
        Vector256.Narrow(Vector256.Narrow(l0, l1), Vector256.Narrow(l2, l3)).AsByte().Store(L);
    }
}
