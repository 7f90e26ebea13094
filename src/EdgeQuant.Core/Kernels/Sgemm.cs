using System.Numerics.Tensors;
using System.Runtime.CompilerServices;

namespace EdgeQuant.Core.Kernels;

/// <summary>
/// Single-precision GEMM for the engine: activations [tokens x in] times weights stored [out x in] (C = A·Bᵀ), plus the
/// plain C = A·B form. Goto/BLIS structure: B is packed into Nr-wide column panels (once, for weights: see
/// <see cref="PackedMatrix"/>), A into Mr-tall row panels per (Mc x Kc) block, and a register-blocked micro-kernel
/// (<see cref="GemmKernel"/>) computes each Mr x Nr tile. Work is split across the kernel pool by rows or by column
/// panels, whichever balances better. Accumulation is in float with FMA (what OpenBLAS and ggml do too).
/// </summary>
public static unsafe class Sgemm
{
    // Below ~256K multiply-adds (~10 µs single-threaded) waking a second thread costs more than it saves.
    private const long MinWorkPerThread = 1 << 18;

    /// <summary>C[m x w.N] (+)= A[m x w.K] · Wᵀ with W pre-packed. <paramref name="threads"/> ≤ 0 means all cores.</summary>
    public static void Multiply(ReadOnlySpan<float> a, int m, PackedMatrix w, Span<float> c, bool accumulate = false, int threads = 0)
    {
        ArgumentNullException.ThrowIfNull(w);
        Multiply(a, w.K, w, c, w.N, m, accumulate, threads);
    }

    /// <summary>Strided form: row i of A starts at i·lda, row i of C at i·ldc (e.g. one head's slice of Q).</summary>
    public static void Multiply(ReadOnlySpan<float> a, int lda, PackedMatrix w, Span<float> c, int ldc, int m, bool accumulate = false, int threads = 0)
    {
        ArgumentNullException.ThrowIfNull(w);
        int n = w.N, k = w.K;
        CheckStrided(a.Length, m, k, lda, nameof(a));
        CheckStrided(c.Length, m, n, ldc, nameof(c));
        if (m == 0 || n == 0) return;
        if (k == 0)
        {
            if (!accumulate) for (int i = 0; i < m; i++) c.Slice(i * ldc, n).Clear();
            return;
        }
        fixed (float* pa = a)
        fixed (float* pc = c)
        {
            if (m == 1)
            {
                Gemv.MultiplyPacked(pa, w, pc, accumulate, threads);
                return;
            }
            Run(pa, lda, w, pc, ldc, m, accumulate, threads);
        }
    }

    /// <summary>C[m x n] (+)= A[m x k] · Bᵀ with B [n x k] row-major, not pre-packed (packed per call).</summary>
    public static void MultiplyTransposedB(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int m, int n, int k, bool accumulate = false, int threads = 0) =>
        MultiplyTransposedB(a, k, b, k, c, n, m, n, k, accumulate, threads, GemmKernel.Best);

    /// <summary>Strided form of <see cref="MultiplyTransposedB(ReadOnlySpan{float}, ReadOnlySpan{float}, Span{float}, int, int, int, bool, int)"/>.</summary>
    public static void MultiplyTransposedB(ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, Span<float> c, int ldc, int m, int n, int k, bool accumulate = false, int threads = 0) =>
        MultiplyTransposedB(a, lda, b, ldb, c, ldc, m, n, k, accumulate, threads, GemmKernel.Best);

    /// <summary>C[m x n] (+)= A[m x k] · B with B [k x n] row-major.</summary>
    public static void Multiply(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int m, int n, int k, bool accumulate = false, int threads = 0) =>
        Multiply(a, k, b, n, c, n, m, n, k, accumulate, threads, GemmKernel.Best);

    /// <summary>Strided C = A·B (e.g. attention weights times one head's slice of the V cache).</summary>
    public static void Multiply(ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, Span<float> c, int ldc, int m, int n, int k, bool accumulate = false, int threads = 0) =>
        Multiply(a, lda, b, ldb, c, ldc, m, n, k, accumulate, threads, GemmKernel.Best);

    internal static void MultiplyTransposedB(ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, Span<float> c, int ldc,
        int m, int n, int k, bool accumulate, int threads, GemmKernelKind kind)
    {
        CheckStrided(a.Length, m, k, lda, nameof(a));
        CheckStrided(b.Length, n, k, ldb, nameof(b));
        CheckStrided(c.Length, m, n, ldc, nameof(c));
        if (m == 0 || n == 0) return;
        // A handful of rows: packing B would cost as much as the product itself, so stream B once per row instead.
        if (m < SmallRows && k > 0)
        {
            fixed (float* pa = a)
            fixed (float* pb = b)
            fixed (float* pc = c)
                for (int i = 0; i < m; i++) Gemv.MultiplyRows(pa + (long)i * lda, pb, ldb, pc + (long)i * ldc, n, k, accumulate, threads, kind);
            return;
        }
        PackedMatrix packed = PackedMatrix.FromWeights(b, n, k, ldb, threads, kind, scratch: true);
        Multiply(a, lda, packed, c, ldc, m, accumulate, threads);
        packed.ReleaseScratch();
    }

    internal static void Multiply(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int m, int n, int k, bool accumulate, int threads, GemmKernelKind kind) =>
        Multiply(a, k, b, n, c, n, m, n, k, accumulate, threads, kind);

    internal static void Multiply(ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, Span<float> c, int ldc,
        int m, int n, int k, bool accumulate, int threads, GemmKernelKind kind)
    {
        CheckStrided(a.Length, m, k, lda, nameof(a));
        CheckStrided(b.Length, k, n, ldb, nameof(b));
        CheckStrided(c.Length, m, n, ldc, nameof(c));
        if (m == 0 || n == 0) return;
        // A handful of rows (decoding's one query): y = Σ_k a[k]·B[k,:], row by row, instead of packing B.
        if (m < SmallRows)
        {
            for (int i = 0; i < m; i++)
            {
                Span<float> row = c.Slice(i * ldc, n);
                if (!accumulate) row.Clear();
                for (int p = 0; p < k; p++)
                    TensorPrimitives.MultiplyAdd(b.Slice(p * ldb, n), a[i * lda + p], row, row);
            }
            return;
        }
        PackedMatrix packed = PackedMatrix.FromKByN(b, k, n, ldb, kind);
        Multiply(a, lda, packed, c, ldc, m, accumulate, threads);
    }

    private const int SmallRows = 4;

    private static void Run(float* a, int lda, PackedMatrix w, float* c, int ldc, int m, bool accumulate, int threads)
    {
        GemmKernel kernel = w.Kernel;
        int mPanels = (m + kernel.Mr - 1) / kernel.Mr;
        long work = (long)m * w.N * w.K;
        int parts = Parts(threads, Math.Max(mPanels, w.Panels), work, MinWorkPerThread);
        // Split the dimension whose panels divide more evenly (a partial panel costs a whole one); ties go to
        // column panels, which halves the B traffic per thread instead of sharing all of B.
        bool splitRows = parts > 1 && (w.Panels < parts || Imbalance(mPanels, parts) < Imbalance(w.Panels, parts));
        var job = new GemmJob(a, lda, w, c, ldc, m, accumulate, parts, splitRows);
        KernelThreadPool.Run(job, parts);
    }

    private static double Imbalance(int units, int parts) => (double)((units + parts - 1) / parts) * parts / units;

    private sealed class GemmJob(float* a, int lda, PackedMatrix w, float* c, int ldc, int m, bool accumulate, int parts, bool splitRows) : IParallelWork
    {
        [ThreadStatic] private static float[]? packBuffer;

        public void Execute(int part)
        {
            GemmKernel kernel = w.Kernel;
            int row0 = 0, row1 = m, panel0 = 0, panel1 = w.Panels;
            if (splitRows)
            {
                Split((m + kernel.Mr - 1) / kernel.Mr, parts, part, out int i0, out int i1);
                row0 = i0 * kernel.Mr;
                row1 = Math.Min(m, i1 * kernel.Mr);
            }
            else
            {
                Split(w.Panels, parts, part, out panel0, out panel1);
            }
            if (row0 >= row1 || panel0 >= panel1) return;
            int need = kernel.Mc * kernel.Kc + 16;
            if (packBuffer is null || packBuffer.Length < need) packBuffer = GC.AllocateUninitializedArray<float>(need, pinned: true);
            float* aPack = Align64((float*)Unsafe.AsPointer(ref packBuffer[0]));
            Compute(kernel, row0, row1, panel0, panel1, aPack);
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private void Compute(GemmKernel kernel, int row0, int row1, int panel0, int panel1, float* aPack)
        {
            int mr = kernel.Mr, nr = kernel.Nr, n = w.N, k = w.K;
            float* tile = stackalloc float[mr * nr];
            float* bData = w.Data;
            // Equal K blocks (a last block of 64 after 512 would pay the per-call costs for little work); multiples
            // of 4 keep packed rows 16-byte aligned.
            int kBlocks = (k + kernel.Kc - 1) / kernel.Kc;
            int kcStep = Math.Min(kernel.Kc, ((k + kBlocks - 1) / kBlocks + 3) & ~3);
            int mcStep = Math.Clamp(GemmKernel.ABlockBudget / kcStep / mr * mr, mr, kernel.Mc);
            for (int k0 = 0; k0 < k; k0 += kcStep)
            {
                int kc = Math.Min(kcStep, k - k0);
                bool acc = accumulate || k0 > 0;
                for (int mb = row0; mb < row1; mb += mcStep)
                {
                    int mc = Math.Min(mcStep, row1 - mb);
                    PackA(a + (long)mb * lda + k0, lda, mc, kc, mr, aPack);
                    for (int p = panel0; p < panel1; p++)
                    {
                        float* bPanel = bData + ((long)p * k + k0) * nr;
                        int col = p * nr, cols = Math.Min(nr, n - col);
                        for (int ip = 0; ip < mc; ip += mr)
                        {
                            int rows = Math.Min(mr, mc - ip);
                            float* cTile = c + (long)(mb + ip) * ldc + col;
                            if (rows == mr && cols == nr)
                            {
                                kernel.Micro(aPack + (long)ip * kc, bPanel, kc, cTile, ldc, acc);
                                continue;
                            }
                            kernel.Micro(aPack + (long)ip * kc, bPanel, kc, tile, nr, false);
                            for (int r = 0; r < rows; r++)
                            {
                                float* dst = cTile + (long)r * ldc;
                                float* src = tile + r * nr;
                                if (acc) for (int j = 0; j < cols; j++) dst[j] += src[j];
                                else for (int j = 0; j < cols; j++) dst[j] = src[j];
                            }
                        }
                    }
                }
            }
        }

        /// <summary>Rows of A into Mr-tall panels, k-major inside a panel; rows past the block are zero.</summary>
        private static void PackA(float* a, int lda, int mc, int kc, int mr, float* dst)
        {
            for (int ip = 0; ip < mc; ip += mr)
            {
                float* panel = dst + (long)ip * kc;
                int rows = Math.Min(mr, mc - ip);
                for (int r = 0; r < rows; r++)
                {
                    float* src = a + (long)(ip + r) * lda;
                    for (int kk = 0; kk < kc; kk++) panel[kk * mr + r] = src[kk];
                }
                for (int r = rows; r < mr; r++)
                    for (int kk = 0; kk < kc; kk++) panel[kk * mr + r] = 0;
            }
        }
    }

    private static float* Align64(float* p) => (float*)(((nint)p + 63) & ~(nint)63);

    /// <summary>How many parts to run: the requested threads, capped by the units to share and by the work available.</summary>
    internal static int Parts(int threads, int units, long work, long minWorkPerPart)
    {
        int t = threads <= 0 ? KernelThreadPool.DefaultThreads : threads;
        t = (int)Math.Min(t, Math.Max(1, work / minWorkPerPart));
        return Math.Max(1, Math.Min(t, units));
    }

    /// <summary>Part <paramref name="part"/> of <paramref name="parts"/> contiguous, near-equal ranges of 0..count.</summary>
    internal static void Split(int count, int parts, int part, out int start, out int end)
    {
        int q = count / parts, r = count % parts;
        start = part * q + Math.Min(part, r);
        end = start + q + (part < r ? 1 : 0);
    }

    internal static void CheckStrided(int length, int rows, int columns, int stride, string name)
    {
        if (rows < 0) throw new ArgumentOutOfRangeException(name, rows, "row count must not be negative");
        if (columns < 0) throw new ArgumentOutOfRangeException(name, columns, "column count must not be negative");
        if (stride < columns) throw new ArgumentOutOfRangeException(name, stride, $"row stride {stride} is below the row length {columns}");
        if (rows == 0 || columns == 0) return;
        long need = (long)(rows - 1) * stride + columns;
        if (length < need) throw new ArgumentException($"{name} holds {length} elements, {rows}x{columns} with stride {stride} needs {need}", name);
    }
}
