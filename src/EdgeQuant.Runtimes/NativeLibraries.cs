namespace EdgeQuant.Runtimes;

/// <summary>
/// One native library EdgeQuant binds to: its error number, a display name and the file names to try, in order.
/// </summary>
/// <param name="Code">The numbered error used when it is missing, e.g. <c>EQ-RT-001</c>.</param>
/// <param name="DisplayName">What users call it ("ONNX Runtime").</param>
/// <param name="FileNames">File names to probe in each folder, preferred first. The first one is the one error messages name.</param>
public sealed record NativeLibraryInfo(string Code, string DisplayName, IReadOnlyList<string> FileNames)
{
    public string PrimaryFileName => FileNames[0];
}

/// <summary>
/// The table of native libraries and the numbered errors around them. The file names are those
/// <c>tools/fetch-runtimes.sh</c> lays out in <c>runtimes/&lt;rid&gt;/native/</c> from the pinned npm packages.
/// </summary>
/// <remarks>
/// Error numbers: EQ-RT-001..003 a library is missing; EQ-RT-004 the platform has no runtimes;
/// EQ-RT-005 a library was found but the loader refused it (wrong architecture, missing dependency);
/// EQ-RT-006 a library lacks an expected export (a different version than the one pinned).
/// </remarks>
public static class NativeLibraries
{
    /// <summary>ONNX Runtime 1.30.0 (from npm <c>onnxruntime-node@1.30.0</c>).</summary>
    public static NativeLibraryInfo OnnxRuntime { get; } = new("EQ-RT-001", "ONNX Runtime", ["libonnxruntime.so.1", "libonnxruntime.so"]);

    /// <summary>llama.cpp's <c>libllama</c> (from npm <c>@node-llama-cpp/&lt;rid&gt;@3.22.1</c>, which names it by release).</summary>
    public static NativeLibraryInfo LlamaCpp { get; } = new("EQ-RT-002", "llama.cpp", ["libllama.so", "libllama.v0.5.0.so"]);

    /// <summary>ggml's front library (exports <c>ggml_backend_load_all_from_path</c>), shipped with llama.cpp.</summary>
    public static NativeLibraryInfo Ggml { get; } = new("EQ-RT-003", "ggml (llama.cpp)", ["libggml.so", "libggml.v0.5.0.so"]);

    public const string UnsupportedPlatformCode = "EQ-RT-004";
    public const string LoadFailedCode = "EQ-RT-005";
    public const string MissingExportCode = "EQ-RT-006";

    /// <summary>Every library, for <c>edgequant runtimes</c> listings.</summary>
    public static IReadOnlyList<NativeLibraryInfo> All { get; } = [OnnxRuntime, LlamaCpp, Ggml];
}
