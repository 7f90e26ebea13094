using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace EdgeQuant.Core.Kernels;

/// <summary>Which micro-kernel family a GEMM uses. Chosen once per process from the hardware; tests force others.</summary>
internal enum GemmKernelKind
{
    Scalar,
    Vector128,
    Vector256,
    Vector512,
}

/// <summary>
/// A micro-kernel with its tile (Mr x Nr) and cache blocking limits (Kc, Mc). Why these numbers (measured on the
/// 2-vCPU AVX-512 Xeon here with thread CPU time, since the shared machine makes wall time noisy):
/// - Nr is two vectors, Mr fills the register file: 14x32 on AVX-512 uses 28 of 32 zmm for accumulators (2 B loads
///   and one broadcast per 28 FMAs); it reaches ~175 GFLOP/s per core with its operands in L1, about the FMA peak.
///   12x32, 8x48 and 6x64 measured the same in L1 and no better in the full GEMM. 6x16 / 6x8 use 12 of 16 ymm/xmm.
/// - What limits the full GEMM is each micro-call's fixed cost (the C tile's loads and stores, the first cold touch
///   of a B panel), so the blocks are as large as the caches allow: Kc up to 768 (K is cut into equal blocks, so
///   K = 576 is one block and 2048 three), and the packed A block (Mc x Kc) up to ~1.5 MiB of the 2 MiB L2, i.e. a
///   thread's whole 256–512 rows. Kc 256 → 768 and Mc 336 → 560 took 512x2048x5632 from ~115 to ~140 GFLOP/s on
///   one core (OpenBLAS SkylakeX kernels: ~145–150 in the same runs).
/// - The A-block budget is per thread; on a core with a 1 MiB L2 (Zen 4/5) it would want halving: not measured.
/// </summary>
internal readonly unsafe struct GemmKernel
{
    public readonly GemmKernelKind Kind;
    public readonly int Mr, Nr, Kc, Mc;

    /// <summary>Floats of packed A a thread keeps per block (~1.5 MiB, see above).</summary>
    public const int ABlockBudget = 384 * 1024;
    public readonly delegate*<float*, float*, nint, float*, nint, bool, void> Micro;

    /// <summary>Any tile/blocking combination; used by the benchmark to measure alternatives.</summary>
    internal GemmKernel(GemmKernelKind kind, int mr, int nr, int kc, int mc, delegate*<float*, float*, nint, float*, nint, bool, void> micro)
    {
        Kind = kind; Mr = mr; Nr = nr; Kc = kc; Mc = mc; Micro = micro;
    }

    public static GemmKernelKind Best =>
        Vector512.IsHardwareAccelerated ? GemmKernelKind.Vector512
        : Vector256.IsHardwareAccelerated ? GemmKernelKind.Vector256
        : Vector128.IsHardwareAccelerated ? GemmKernelKind.Vector128
        : GemmKernelKind.Scalar;

    /// <summary>Whether this process can run <paramref name="kind"/> (forcing an unaccelerated width would still be correct, only slow).</summary>
    public static bool IsSupported(GemmKernelKind kind) => kind switch
    {
        GemmKernelKind.Vector512 => Vector512.IsHardwareAccelerated,
        GemmKernelKind.Vector256 => Vector256.IsHardwareAccelerated,
        GemmKernelKind.Vector128 => Vector128.IsHardwareAccelerated,
        _ => true,
    };

    public static GemmKernel For(GemmKernelKind kind) => kind switch
    {
        GemmKernelKind.Vector512 => new(kind, 14, 32, 768, 14 * 40, &SgemmMicroKernels.Kernel512x14x32Prefetch),
        GemmKernelKind.Vector256 => new(kind, 6, 16, 512, 6 * 64, &SgemmMicroKernels.Kernel256x6x16),
        GemmKernelKind.Vector128 => new(kind, 6, 8, 512, 6 * 64, &SgemmMicroKernels.Kernel128x6x8),
        _ => new(kind, 4, 4, 256, 4 * 64, &ScalarKernel4x4),
    };

    /// <summary>Plain C# tile for machines without SIMD; no FMA, because MathF.FusedMultiplyAdd is emulated there.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ScalarKernel4x4(float* a, float* b, nint kc, float* c, nint ldc, bool accumulate)
    {
        float c00 = 0, c01 = 0, c02 = 0, c03 = 0, c10 = 0, c11 = 0, c12 = 0, c13 = 0;
        float c20 = 0, c21 = 0, c22 = 0, c23 = 0, c30 = 0, c31 = 0, c32 = 0, c33 = 0;
        for (nint k = 0; k < kc; k++)
        {
            float b0 = b[0], b1 = b[1], b2 = b[2], b3 = b[3];
            float a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3];
            c00 += a0 * b0; c01 += a0 * b1; c02 += a0 * b2; c03 += a0 * b3;
            c10 += a1 * b0; c11 += a1 * b1; c12 += a1 * b2; c13 += a1 * b3;
            c20 += a2 * b0; c21 += a2 * b1; c22 += a2 * b2; c23 += a2 * b3;
            c30 += a3 * b0; c31 += a3 * b1; c32 += a3 * b2; c33 += a3 * b3;
            a += 4; b += 4;
        }
        float* r0 = c, r1 = c + ldc, r2 = c + 2 * ldc, r3 = c + 3 * ldc;
        if (accumulate)
        {
            r0[0] += c00; r0[1] += c01; r0[2] += c02; r0[3] += c03;
            r1[0] += c10; r1[1] += c11; r1[2] += c12; r1[3] += c13;
            r2[0] += c20; r2[1] += c21; r2[2] += c22; r2[3] += c23;
            r3[0] += c30; r3[1] += c31; r3[2] += c32; r3[3] += c33;
        }
        else
        {
            r0[0] = c00; r0[1] = c01; r0[2] = c02; r0[3] = c03;
            r1[0] = c10; r1[1] = c11; r1[2] = c12; r1[3] = c13;
            r2[0] = c20; r2[1] = c21; r2[2] = c22; r2[3] = c23;
            r3[0] = c30; r3[1] = c31; r3[2] = c32; r3[3] = c33;
        }
    }
}
