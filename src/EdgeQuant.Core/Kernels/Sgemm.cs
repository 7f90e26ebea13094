using System.Numerics.Tensors;
using System.Runtime.CompilerServices;

namespace EdgeQuant.Core.Kernels;

/// <summary>
/// Single-precision GEMM for the engine: activations [tokens x in] times weights stored [out x in] (C = A·Bᵀ), plus the
/// plain C = A·B form. Goto/BLIS structure: B is packed into Nr-wide column panels (once, for weights: see
/// <see cref="PackedMatrix"/>), A into Mr-tall row panels once per call, and a register-blocked micro-kernel
/// (<see cref="GemmKernel"/>) computes each Mr x Nr tile. Work is handed to the kernel pool as (row block x
/// column-panel group) tasks. Accumulation is in float with FMA (what OpenBLAS and ggml do too).
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
        int mr = kernel.Mr, k = w.K;
        int mPanels = (m + mr - 1) / mr;
        int parts = Parts(threads, Math.Max(mPanels, w.Panels), (long)m * w.N * k, MinWorkPerThread);

        // Equal K blocks (a last block of 64 after 512 would pay the per-call costs for little work); multiples of 4
        // keep packed rows 16-byte aligned. The A block of one task (mc x kc) is sized for L2.
        int kBlocks = (k + kernel.Kc - 1) / kernel.Kc;
        int kcStep = Math.Min(kernel.Kc, ((k + kBlocks - 1) / kBlocks + 3) & ~3);
        int mcStep = Math.Clamp(GemmKernel.ABlockBudget / kcStep / mr * mr, mr, kernel.Mc);

        // All of A is packed once, shared by every task: [mPanels][K][Mr], so a task's k-block of an A panel is the
        // contiguous run at k0·Mr. Packing per task instead would repeat M·K copies for every column group.
        long aLength = (long)mPanels * k * mr;
        float[] aBuffer = RentScratch(aLength + 16);
        try
        {
            float* aPacked = Align64((float*)Unsafe.AsPointer(ref aBuffer[0]));
            KernelThreadPool.Run(new PackAJob(a, lda, m, k, mr, aPacked, Parts(parts, mPanels, (long)m * k, 1 << 16)), Parts(parts, mPanels, (long)m * k, 1 << 16));

            // Tasks are (row block x column-panel group) tiles, each covering every K block of its C tile, so no two
            // threads ever touch the same C element and the order is free. Threads take tasks from a shared counter:
            // on a shared machine a descheduled thread then delays only its current task, not a fixed half.
            int mBlocks = (m + mcStep - 1) / mcStep;
            int wantTasks = parts == 1 ? 1 : 4 * parts;
            int group = Math.Max(1, (w.Panels * mBlocks + wantTasks - 1) / wantTasks);
            int nGroups = (w.Panels + group - 1) / group;
            var job = new GemmJob(aPacked, w, c, ldc, m, accumulate, kcStep, mcStep, group, mBlocks, nGroups);
            KernelThreadPool.Run(job, parts);
        }
        finally
        {
            ReturnScratch(aBuffer);
        }
    }

    // One pinned A-packing buffer kept between calls (allocating and first-touching MiBs per call is measurable).
    private static float[]? aScratch;
    private const long ScratchKeepLimit = 16L << 20;

    private static float[] RentScratch(long length)
    {
        if (length > Array.MaxLength) throw new ArgumentOutOfRangeException(nameof(length), length, "A is too large to pack in one array");
        float[]? cached = Interlocked.Exchange(ref aScratch, null);
        return cached is not null && cached.Length >= length ? cached : GC.AllocateUninitializedArray<float>((int)length, pinned: true);
    }

    private static void ReturnScratch(float[] buffer)
    {
        if (buffer.Length <= ScratchKeepLimit) Interlocked.Exchange(ref aScratch, buffer);
    }

    /// <summary>Rows of A into Mr-tall panels, k-major inside a panel; rows past M are zero.</summary>
    private sealed class PackAJob(float* a, int lda, int m, int k, int mr, float* dst, int parts) : IParallelWork
    {
        public void Execute(int part)
        {
            Split((m + mr - 1) / mr, parts, part, out int i0, out int i1);
            for (int ip = i0; ip < i1; ip++)
            {
                float* panel = dst + (long)ip * k * mr;
                int rows = Math.Min(mr, m - ip * mr);
                for (int r = 0; r < rows; r++)
                {
                    float* src = a + (long)(ip * mr + r) * lda;
                    for (int kk = 0; kk < k; kk++) panel[(long)kk * mr + r] = src[kk];
                }
                for (int r = rows; r < mr; r++)
                    for (int kk = 0; kk < k; kk++) panel[(long)kk * mr + r] = 0;
            }
        }
    }

    private sealed class GemmJob(float* aPacked, PackedMatrix w, float* c, int ldc, int m, bool accumulate,
        int kcStep, int mcStep, int group, int mBlocks, int nGroups) : IParallelWork
    {
        private int nextTask = -1;

        public void Execute(int part)
        {
            int tasks = mBlocks * nGroups;
            for (int t = Interlocked.Increment(ref nextTask); t < tasks; t = Interlocked.Increment(ref nextTask))
            {
                int mb = t / nGroups, g = t % nGroups;
                int row0 = mb * mcStep, row1 = Math.Min(m, row0 + mcStep);
                int panel0 = g * group, panel1 = Math.Min(w.Panels, panel0 + group);
                Compute(row0, row1, panel0, panel1);
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private void Compute(int row0, int row1, int panel0, int panel1)
        {
            GemmKernel kernel = w.Kernel;
            int mr = kernel.Mr, nr = kernel.Nr, n = w.N, k = w.K;
            float* tile = stackalloc float[mr * nr];
            float* bData = w.Data;
            for (int k0 = 0; k0 < k; k0 += kcStep)
            {
                int kc = Math.Min(kcStep, k - k0);
                bool acc = accumulate || k0 > 0;
                for (int p = panel0; p < panel1; p++)
                {
                    // This B micro-panel stays in L1 while the block's A panels stream past it from L2.
                    float* bPanel = bData + ((long)p * k + k0) * nr;
                    int col = p * nr, cols = Math.Min(nr, n - col);
                    for (int row = row0; row < row1; row += mr)
                    {
                        int rows = Math.Min(mr, row1 - row);
                        float* aPanel = aPacked + ((long)(row / mr) * k + k0) * mr;
                        float* cTile = c + (long)row * ldc + col;
                        if (rows == mr && cols == nr)
                        {
                            kernel.Micro(aPanel, bPanel, kc, cTile, ldc, acc);
                            continue;
                        }
                        kernel.Micro(aPanel, bPanel, kc, tile, nr, false);
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
