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
/// A micro-kernel with its tile (Mr x Nr) and cache blocking (Kc, Mc). Why these numbers:
/// - Nr is two vectors, Mr fills the register file: 14x32 on AVX-512 uses 28 of 32 zmm for accumulators (2 B loads
///   and one broadcast per 28 FMAs keep both FMA ports busy); 6x16 / 6x8 use 12 of 16 ymm/xmm.
/// - Kc = 256 keeps one B micro-panel (Kc x Nr floats = 32 KiB at Nr = 32) resident in the 48 KiB L1D while the A
///   panels of the block stream past it.
/// - Mc x Kc (the packed A block) is sized to sit in L2 (2 MiB per core here) with room for the B stream.
/// </summary>
internal readonly unsafe struct GemmKernel
{
    public readonly GemmKernelKind Kind;
    public readonly int Mr, Nr, Kc, Mc;
    public readonly delegate*<float*, float*, nint, float*, nint, bool, void> Micro;

    private GemmKernel(GemmKernelKind kind, int mr, int nr, int kc, int mc, delegate*<float*, float*, nint, float*, nint, bool, void> micro)
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
        GemmKernelKind.Vector512 => new(kind, 14, 32, 256, 14 * 24, &SgemmMicroKernels.Kernel512x14x32),
        GemmKernelKind.Vector256 => new(kind, 6, 16, 256, 6 * 48, &SgemmMicroKernels.Kernel256x6x16),
        GemmKernelKind.Vector128 => new(kind, 6, 8, 256, 6 * 48, &SgemmMicroKernels.Kernel128x6x8),
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
