using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace EdgeQuant.Core.Kernels;

/// <summary>
/// A weight matrix W [N x K] (out x in, row-major, y = x·Wᵀ) rearranged once into the GEMM's B panels: panel p holds,
/// for k = 0..K-1, the Nr values W[p·Nr + j, k] contiguously (zero beyond N). Weights are reused by every forward
/// pass, so the transpose-and-pack cost is paid at load instead of per call; the same layout also streams perfectly
/// for the one-token GEMV. The layout depends on the SIMD width of this process, so it is not a file format.
/// </summary>
public sealed unsafe class PackedMatrix
{
    private readonly float[] buffer;
    private readonly int offset;

    // One pinned buffer kept between calls for the per-call packing of MultiplyTransposedB: allocating (and first
    // touching) tens of MiB each call cost more than the packing itself. Buffers above the cap are not kept.
    private static float[]? scratch;
    private const long ScratchKeepLimit = 16L << 20;

    private PackedMatrix(int n, int k, GemmKernel kernel, bool useScratch = false)
    {
        if (n < 0) throw new ArgumentOutOfRangeException(nameof(n), n, "must not be negative");
        if (k < 0) throw new ArgumentOutOfRangeException(nameof(k), k, "must not be negative");
        Kernel = kernel;
        N = n;
        K = k;
        Panels = (n + Kernel.Nr - 1) / Kernel.Nr;
        long length = (long)Panels * Kernel.Nr * k;
        if (length > Array.MaxLength - 16) throw new ArgumentOutOfRangeException(nameof(n), $"{n} x {k} is too large to pack in one array");
        // Pinned so the kernels can hold raw pointers; 16 floats of slack to start on a 64-byte (cache line) boundary.
        float[]? reused = useScratch ? Interlocked.Exchange(ref scratch, null) : null;
        buffer = reused is not null && reused.Length >= length + 16 ? reused : GC.AllocateUninitializedArray<float>((int)length + 16, pinned: true);
        IsScratch = useScratch;
        nint address = (nint)Unsafe.AsPointer(ref buffer[0]);
        offset = (int)(((64 - (address & 63)) & 63) / sizeof(float));
    }

    /// <summary>Output features (rows of W).</summary>
    public int N { get; }

    /// <summary>Input features (columns of W).</summary>
    public int K { get; }

    internal int Panels { get; }

    private bool IsScratch { get; }

    /// <summary>Hands a per-call packing buffer back for the next call; the matrix must not be used afterwards.</summary>
    internal void ReleaseScratch()
    {
        if (IsScratch && buffer.Length <= ScratchKeepLimit) Interlocked.Exchange(ref scratch, buffer);
    }

    internal GemmKernel Kernel { get; }

    internal float* Data => (float*)Unsafe.AsPointer(ref buffer[offset]);

    /// <summary>Packs W [n x k] row-major (the layout GGUF/safetensors store linear weights in).</summary>
    public static PackedMatrix FromWeights(ReadOnlySpan<float> weights, int n, int k, int threads = 0) =>
        FromWeights(weights, n, k, threads, GemmKernel.Best);

    /// <summary>Packs B [k x n] row-major, for y = x·B (GPT-2's Conv1D layout, or activations as the right factor).</summary>
    public static PackedMatrix FromKByN(ReadOnlySpan<float> b, int k, int n) => FromKByN(b, k, n, GemmKernel.Best);

    internal static PackedMatrix FromWeights(ReadOnlySpan<float> weights, int n, int k, int threads, GemmKernelKind kind) =>
        FromWeights(weights, n, k, k, threads, kind);

    internal static PackedMatrix FromWeights(ReadOnlySpan<float> weights, int n, int k, int ldw, int threads, GemmKernelKind kind, bool scratch = false) =>
        FromWeights(weights, n, k, ldw, threads, GemmKernel.For(kind), scratch);

    internal static PackedMatrix FromWeights(ReadOnlySpan<float> weights, int n, int k, int ldw, int threads, GemmKernel kernel, bool scratch = false)
    {
        var packed = new PackedMatrix(n, k, kernel, scratch);
        if (ldw < k) throw new ArgumentOutOfRangeException(nameof(ldw), ldw, $"row stride below the row length {k}");
        Sgemm.CheckStrided(weights.Length, n, k, ldw, nameof(weights));
        if (n == 0 || k == 0) return packed;
        fixed (float* w = weights)
        {
            int parts = Sgemm.Parts(threads, packed.Panels, (long)n * k, 1 << 16);
            KernelThreadPool.Run(new PackWeightsJob(packed, w, ldw, parts), parts);
        }
        return packed;
    }

    internal static PackedMatrix FromKByN(ReadOnlySpan<float> b, int k, int n, GemmKernelKind kind) => FromKByN(b, k, n, n, kind);

    internal static PackedMatrix FromKByN(ReadOnlySpan<float> b, int k, int n, int ldb, GemmKernelKind kind)
    {
        Sgemm.CheckStrided(b.Length, k, n, ldb, nameof(b));
        var packed = new PackedMatrix(n, k, GemmKernel.For(kind));
        int nr = packed.Kernel.Nr;
        float* dst = packed.Data;
        for (int p = 0; p < packed.Panels; p++)
        {
            int n0 = p * nr, cols = Math.Min(nr, n - n0);
            float* panel = dst + (long)p * k * nr;
            for (int kk = 0; kk < k; kk++)
            {
                Span<float> row = new(panel + (long)kk * nr, nr);
                b.Slice(kk * ldb + n0, cols).CopyTo(row);
                row[cols..].Clear();
            }
        }
        return packed;
    }

    /// <summary>
    /// Packs W [n x k] whose rows come from a callback (e.g. F16/BF16 or dequantized rows converted on the fly), one
    /// panel of rows at a time, so no full F32 copy of the matrix is ever held. The callback runs on this thread.
    /// </summary>
    public static PackedMatrix FromRows(int n, int k, RowSource source)
    {
        ArgumentNullException.ThrowIfNull(source);
        var packed = new PackedMatrix(n, k, GemmKernel.For(GemmKernel.Best));
        int nr = packed.Kernel.Nr;
        if (n == 0 || k == 0) return packed;
        float[] rows = GC.AllocateUninitializedArray<float>(nr * k, pinned: true);
        float* r = (float*)Unsafe.AsPointer(ref rows[0]);
        for (int p = 0; p < packed.Panels; p++)
        {
            int n0 = p * nr, count = Math.Min(nr, n - n0);
            for (int j = 0; j < count; j++) source(n0 + j, rows.AsSpan(j * k, k));
            PackPanel(r, k, count, k, nr, packed.Data + (long)p * k * nr);
        }
        return packed;
    }

    /// <summary>Fills <paramref name="destination"/> (k floats) with row <paramref name="row"/> of the matrix.</summary>
    public delegate void RowSource(int row, Span<float> destination);

    /// <summary>
    /// Transposing pack of one panel: <paramref name="rows"/> source rows into k x nr, zero past the last row. Walks
    /// k in chunks of 64 so a chunk's destination (64 x Nr floats = 8 KiB) stays in L1 while the rows stream in.
    /// </summary>
    private static void PackPanel(float* w, int ldw, int rows, int k, int nr, float* panel)
    {
        int kDone = 0;
        if (Avx.IsSupported && nr % 8 == 0)
        {
            // 8x8 register transposes: 8 row loads, 24 shuffles and 8 stores per 64 elements instead of 64 scalar
            // load/store pairs. Packing a large W is bound by reading W from memory either way; this mostly helps
            // the per-call packing of cache-resident operands (MultiplyTransposedB on activations).
            kDone = k & ~7;
            Vector256<float> zero = Vector256<float>.Zero;
            for (int g = 0; g < nr; g += 8)
            {
                float* src = w + (long)g * ldw;
                int valid = Math.Clamp(rows - g, 0, 8);
                for (int k0 = 0; k0 < kDone; k0 += 8)
                {
                    Vector256<float> r0 = valid > 0 ? Avx.LoadVector256(src + k0) : zero;
                    Vector256<float> r1 = valid > 1 ? Avx.LoadVector256(src + ldw + k0) : zero;
                    Vector256<float> r2 = valid > 2 ? Avx.LoadVector256(src + 2L * ldw + k0) : zero;
                    Vector256<float> r3 = valid > 3 ? Avx.LoadVector256(src + 3L * ldw + k0) : zero;
                    Vector256<float> r4 = valid > 4 ? Avx.LoadVector256(src + 4L * ldw + k0) : zero;
                    Vector256<float> r5 = valid > 5 ? Avx.LoadVector256(src + 5L * ldw + k0) : zero;
                    Vector256<float> r6 = valid > 6 ? Avx.LoadVector256(src + 6L * ldw + k0) : zero;
                    Vector256<float> r7 = valid > 7 ? Avx.LoadVector256(src + 7L * ldw + k0) : zero;
                    Vector256<float> t0 = Avx.UnpackLow(r0, r1), t1 = Avx.UnpackHigh(r0, r1);
                    Vector256<float> t2 = Avx.UnpackLow(r2, r3), t3 = Avx.UnpackHigh(r2, r3);
                    Vector256<float> t4 = Avx.UnpackLow(r4, r5), t5 = Avx.UnpackHigh(r4, r5);
                    Vector256<float> t6 = Avx.UnpackLow(r6, r7), t7 = Avx.UnpackHigh(r6, r7);
                    Vector256<float> u0 = Avx.Shuffle(t0, t2, 0x44), u1 = Avx.Shuffle(t0, t2, 0xEE);
                    Vector256<float> u2 = Avx.Shuffle(t1, t3, 0x44), u3 = Avx.Shuffle(t1, t3, 0xEE);
                    Vector256<float> u4 = Avx.Shuffle(t4, t6, 0x44), u5 = Avx.Shuffle(t4, t6, 0xEE);
                    Vector256<float> u6 = Avx.Shuffle(t5, t7, 0x44), u7 = Avx.Shuffle(t5, t7, 0xEE);
                    float* dst = panel + (long)k0 * nr + g;
                    Avx.Store(dst, Avx.Permute2x128(u0, u4, 0x20));
                    Avx.Store(dst + nr, Avx.Permute2x128(u1, u5, 0x20));
                    Avx.Store(dst + 2 * nr, Avx.Permute2x128(u2, u6, 0x20));
                    Avx.Store(dst + 3 * nr, Avx.Permute2x128(u3, u7, 0x20));
                    Avx.Store(dst + 4 * nr, Avx.Permute2x128(u0, u4, 0x31));
                    Avx.Store(dst + 5 * nr, Avx.Permute2x128(u1, u5, 0x31));
                    Avx.Store(dst + 6 * nr, Avx.Permute2x128(u2, u6, 0x31));
                    Avx.Store(dst + 7 * nr, Avx.Permute2x128(u3, u7, 0x31));
                }
            }
        }
        const int KChunk = 64;
        for (int k0 = kDone; k0 < k; k0 += KChunk)
        {
            int kc = Math.Min(KChunk, k - k0);
            for (int j = 0; j < rows; j++)
            {
                float* src = w + (long)j * ldw + k0;
                float* dst = panel + (long)k0 * nr + j;
                for (int kk = 0; kk < kc; kk++) dst[kk * nr] = src[kk];
            }
            for (int j = rows; j < nr; j++)
            {
                float* dst = panel + (long)k0 * nr + j;
                for (int kk = 0; kk < kc; kk++) dst[kk * nr] = 0;
            }
        }
    }

    private sealed class PackWeightsJob(PackedMatrix packed, float* w, int ldw, int parts) : IParallelWork
    {
        public void Execute(int part)
        {
            Sgemm.Split(packed.Panels, parts, part, out int p0, out int p1);
            int nr = packed.Kernel.Nr, n = packed.N, k = packed.K;
            for (int p = p0; p < p1; p++)
            {
                int n0 = p * nr;
                PackPanel(w + (long)n0 * ldw, ldw, Math.Min(nr, n - n0), k, nr, packed.Data + (long)p * k * nr);
            }
        }
    }
}
