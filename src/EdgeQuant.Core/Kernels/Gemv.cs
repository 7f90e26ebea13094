using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace EdgeQuant.Core.Kernels;

/// <summary>
/// Matrix-vector product for one-token decoding: y[n] (+)= Σ_k x[k]·W[n,k]. Memory-bound (each weight is used once),
/// so the aim is to stream W at full bandwidth on every core: the rows (or packed panels) are split across threads
/// and x stays in L1. The row-major form is one TensorPrimitives.Dot per row (already a multi-accumulator SIMD dot);
/// the packed form is ours, because it reads the GEMM's panel layout, letting the engine keep one copy of weights.
/// </summary>
public static unsafe class Gemv
{
    // Below ~32K multiply-adds (a 128 KiB matrix) waking another thread costs more than streaming it alone.
    private const long MinWorkPerThread = 1 << 15;

    /// <summary>y[n] (+)= W[n x k] · x, W row-major.</summary>
    public static void Multiply(ReadOnlySpan<float> x, ReadOnlySpan<float> w, Span<float> y, int n, int k, bool accumulate = false, int threads = 0)
    {
        Sgemm.CheckStrided(x.Length, 1, k, k, nameof(x));
        Sgemm.CheckStrided(w.Length, n, k, k, nameof(w));
        Sgemm.CheckStrided(y.Length, 1, n, n, nameof(y));
        fixed (float* px = x)
        fixed (float* pw = w)
        fixed (float* py = y)
            MultiplyRows(px, pw, k, py, n, k, accumulate, threads, GemmKernel.Best);
    }

    /// <summary>y[w.N] (+)= W · x with W pre-packed (the same object the prefill GEMM uses).</summary>
    public static void Multiply(ReadOnlySpan<float> x, PackedMatrix w, Span<float> y, bool accumulate = false, int threads = 0)
    {
        ArgumentNullException.ThrowIfNull(w);
        Sgemm.CheckStrided(x.Length, 1, w.K, w.K, nameof(x));
        Sgemm.CheckStrided(y.Length, 1, w.N, w.N, nameof(y));
        fixed (float* px = x)
        fixed (float* py = y)
            MultiplyPacked(px, w, py, accumulate, threads);
    }

    internal static void MultiplyRows(float* x, float* w, int ldw, float* y, int n, int k, bool accumulate, int threads, GemmKernelKind kind)
    {
        if (n == 0) return;
        _ = kind; // TensorPrimitives.Dot picks its own width; the kind only matters for packed layouts.
        int parts = Sgemm.Parts(threads, n, (long)n * k, MinWorkPerThread);
        var job = new RowsJob(x, w, ldw, y, n, k, accumulate, parts);
        if (parts == 1) job.Execute(0);
        else KernelThreadPool.Run(job, parts);
    }

    internal static void MultiplyPacked(float* x, PackedMatrix w, float* y, bool accumulate, int threads)
    {
        if (w.N == 0) return;
        int parts = Sgemm.Parts(threads, w.Panels, (long)w.N * w.K, MinWorkPerThread);
        var job = new PackedJob(x, w, y, accumulate, parts);
        if (parts == 1) job.Execute(0);
        else KernelThreadPool.Run(job, parts);
    }

    private sealed class RowsJob(float* x, float* w, int ldw, float* y, int n, int k, bool accumulate, int parts) : IParallelWork
    {
        public void Execute(int part)
        {
            Sgemm.Split(n, parts, part, out int r0, out int r1);
            var xs = new ReadOnlySpan<float>(x, k);
            for (int r = r0; r < r1; r++)
            {
                float d = TensorPrimitives.Dot(xs, new ReadOnlySpan<float>(w + (long)r * ldw, k));
                y[r] = accumulate ? y[r] + d : d;
            }
        }
    }

    private sealed class PackedJob(float* x, PackedMatrix w, float* y, bool accumulate, int parts) : IParallelWork
    {
        public void Execute(int part)
        {
            Sgemm.Split(w.Panels, parts, part, out int p0, out int p1);
            int nr = w.Kernel.Nr, k = w.K, n = w.N;
            float* tile = stackalloc float[nr];
            for (int p = p0; p < p1; p++)
            {
                float* panel = w.Data + (long)p * k * nr;
                int col = p * nr, cols = Math.Min(nr, n - col);
                switch (w.Kernel.Kind)
                {
                    case GemmKernelKind.Vector512 when nr == 32: Panel512(x, panel, k, tile); break;
                    case GemmKernelKind.Vector256 when nr == 16: Panel256(x, panel, k, tile); break;
                    case GemmKernelKind.Vector128 when nr == 8: Panel128(x, panel, k, tile); break;
                    default: PanelScalar(x, panel, k, nr, tile); break;
                }
                float* dst = y + col;
                if (accumulate) for (int j = 0; j < cols; j++) dst[j] += tile[j];
                else for (int j = 0; j < cols; j++) dst[j] = tile[j];
            }
        }
    }

    private const int PrefetchAhead = 1024;

    // Each panel kernel keeps two k-phases of accumulators so consecutive FMAs do not wait on each other's latency.

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Panel512(float* x, float* b, int k, float* tile)
    {
        Vector512<float> s0 = default, s1 = default, t0 = default, t1 = default;
        int kk = 0;
        for (; kk + 2 <= k; kk += 2, b += 64)
        {
            if (Sse.IsSupported)
            {
                // The panel is one sequential stream; fetching ~4 KiB ahead keeps more DRAM requests in flight than
                // the hardware prefetcher alone on this memory-bound loop.
                Sse.Prefetch0(b + PrefetchAhead);
                Sse.Prefetch0(b + PrefetchAhead + 16);
                Sse.Prefetch0(b + PrefetchAhead + 32);
                Sse.Prefetch0(b + PrefetchAhead + 48);
            }
            Vector512<float> x0 = Vector512.Create(x[kk]), x1 = Vector512.Create(x[kk + 1]);
            s0 = Vector512.MultiplyAddEstimate(x0, Vector512.Load(b), s0);
            s1 = Vector512.MultiplyAddEstimate(x0, Vector512.Load(b + 16), s1);
            t0 = Vector512.MultiplyAddEstimate(x1, Vector512.Load(b + 32), t0);
            t1 = Vector512.MultiplyAddEstimate(x1, Vector512.Load(b + 48), t1);
        }
        if (kk < k)
        {
            Vector512<float> x0 = Vector512.Create(x[kk]);
            s0 = Vector512.MultiplyAddEstimate(x0, Vector512.Load(b), s0);
            s1 = Vector512.MultiplyAddEstimate(x0, Vector512.Load(b + 16), s1);
        }
        (s0 + t0).Store(tile);
        (s1 + t1).Store(tile + 16);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Panel256(float* x, float* b, int k, float* tile)
    {
        Vector256<float> s0 = default, s1 = default, t0 = default, t1 = default;
        int kk = 0;
        for (; kk + 2 <= k; kk += 2, b += 32)
        {
            Vector256<float> x0 = Vector256.Create(x[kk]), x1 = Vector256.Create(x[kk + 1]);
            s0 = Vector256.MultiplyAddEstimate(x0, Vector256.Load(b), s0);
            s1 = Vector256.MultiplyAddEstimate(x0, Vector256.Load(b + 8), s1);
            t0 = Vector256.MultiplyAddEstimate(x1, Vector256.Load(b + 16), t0);
            t1 = Vector256.MultiplyAddEstimate(x1, Vector256.Load(b + 24), t1);
        }
        if (kk < k)
        {
            Vector256<float> x0 = Vector256.Create(x[kk]);
            s0 = Vector256.MultiplyAddEstimate(x0, Vector256.Load(b), s0);
            s1 = Vector256.MultiplyAddEstimate(x0, Vector256.Load(b + 8), s1);
        }
        (s0 + t0).Store(tile);
        (s1 + t1).Store(tile + 8);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Panel128(float* x, float* b, int k, float* tile)
    {
        Vector128<float> s0 = default, s1 = default, t0 = default, t1 = default;
        int kk = 0;
        for (; kk + 2 <= k; kk += 2, b += 16)
        {
            Vector128<float> x0 = Vector128.Create(x[kk]), x1 = Vector128.Create(x[kk + 1]);
            s0 = Vector128.MultiplyAddEstimate(x0, Vector128.Load(b), s0);
            s1 = Vector128.MultiplyAddEstimate(x0, Vector128.Load(b + 4), s1);
            t0 = Vector128.MultiplyAddEstimate(x1, Vector128.Load(b + 8), t0);
            t1 = Vector128.MultiplyAddEstimate(x1, Vector128.Load(b + 12), t1);
        }
        if (kk < k)
        {
            Vector128<float> x0 = Vector128.Create(x[kk]);
            s0 = Vector128.MultiplyAddEstimate(x0, Vector128.Load(b), s0);
            s1 = Vector128.MultiplyAddEstimate(x0, Vector128.Load(b + 4), s1);
        }
        (s0 + t0).Store(tile);
        (s1 + t1).Store(tile + 4);
    }

    private static void PanelScalar(float* x, float* b, int k, int nr, float* tile)
    {
        for (int j = 0; j < nr; j++) tile[j] = 0;
        for (int kk = 0; kk < k; kk++, b += nr)
        {
            float xv = x[kk];
            for (int j = 0; j < nr; j++) tile[j] += xv * b[j];
        }
    }
}
