using System.Runtime.CompilerServices;
using EdgeQuant.Core.Kernels;

namespace EdgeQuant.Core.Quantization;

/// <summary>One block type's row quantizers, as the multi-threaded driver sees them.</summary>
internal unsafe interface IRowQuantizer
{
    static abstract int BlockBytes { get; }

    /// <summary>Quantizes <paramref name="n"/> elements (whole blocks) of one row without an importance vector.</summary>
    static abstract void Row(float* x, byte* y, int n);

    /// <summary>Quantizes one row with per-column importance <paramref name="w"/> (length <paramref name="n"/>).</summary>
    static abstract void RowWeighted(float* x, byte* y, int n, float* w);
}

/// <summary>
/// Splits a [rows x rowLength] matrix into row chunks and quantizes them on <see cref="KernelThreadPool"/>. Rows are
/// independent in every ggml type (the imatrix search's sigma2 is per row), so any split gives the same bytes.
/// </summary>
internal static unsafe class QuantizeDriver
{
    // Rows per task: big enough that a task is tens of microseconds of work even for 32-element rows, small enough
    // that a 2048-row tensor still spreads evenly over the workers.
    private const int MinElementsPerChunk = 1 << 14;

    public static long Run<TQ>(ReadOnlySpan<float> src, Span<byte> dst, int rows, int rowLength, ReadOnlySpan<float> importance, int threads, int blockSize)
        where TQ : IRowQuantizer
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        ArgumentOutOfRangeException.ThrowIfNegative(rowLength);
        if (rowLength % blockSize != 0)
            throw new ArgumentException($"row length {rowLength} is not a multiple of the block size {blockSize}", nameof(rowLength));
        long elements = (long)rows * rowLength;
        if (src.Length < elements)
            throw new ArgumentException($"{rows} rows of {rowLength} need {elements} source elements, got {src.Length}", nameof(src));
        long rowBytes = (long)(rowLength / blockSize) * TQ.BlockBytes;
        long bytes = rowBytes * rows;
        if (dst.Length < bytes)
            throw new ArgumentException($"{rows} rows of {rowLength} need {bytes} bytes of blocks, got {dst.Length}", nameof(dst));
        if (!importance.IsEmpty && importance.Length != rowLength)
            throw new ArgumentException($"the importance vector has {importance.Length} entries for rows of {rowLength}", nameof(importance));
        if (rows == 0 || rowLength == 0) return 0;

        int rowsPerChunk = Math.Max(1, MinElementsPerChunk / rowLength);
        int chunks = (rows + rowsPerChunk - 1) / rowsPerChunk;
        int parts = Math.Min(chunks, threads > 0 ? threads : KernelThreadPool.DefaultThreads);
        fixed (float* x = src)
        fixed (byte* y = dst)
        fixed (float* w = importance)
        {
            var work = new Work<TQ>
            {
                X = x, Y = y, W = importance.IsEmpty ? null : w,
                Rows = rows, RowLength = rowLength, RowBytes = rowBytes, RowsPerChunk = rowsPerChunk, Chunks = chunks,
            };
            KernelThreadPool.Run(work, parts);
        }
        return bytes;
    }

    private sealed class Work<TQ> : IParallelWork where TQ : IRowQuantizer
    {
        public float* X;
        public byte* Y;
        public float* W;
        public int Rows, RowLength, RowsPerChunk, Chunks;
        public long RowBytes;
        private int next = -1;

        // Chunks are handed out dynamically: a busy core on a shared machine must not hold up the whole tensor.
        public void Execute(int part)
        {
            int c;
            while ((c = Interlocked.Increment(ref next)) < Chunks)
            {
                int r0 = c * RowsPerChunk;
                int r1 = Math.Min(Rows, r0 + RowsPerChunk);
                for (int r = r0; r < r1; r++)
                {
                    float* x = X + (long)r * RowLength;
                    byte* y = Y + r * RowBytes;
                    if (W is null) TQ.Row(x, y, RowLength);
                    else TQ.RowWeighted(x, y, RowLength, W);
                }
            }
        }
    }
}

/// <summary>Scalar pieces of ggml-quants.c shared by the quantizers, with ggml's exact float semantics.</summary>
internal static partial class QuantMath
{
    /// <summary>ggml's GROUP_MAX_EPS: a group whose largest magnitude is below this is all zeros.</summary>
    public const float GroupMaxEps = 1e-15f;

    /// <summary>
    /// ggml's nearest_int: adding 1.5 * 2^23 leaves round-to-nearest-even of the value in the low mantissa bits.
    /// Valid for |f| &lt;= 4194303, as ggml asserts.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int NearestInt(float f)
    {
        float v = f + 12582912f;
        return (BitConverter.SingleToInt32Bits(v) & 0x007fffff) - 0x00400000;
    }

    /// <summary>
    /// C's float-to-int conversion as ggml's compiled code does it: truncation, and for NaN or values beyond the int
    /// range the platform's answer (x86: 0x80000000, whose low byte 0 is what an int8 cast then stores; Arm:
    /// saturation). .NET's ordinary cast saturates everywhere, which differs on x86 when a block's scale is so small
    /// (all |x| below ~4e-37) that 1/d overflows to infinity.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int CInt(float f) => float.ConvertToIntegerNative<int>(f);

    /// <summary>
    /// GGML_FP32_TO_FP16. .NET's conversion rounds to nearest even with subnormals and overflow to infinity, as ggml's
    /// bit trick does (checked against ggml_fp32_to_fp16 in the tests); they differ only in NaN payloads, where ggml
    /// always writes the quiet NaN 0x7E00 with the sign.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Half ToHalf(float f)
    {
        if (float.IsNaN(f))
            return BitConverter.UInt16BitsToHalf((ushort)(((BitConverter.SingleToUInt32Bits(f) >> 16) & 0x8000) | 0x7E00));
        return (Half)f;
    }

    /// <summary>
    /// ggml's make_qx_quants for rmse_type 1: the scale that minimises the weighted error over 19 candidate inverse
    /// scales around nmax/max, and the levels L in 0..2*nmax-1. The weights are <paramref name="qw"/>, or x^2 when it
    /// is null (Q6_K without an imatrix). The float operations and their order are ggml's, so the chosen scale is the
    /// same float.
    /// </summary>
    public static unsafe float MakeQxQuants(int n, int nmax, float* x, sbyte* L, float* qw)
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
        float sumlx = 0, suml2 = 0;
        for (int i = 0; i < n; ++i)
        {
            int l = NearestInt(iscale * x[i]);
            l = Math.Max(-nmax, Math.Min(nmax - 1, l));
            L[i] = (sbyte)(l + nmax);
            float w = qw != null ? qw[i] : x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        float scale = suml2 != 0 ? sumlx / suml2 : 0f;
        float best = scale * sumlx;
        for (int step = -9; step <= 9; ++step)
        {
            if (step == 0) continue;
            iscale = -(nmax + 0.1f * step) / max;
            sumlx = suml2 = 0;
            for (int i = 0; i < n; ++i)
            {
                int l = NearestInt(iscale * x[i]);
                l = Math.Max(-nmax, Math.Min(nmax - 1, l));
                float w = qw != null ? qw[i] : x[i] * x[i];
                sumlx += w * x[i] * l;
                suml2 += w * l * l;
            }
            if (suml2 > 0 && sumlx * sumlx > best * suml2)
            {
                for (int i = 0; i < n; ++i)
                {
                    int l = NearestInt(iscale * x[i]);
                    L[i] = (sbyte)(nmax + Math.Max(-nmax, Math.Min(nmax - 1, l)));
                }
                scale = sumlx / suml2;
                best = scale * sumlx;
            }
        }
        return scale;
    }

    /// <summary>
    /// make_qkx3_quants' opening scan, shared by the scalar and vector searches: min (at most 0), max and the weighted
    /// sums in ggml's order. False (and L zeroed) when the block is flat, the search then returning scale 0, min -min.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public static unsafe bool Qkx3Start(int n, float* x, float* weights, byte* L, out float min, out float max, out float sumW, out float sumX)
    {
        min = x[0];
        max = x[0];
        sumW = weights[0];
        sumX = sumW * x[0];
        for (int i = 1; i < n; ++i)
        {
            if (x[i] < min) min = x[i];
            if (x[i] > max) max = x[i];
            float w = weights[i];
            sumW += w;
            sumX += w * x[i];
        }
        if (min > 0) min = 0;
        if (max <= min)
        {
            for (int i = 0; i < n; ++i) L[i] = 0;
            return false;
        }
        return true;
    }

    /// <summary>
    /// ggml's make_qkx3_quants with weights and use_mad = false: scale and (negated) min of an affine 0..nmax grid,
    /// searched over nstep+1 candidate inverse scales by weighted least squares.
    /// </summary>
    public static unsafe float MakeQkx3Quants(int n, int nmax, float* x, float* weights, byte* L, out float theMin, byte* Laux, float rmin, float rdelta, int nstep) =>
        MakeQkx2Quants(n, nmax, x, weights, L, out theMin, Laux, rmin, rdelta, nstep, useMad: false);

    /// <summary>
    /// The per-block weights of ggml's quantize_row_*_impl: importance times sqrt(sigma2 + x^2), sigma2 being the
    /// row's mean square (summed in order, in float, as ggml does).
    /// </summary>
    public static unsafe float RowSigma2(float* x, int n)
    {
        float sumX2 = 0;
        for (int j = 0; j < n; ++j) sumX2 += x[j] * x[j];
        return sumX2 / n;
    }

    public static unsafe void BlockWeights(float* xb, float* qw, float sigma2, float* weight, int n)
    {
        for (int j = 0; j < n; ++j) weight[j] = qw[j] * MathF.Sqrt(sigma2 + xb[j] * xb[j]);
    }
}
