using System.Text;
using EdgeQuant.Runtimes.OnnxRuntime.Native;

namespace EdgeQuant.Runtimes.OnnxRuntime;

/// <summary>
/// The process-wide ONNX Runtime environment (ORT allows one per process), its default CPU allocator and the CPU
/// memory description used for tensors over managed memory. Created on first use; lives for the process.
/// </summary>
public static unsafe class OrtEnvironment
{
    private static readonly object Gate = new();
    private static OrtEnvHandle? _env;
    private static OrtMemoryInfoHandle? _cpuMemory;
    private static IntPtr _allocator;

    /// <summary>The version string the loaded library reports, e.g. <c>1.30.0</c>.</summary>
    public static string Version => OrtApi.Instance.Version;

    /// <summary>The library loaded (path and how it was found).</summary>
    public static LoadedNativeLibrary Library => OrtApi.Instance.Library;

    /// <summary>The least severe message ORT prints; fixed when the environment is first created.</summary>
    public static OrtLoggingLevel LoggingLevel { get; set; } = OrtLoggingLevel.Error;

    internal static OrtEnvHandle Env
    {
        get
        {
            EnsureCreated();
            return _env!;
        }
    }

    internal static OrtMemoryInfoHandle CpuMemory
    {
        get
        {
            EnsureCreated();
            return _cpuMemory!;
        }
    }

    /// <summary><c>OrtAllocator*</c> with default options (process-wide, owned by ORT, never released).</summary>
    internal static IntPtr Allocator
    {
        get
        {
            EnsureCreated();
            return _allocator;
        }
    }

    private static void EnsureCreated()
    {
        if (Volatile.Read(ref _cpuMemory) is not null) return;
        lock (Gate)
        {
            if (_cpuMemory is not null) return;
            var api = OrtApi.Instance;
            var env = new OrtEnvHandle();
            IntPtr p;
            byte[] logId = Encoding.UTF8.GetBytes("edgequant\0");
            fixed (byte* id = logId)
                OrtStatus.Check(api.CreateEnv((int)LoggingLevel, id, &p), "CreateEnv");
            env.SetPointer(p);

            IntPtr allocator;
            OrtStatus.Check(api.GetAllocatorWithDefaultOptions(&allocator), "GetAllocatorWithDefaultOptions");

            var memory = new OrtMemoryInfoHandle();
            // OrtArenaAllocator = 1, OrtMemTypeDefault = 0: plain CPU memory, as ORT's own bindings describe user buffers.
            OrtStatus.Check(api.CreateCpuMemoryInfo(1, 0, &p), "CreateCpuMemoryInfo");
            memory.SetPointer(p);

            _env = env;
            _allocator = allocator;
            Volatile.Write(ref _cpuMemory, memory);
        }
    }
}
