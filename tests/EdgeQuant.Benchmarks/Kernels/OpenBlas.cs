using System.Runtime.InteropServices;

namespace EdgeQuant.Benchmarks.Kernels;

/// <summary>
/// Debian's OpenBLAS (libopenblas0-pthread) as the benchmark peer, bound by function pointer so the bench still runs
/// (without ratios) when it is missing.
/// Core selection, decided before the library loads (OpenBLAS reads OPENBLAS_CORETYPE in its load-time constructor):
/// - an inherited OPENBLAS_CORETYPE is dropped with a warning: this environment sets it to Haswell, which forces the
///   AVX2 kernels and halves OpenBLAS on AVX-512 (the Makefile also launches the bench with `env -u`);
/// - on a CPU with AVX-512F we then ask for SkylakeX, OpenBLAS's AVX-512 SGEMM: 0.3.21's autodetection does not
///   know every AVX-512 part (on the Xeon model 207 here it falls back to Prescott, SSE3, ~5x slower), and the
///   peer must be the best sgemm the machine has, not an unlucky default;
/// - EDGEQUANT_OPENBLAS_CORETYPE=name forces a core, =auto leaves autodetection alone.
/// </summary>
internal static unsafe class OpenBlas
{
    [DllImport("libc", EntryPoint = "setenv")]
    private static extern int SetEnv(string name, string value, int overwrite);

    [DllImport("libc", EntryPoint = "unsetenv")]
    private static extern int UnsetEnv(string name);

    /// <summary>What the bench did about OPENBLAS_CORETYPE, for the report.</summary>
    public static string CorePolicy { get; private set; } = "";

    private static void ChooseCore()
    {
        string? inherited = Environment.GetEnvironmentVariable("OPENBLAS_CORETYPE");
        if (inherited is not null)
        {
            Console.WriteLine($"WARNING: OPENBLAS_CORETYPE={inherited} was set; removed before loading OpenBLAS (run the bench with `env -u OPENBLAS_CORETYPE`).");
            UnsetEnv("OPENBLAS_CORETYPE");
        }
        string? forced = Environment.GetEnvironmentVariable("EDGEQUANT_OPENBLAS_CORETYPE");
        if (forced is not null && !forced.Equals("auto", StringComparison.OrdinalIgnoreCase))
        {
            SetEnv("OPENBLAS_CORETYPE", forced, 1);
            CorePolicy = $"forced by EDGEQUANT_OPENBLAS_CORETYPE={forced}";
        }
        else if (forced is null && HasAvx512F())
        {
            SetEnv("OPENBLAS_CORETYPE", "SkylakeX", 1);
            CorePolicy = "SkylakeX (AVX-512 kernels) because the CPU has AVX-512F";
        }
        else
        {
            CorePolicy = "autodetected";
        }
    }

    /// <summary>CPUID leaf 7 EBX bit 16, read directly so DOTNET_EnableAVX512=0 in this process does not hide it.</summary>
    private static bool HasAvx512F()
    {
        if (!System.Runtime.Intrinsics.X86.X86Base.IsSupported) return false;
        var (_, ebx, _, _) = System.Runtime.Intrinsics.X86.X86Base.CpuId(7, 0);
        return (ebx & (1 << 16)) != 0;
    }

    // From `dpkg -L libopenblas0-pthread` on Debian 12 (x86_64 and arm64 use the same layout).
    private static readonly string[] Candidates =
    [
        "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0",
        "/usr/lib/aarch64-linux-gnu/openblas-pthread/libopenblas.so.0",
    ];

    private const int RowMajor = 101, NoTrans = 111, Trans = 112;

    private static readonly delegate* unmanaged<int, int, int, int, int, int, float, float*, int, float*, int, float, float*, int, void> sgemm;
    private static readonly delegate* unmanaged<int, int, int, int, float, float*, int, float*, int, float, float*, int, void> sgemv;
    private static readonly delegate* unmanaged<int, void> setThreads;
    private static readonly delegate* unmanaged<byte*> coreName;

    static OpenBlas()
    {
        ChooseCore();
        foreach (string path in Candidates)
        {
            if (!NativeLibrary.TryLoad(path, out nint lib)) continue;
            sgemm = (delegate* unmanaged<int, int, int, int, int, int, float, float*, int, float*, int, float, float*, int, void>)NativeLibrary.GetExport(lib, "cblas_sgemm");
            sgemv = (delegate* unmanaged<int, int, int, int, float, float*, int, float*, int, float, float*, int, void>)NativeLibrary.GetExport(lib, "cblas_sgemv");
            setThreads = (delegate* unmanaged<int, void>)NativeLibrary.GetExport(lib, "openblas_set_num_threads");
            coreName = (delegate* unmanaged<byte*>)NativeLibrary.GetExport(lib, "openblas_get_corename");
            Path = path;
            return;
        }
    }

    public static string? Path { get; }

    public static bool Available => Path is not null;

    public static string CoreName => coreName == null ? "?" : Marshal.PtrToStringUTF8((nint)coreName()) ?? "?";

    public static void SetThreads(int threads) => setThreads(threads);

    /// <summary>C[m x n] = A[m x k] · Bᵀ, B [n x k] row-major: the engine's layout.</summary>
    public static void SgemmTransposedB(float[] a, float[] b, float[] c, int m, int n, int k)
    {
        fixed (float* pa = a)
        fixed (float* pb = b)
        fixed (float* pc = c)
            sgemm(RowMajor, NoTrans, Trans, m, n, k, 1f, pa, k, pb, k, 0f, pc, n);
    }

    /// <summary>y[n] = W[n x k] · x.</summary>
    public static void Sgemv(float[] w, float[] x, float[] y, int n, int k)
    {
        fixed (float* pw = w)
        fixed (float* px = x)
        fixed (float* py = y)
            sgemv(RowMajor, NoTrans, n, k, 1f, pw, k, px, 1, 0f, py, 1);
    }
}
