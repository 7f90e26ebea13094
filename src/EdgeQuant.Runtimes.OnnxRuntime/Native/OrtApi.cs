using EdgeQuant.Core.Errors;
using System.Runtime.InteropServices;

namespace EdgeQuant.Runtimes.OnnxRuntime.Native;

/// <summary>
/// The slots of ONNX Runtime's <c>OrtApi</c> function table that EdgeQuant calls, read from the table that
/// <c>OrtGetApiBase()-&gt;GetApi(ORT_API_VERSION)</c> returns.
/// </summary>
/// <remarks>
/// Matches <c>include/onnxruntime/core/session/onnxruntime_c_api.h</c> of ONNX Runtime 1.30.0 (npm
/// <c>onnxruntime-node@1.30.0</c>, which ships no header; the slot order was checked against the header's
/// <c>struct OrtApi</c> and the order mirrored by ORT's own C# binding). Only slots 0..101 (the API version 1
/// block) are used: ORT appends new functions at the end and never moves existing ones, so these indices hold
/// for every version &gt;= 1. Asking for version 30 still matters: <c>GetApi</c> returns NULL when the library
/// is older than the version requested, which turns a silent ABI mismatch into a clear error.
/// On Linux <c>ORT_API_CALL</c> is the platform default convention and <c>ORTCHAR_T</c> is <c>char</c> (UTF-8).
/// Every function returning <c>OrtStatus*</c> returns NULL on success.
/// </remarks>
internal sealed unsafe class OrtApi
{
    /// <summary><c>ORT_API_VERSION</c> of the pinned 1.30.0 header.</summary>
    public const uint ApiVersion = 30;

    /// <summary>Index of the last slot of the version-1 block (<c>ReleaseCustomOpDomain</c>).</summary>
    public const int LastVersion1Slot = 101;

    private OrtApi(void** t, string version)
    {
        Version = version;
        // [0] OrtStatus* CreateStatus(OrtErrorCode code, const char* msg)   (used by tests of the status conversion)
        CreateStatus = (delegate* unmanaged<int, byte*, IntPtr>)t[0];
        // [1] OrtErrorCode GetErrorCode(const OrtStatus* status)
        GetErrorCode = (delegate* unmanaged<IntPtr, int>)t[1];
        // [2] const char* GetErrorMessage(const OrtStatus* status)
        GetErrorMessage = (delegate* unmanaged<IntPtr, byte*>)t[2];
        // [3] OrtStatus* CreateEnv(OrtLoggingLevel log_severity_level, const char* logid, OrtEnv** out)
        CreateEnv = (delegate* unmanaged<int, byte*, IntPtr*, IntPtr>)t[3];
        // [7] OrtStatus* CreateSession(const OrtEnv* env, const ORTCHAR_T* model_path, const OrtSessionOptions* options, OrtSession** out)
        CreateSession = (delegate* unmanaged<IntPtr, byte*, IntPtr, IntPtr*, IntPtr>)t[7];
        // [8] OrtStatus* CreateSessionFromArray(const OrtEnv* env, const void* model_data, size_t model_data_length, const OrtSessionOptions* options, OrtSession** out)
        CreateSessionFromArray = (delegate* unmanaged<IntPtr, void*, nuint, IntPtr, IntPtr*, IntPtr>)t[8];
        // [9] OrtStatus* Run(OrtSession* session, const OrtRunOptions* run_options, const char* const* input_names,
        //                    const OrtValue* const* inputs, size_t input_len, const char* const* output_names,
        //                    size_t output_names_len, OrtValue** outputs)
        Run = (delegate* unmanaged<IntPtr, IntPtr, byte**, IntPtr*, nuint, byte**, nuint, IntPtr*, IntPtr>)t[9];
        // [10] OrtStatus* CreateSessionOptions(OrtSessionOptions** options)
        CreateSessionOptions = (delegate* unmanaged<IntPtr*, IntPtr>)t[10];
        // [11] OrtStatus* SetOptimizedModelFilePath(OrtSessionOptions* options, const ORTCHAR_T* optimized_model_filepath)
        SetOptimizedModelFilePath = (delegate* unmanaged<IntPtr, byte*, IntPtr>)t[11];
        // [14] OrtStatus* EnableProfiling(OrtSessionOptions* options, const ORTCHAR_T* profile_file_prefix)
        EnableProfiling = (delegate* unmanaged<IntPtr, byte*, IntPtr>)t[14];
        // [16] OrtStatus* EnableMemPattern(OrtSessionOptions* options)
        EnableMemPattern = (delegate* unmanaged<IntPtr, IntPtr>)t[16];
        // [17] OrtStatus* DisableMemPattern(OrtSessionOptions* options)
        DisableMemPattern = (delegate* unmanaged<IntPtr, IntPtr>)t[17];
        // [18] OrtStatus* EnableCpuMemArena(OrtSessionOptions* options)
        EnableCpuMemArena = (delegate* unmanaged<IntPtr, IntPtr>)t[18];
        // [19] OrtStatus* DisableCpuMemArena(OrtSessionOptions* options)
        DisableCpuMemArena = (delegate* unmanaged<IntPtr, IntPtr>)t[19];
        // [22] OrtStatus* SetSessionLogSeverityLevel(OrtSessionOptions* options, int session_log_severity_level)
        SetSessionLogSeverityLevel = (delegate* unmanaged<IntPtr, int, IntPtr>)t[22];
        // [23] OrtStatus* SetSessionGraphOptimizationLevel(OrtSessionOptions* options, GraphOptimizationLevel graph_optimization_level)
        SetSessionGraphOptimizationLevel = (delegate* unmanaged<IntPtr, int, IntPtr>)t[23];
        // [24] OrtStatus* SetIntraOpNumThreads(OrtSessionOptions* options, int intra_op_num_threads)
        SetIntraOpNumThreads = (delegate* unmanaged<IntPtr, int, IntPtr>)t[24];
        // [25] OrtStatus* SetInterOpNumThreads(OrtSessionOptions* options, int inter_op_num_threads)
        SetInterOpNumThreads = (delegate* unmanaged<IntPtr, int, IntPtr>)t[25];
        // [30] OrtStatus* SessionGetInputCount(const OrtSession* session, size_t* out)
        SessionGetInputCount = (delegate* unmanaged<IntPtr, nuint*, IntPtr>)t[30];
        // [31] OrtStatus* SessionGetOutputCount(const OrtSession* session, size_t* out)
        SessionGetOutputCount = (delegate* unmanaged<IntPtr, nuint*, IntPtr>)t[31];
        // [33] OrtStatus* SessionGetInputTypeInfo(const OrtSession* session, size_t index, OrtTypeInfo** type_info)
        SessionGetInputTypeInfo = (delegate* unmanaged<IntPtr, nuint, IntPtr*, IntPtr>)t[33];
        // [34] OrtStatus* SessionGetOutputTypeInfo(const OrtSession* session, size_t index, OrtTypeInfo** type_info)
        SessionGetOutputTypeInfo = (delegate* unmanaged<IntPtr, nuint, IntPtr*, IntPtr>)t[34];
        // [36] OrtStatus* SessionGetInputName(const OrtSession* session, size_t index, OrtAllocator* allocator, char** value)
        SessionGetInputName = (delegate* unmanaged<IntPtr, nuint, IntPtr, byte**, IntPtr>)t[36];
        // [37] OrtStatus* SessionGetOutputName(const OrtSession* session, size_t index, OrtAllocator* allocator, char** value)
        SessionGetOutputName = (delegate* unmanaged<IntPtr, nuint, IntPtr, byte**, IntPtr>)t[37];
        // [48] OrtStatus* CreateTensorAsOrtValue(OrtAllocator* allocator, const int64_t* shape, size_t shape_len,
        //                                        ONNXTensorElementDataType type, OrtValue** out)
        CreateTensorAsOrtValue = (delegate* unmanaged<IntPtr, long*, nuint, int, IntPtr*, IntPtr>)t[48];
        // [49] OrtStatus* CreateTensorWithDataAsOrtValue(const OrtMemoryInfo* info, void* p_data, size_t p_data_len,
        //                                                const int64_t* shape, size_t shape_len, ONNXTensorElementDataType type, OrtValue** out)
        CreateTensorWithDataAsOrtValue = (delegate* unmanaged<IntPtr, void*, nuint, long*, nuint, int, IntPtr*, IntPtr>)t[49];
        // [50] OrtStatus* IsTensor(const OrtValue* value, int* out)
        IsTensor = (delegate* unmanaged<IntPtr, int*, IntPtr>)t[50];
        // [51] OrtStatus* GetTensorMutableData(OrtValue* value, void** out)
        GetTensorMutableData = (delegate* unmanaged<IntPtr, void**, IntPtr>)t[51];
        // [52] OrtStatus* FillStringTensor(OrtValue* value, const char* const* s, size_t s_len)
        FillStringTensor = (delegate* unmanaged<IntPtr, byte**, nuint, IntPtr>)t[52];
        // [53] OrtStatus* GetStringTensorDataLength(const OrtValue* value, size_t* len)
        GetStringTensorDataLength = (delegate* unmanaged<IntPtr, nuint*, IntPtr>)t[53];
        // [54] OrtStatus* GetStringTensorContent(const OrtValue* value, void* s, size_t s_len, size_t* offsets, size_t offsets_len)
        GetStringTensorContent = (delegate* unmanaged<IntPtr, void*, nuint, nuint*, nuint, IntPtr>)t[54];
        // [55] OrtStatus* CastTypeInfoToTensorInfo(const OrtTypeInfo* type_info, const OrtTensorTypeAndShapeInfo** out)
        //      (the result points into type_info and is not released separately)
        CastTypeInfoToTensorInfo = (delegate* unmanaged<IntPtr, IntPtr*, IntPtr>)t[55];
        // [56] OrtStatus* GetOnnxTypeFromTypeInfo(const OrtTypeInfo* type_info, ONNXType* out)
        GetOnnxTypeFromTypeInfo = (delegate* unmanaged<IntPtr, int*, IntPtr>)t[56];
        // [60] OrtStatus* GetTensorElementType(const OrtTensorTypeAndShapeInfo* info, ONNXTensorElementDataType* out)
        GetTensorElementType = (delegate* unmanaged<IntPtr, int*, IntPtr>)t[60];
        // [61] OrtStatus* GetDimensionsCount(const OrtTensorTypeAndShapeInfo* info, size_t* out)
        GetDimensionsCount = (delegate* unmanaged<IntPtr, nuint*, IntPtr>)t[61];
        // [62] OrtStatus* GetDimensions(const OrtTensorTypeAndShapeInfo* info, int64_t* dim_values, size_t dim_values_length)
        GetDimensions = (delegate* unmanaged<IntPtr, long*, nuint, IntPtr>)t[62];
        // [63] OrtStatus* GetSymbolicDimensions(const OrtTensorTypeAndShapeInfo* info, const char* dim_params[], size_t dim_params_length)
        GetSymbolicDimensions = (delegate* unmanaged<IntPtr, byte**, nuint, IntPtr>)t[63];
        // [64] OrtStatus* GetTensorShapeElementCount(const OrtTensorTypeAndShapeInfo* info, size_t* out)
        GetTensorShapeElementCount = (delegate* unmanaged<IntPtr, nuint*, IntPtr>)t[64];
        // [65] OrtStatus* GetTensorTypeAndShape(const OrtValue* value, OrtTensorTypeAndShapeInfo** out)
        GetTensorTypeAndShape = (delegate* unmanaged<IntPtr, IntPtr*, IntPtr>)t[65];
        // [67] OrtStatus* GetValueType(const OrtValue* value, ONNXType* out)
        GetValueType = (delegate* unmanaged<IntPtr, int*, IntPtr>)t[67];
        // [69] OrtStatus* CreateCpuMemoryInfo(OrtAllocatorType type, OrtMemType mem_type, OrtMemoryInfo** out)
        CreateCpuMemoryInfo = (delegate* unmanaged<int, int, IntPtr*, IntPtr>)t[69];
        // [76] OrtStatus* AllocatorFree(OrtAllocator* ort_allocator, void* p)
        AllocatorFree = (delegate* unmanaged<IntPtr, void*, IntPtr>)t[76];
        // [78] OrtStatus* GetAllocatorWithDefaultOptions(OrtAllocator** out)   (process-wide; never released)
        GetAllocatorWithDefaultOptions = (delegate* unmanaged<IntPtr*, IntPtr>)t[78];
        // [92] void ReleaseEnv(OrtEnv*)
        ReleaseEnv = (delegate* unmanaged<IntPtr, void>)t[92];
        // [93] void ReleaseStatus(OrtStatus*)
        ReleaseStatus = (delegate* unmanaged<IntPtr, void>)t[93];
        // [94] void ReleaseMemoryInfo(OrtMemoryInfo*)
        ReleaseMemoryInfo = (delegate* unmanaged<IntPtr, void>)t[94];
        // [95] void ReleaseSession(OrtSession*)
        ReleaseSession = (delegate* unmanaged<IntPtr, void>)t[95];
        // [96] void ReleaseValue(OrtValue*)
        ReleaseValue = (delegate* unmanaged<IntPtr, void>)t[96];
        // [98] void ReleaseTypeInfo(OrtTypeInfo*)
        ReleaseTypeInfo = (delegate* unmanaged<IntPtr, void>)t[98];
        // [99] void ReleaseTensorTypeAndShapeInfo(OrtTensorTypeAndShapeInfo*)
        ReleaseTensorTypeAndShapeInfo = (delegate* unmanaged<IntPtr, void>)t[99];
        // [100] void ReleaseSessionOptions(OrtSessionOptions*)
        ReleaseSessionOptions = (delegate* unmanaged<IntPtr, void>)t[100];
    }

    /// <summary>The library's own version string (<c>OrtApiBase::GetVersionString</c>), e.g. <c>1.30.0</c>.</summary>
    public string Version { get; }

    /// <summary>Where the library was loaded from.</summary>
    public LoadedNativeLibrary Library { get; private set; } = null!;

    public readonly delegate* unmanaged<int, byte*, IntPtr> CreateStatus;
    public readonly delegate* unmanaged<IntPtr, int> GetErrorCode;
    public readonly delegate* unmanaged<IntPtr, byte*> GetErrorMessage;
    public readonly delegate* unmanaged<int, byte*, IntPtr*, IntPtr> CreateEnv;
    public readonly delegate* unmanaged<IntPtr, byte*, IntPtr, IntPtr*, IntPtr> CreateSession;
    public readonly delegate* unmanaged<IntPtr, void*, nuint, IntPtr, IntPtr*, IntPtr> CreateSessionFromArray;
    public readonly delegate* unmanaged<IntPtr, IntPtr, byte**, IntPtr*, nuint, byte**, nuint, IntPtr*, IntPtr> Run;
    public readonly delegate* unmanaged<IntPtr*, IntPtr> CreateSessionOptions;
    public readonly delegate* unmanaged<IntPtr, byte*, IntPtr> SetOptimizedModelFilePath;
    public readonly delegate* unmanaged<IntPtr, IntPtr> EnableMemPattern;
    public readonly delegate* unmanaged<IntPtr, IntPtr> DisableMemPattern;
    public readonly delegate* unmanaged<IntPtr, IntPtr> EnableCpuMemArena;
    public readonly delegate* unmanaged<IntPtr, IntPtr> DisableCpuMemArena;
    public readonly delegate* unmanaged<IntPtr, int, IntPtr> SetSessionLogSeverityLevel;
    public readonly delegate* unmanaged<IntPtr, byte*, IntPtr> EnableProfiling;
    public readonly delegate* unmanaged<IntPtr, int, IntPtr> SetSessionGraphOptimizationLevel;
    public readonly delegate* unmanaged<IntPtr, int, IntPtr> SetIntraOpNumThreads;
    public readonly delegate* unmanaged<IntPtr, int, IntPtr> SetInterOpNumThreads;
    public readonly delegate* unmanaged<IntPtr, nuint*, IntPtr> SessionGetInputCount;
    public readonly delegate* unmanaged<IntPtr, nuint*, IntPtr> SessionGetOutputCount;
    public readonly delegate* unmanaged<IntPtr, nuint, IntPtr*, IntPtr> SessionGetInputTypeInfo;
    public readonly delegate* unmanaged<IntPtr, nuint, IntPtr*, IntPtr> SessionGetOutputTypeInfo;
    public readonly delegate* unmanaged<IntPtr, nuint, IntPtr, byte**, IntPtr> SessionGetInputName;
    public readonly delegate* unmanaged<IntPtr, nuint, IntPtr, byte**, IntPtr> SessionGetOutputName;
    public readonly delegate* unmanaged<IntPtr, long*, nuint, int, IntPtr*, IntPtr> CreateTensorAsOrtValue;
    public readonly delegate* unmanaged<IntPtr, void*, nuint, long*, nuint, int, IntPtr*, IntPtr> CreateTensorWithDataAsOrtValue;
    public readonly delegate* unmanaged<IntPtr, int*, IntPtr> IsTensor;
    public readonly delegate* unmanaged<IntPtr, void**, IntPtr> GetTensorMutableData;
    public readonly delegate* unmanaged<IntPtr, byte**, nuint, IntPtr> FillStringTensor;
    public readonly delegate* unmanaged<IntPtr, nuint*, IntPtr> GetStringTensorDataLength;
    public readonly delegate* unmanaged<IntPtr, void*, nuint, nuint*, nuint, IntPtr> GetStringTensorContent;
    public readonly delegate* unmanaged<IntPtr, IntPtr*, IntPtr> CastTypeInfoToTensorInfo;
    public readonly delegate* unmanaged<IntPtr, int*, IntPtr> GetOnnxTypeFromTypeInfo;
    public readonly delegate* unmanaged<IntPtr, int*, IntPtr> GetTensorElementType;
    public readonly delegate* unmanaged<IntPtr, nuint*, IntPtr> GetDimensionsCount;
    public readonly delegate* unmanaged<IntPtr, long*, nuint, IntPtr> GetDimensions;
    public readonly delegate* unmanaged<IntPtr, byte**, nuint, IntPtr> GetSymbolicDimensions;
    public readonly delegate* unmanaged<IntPtr, nuint*, IntPtr> GetTensorShapeElementCount;
    public readonly delegate* unmanaged<IntPtr, IntPtr*, IntPtr> GetTensorTypeAndShape;
    public readonly delegate* unmanaged<IntPtr, int*, IntPtr> GetValueType;
    public readonly delegate* unmanaged<int, int, IntPtr*, IntPtr> CreateCpuMemoryInfo;
    public readonly delegate* unmanaged<IntPtr, void*, IntPtr> AllocatorFree;
    public readonly delegate* unmanaged<IntPtr*, IntPtr> GetAllocatorWithDefaultOptions;
    public readonly delegate* unmanaged<IntPtr, void> ReleaseEnv;
    public readonly delegate* unmanaged<IntPtr, void> ReleaseStatus;
    public readonly delegate* unmanaged<IntPtr, void> ReleaseMemoryInfo;
    public readonly delegate* unmanaged<IntPtr, void> ReleaseSession;
    public readonly delegate* unmanaged<IntPtr, void> ReleaseValue;
    public readonly delegate* unmanaged<IntPtr, void> ReleaseTypeInfo;
    public readonly delegate* unmanaged<IntPtr, void> ReleaseTensorTypeAndShapeInfo;
    public readonly delegate* unmanaged<IntPtr, void> ReleaseSessionOptions;

    private static readonly object Gate = new();
    private static OrtApi? _instance;

    /// <summary>
    /// The table, loading the library on first use through <see cref="NativeLibraryResolver"/>. A missing library
    /// throws the numbered <see cref="RuntimeNotFoundException"/> (EQ-RT-001) and is retried on the next call.
    /// </summary>
    public static OrtApi Instance
    {
        get
        {
            if (Volatile.Read(ref _instance) is { } api) return api;
            lock (Gate)
            {
                return _instance ??= Load(NativeLibraryResolver.LoadShared(NativeLibraries.OnnxRuntime));
            }
        }
    }

    /// <summary>Binds the table of an already loaded library (for tests that load a library explicitly).</summary>
    internal static OrtApi Load(LoadedNativeLibrary library)
    {
        // struct OrtApiBase { const OrtApi* (*GetApi)(uint32_t version); const char* (*GetVersionString)(void); }
        var getApiBase = (delegate* unmanaged<void**>)library.GetExport("OrtGetApiBase");
        void** apiBase = getApiBase();
        if (apiBase is null)
            throw new InternalFailureException($"ONNX Runtime at {library.Path}: OrtGetApiBase returned NULL");
        var getApi = (delegate* unmanaged<uint, void**>)apiBase[0];
        var getVersion = (delegate* unmanaged<byte*>)apiBase[1];
        string version = Marshal.PtrToStringUTF8((IntPtr)getVersion()) ?? "?";
        void** table = getApi(ApiVersion);
        if (table is null)
        {
            throw new RuntimeNotFoundException(NativeLibraries.LoadFailedCode,
                $"{NativeLibraries.LoadFailedCode}: ONNX Runtime at {library.Path} is version {version}, which lacks C API version {ApiVersion} " +
                "(ONNX Runtime 1.30.0 or later is needed). Run `make runtimes`, or set EDGEQUANT_RUNTIMES to a folder holding libonnxruntime.so.1 of 1.30.0.",
                [library.Path]);
        }
        return new OrtApi(table, version) { Library = library };
    }
}
