using System.Reflection;
using System.Runtime.InteropServices;
using EdgeQuant.Runtimes.LlamaCpp.Native;

namespace EdgeQuant.Runtimes.LlamaCpp;

/// <summary>What was loaded: where from, which llama.cpp/ggml build, which CPU backend variant ggml chose.</summary>
public sealed record LlamaRuntimeInfo(
    string? Directory,
    string LlamaPath,
    NativeLibrarySource Source,
    string LlamaVersion,
    string GgmlVersion,
    string GgmlCommit,
    string? CpuVariant,
    string? CpuVariantPath,
    IReadOnlyList<string> Devices,
    string SystemInfo);

/// <summary>
/// Loads libllama and its ggml libraries once per process, in the order llama.cpp needs: the libraries themselves,
/// the log callback (so even backend discovery is quiet), <c>ggml_backend_load_all_from_path</c> on the folder that
/// holds the <c>libggml-cpu-*.so</c> variants (without it no CPU backend is found unless the working directory holds
/// them), then <c>llama_backend_init</c>.
/// </summary>
public static class LlamaLibrary
{
    /// <summary>ggml's base library (log, backend registry, tensors): libllama and libggml depend on it by this name.</summary>
    private const string GgmlBaseFileName = "libggml-base.so";

    private static readonly Lock Gate = new();
    private static LlamaRuntimeInfo? _info;
    private static nint _llama, _ggml, _ggmlBase;

    /// <summary>True once the libraries are loaded and the backend initialized.</summary>
    public static bool IsInitialized => Volatile.Read(ref _info) is not null;

    /// <summary>Loads and initializes llama.cpp if not done yet; throws <see cref="RuntimeNotFoundException"/> with a numbered message when it cannot.</summary>
    public static LlamaRuntimeInfo EnsureInitialized()
    {
        if (Volatile.Read(ref _info) is { } ready) return ready;
        lock (Gate)
        {
            if (_info is not null) return _info;
            var llama = NativeLibraryResolver.LoadShared(NativeLibraries.LlamaCpp);
            // ggml comes from libllama's own folder: a second search could pick another copy of a different build.
            var dir = llama.Directory;
            _ggmlBase = LoadBeside(dir, [GgmlBaseFileName]);
            _ggml = LoadBeside(dir, NativeLibraries.Ggml.FileNames);
            _llama = llama.Handle;
            CheckExports(llama, typeof(LlamaNative));
            NativeLibrary.SetDllImportResolver(typeof(LlamaLibrary).Assembly, Resolve);

            LlamaLog.Install();
            // With a null folder ggml searches the executable's folder, which is what a system-wide install needs.
            GgmlNative.ggml_backend_load_all_from_path(dir);
            LlamaNative.llama_backend_init();

            var devices = new List<string>();
            for (nuint i = 0; i < GgmlNative.ggml_backend_dev_count(); i++)
            {
                var dev = GgmlNative.ggml_backend_dev_get(i);
                devices.Add($"{Str(GgmlNative.ggml_backend_dev_name(dev))}: {Str(GgmlNative.ggml_backend_dev_description(dev))}");
            }
            if (devices.Count == 0)
                throw new RuntimeNotFoundException(NativeLibraries.LoadFailedCode,
                    $"{NativeLibraries.LoadFailedCode}: llama.cpp loaded from {llama.Path} but found no compute backend: no libggml-cpu-*.so " +
                    $"beside it suits this CPU. Run `make runtimes` to restore the complete set of libraries.", [dir ?? llama.Path]);

            var (variant, variantPath) = FindLoadedCpuVariant();
            _info = new LlamaRuntimeInfo(dir, llama.Path, llama.Source, Str(LlamaNative.llama_version()), Str(GgmlNative.ggml_version()), Str(GgmlNative.ggml_commit()),
                variant, variantPath, devices, Str(LlamaNative.llama_print_system_info()).Trim());
            return _info;
        }
    }

    private static nint Resolve(string name, Assembly assembly, DllImportSearchPath? searchPath) => name switch
    {
        LlamaNative.LibLlama => _llama,
        LlamaNative.LibGgml => _ggml,
        LlamaNative.LibGgmlBase => _ggmlBase,
        _ => 0,
    };

    private static nint LoadBeside(string? dir, IReadOnlyList<string> names)
    {
        foreach (var name in names)
        {
            if (dir is null)
            {
                if (NativeLibrary.TryLoad(name, out var h)) return h;
                continue;
            }
            var path = Path.Combine(dir, name);
            if (!File.Exists(path)) continue;
            try
            {
                return NativeLibrary.Load(path);
            }
            catch (Exception e) when (e is DllNotFoundException or BadImageFormatException)
            {
                throw new RuntimeNotFoundException(NativeLibraries.LoadFailedCode,
                    $"{NativeLibraries.LoadFailedCode}: {path} could not be loaded ({e.Message.ReplaceLineEndings(" ").Trim()}). Run `make runtimes`.", [path], e);
            }
        }
        var where = dir ?? "the system library path";
        throw new RuntimeNotFoundException(NativeLibraries.Ggml.Code,
            $"{NativeLibraries.Ggml.Code}: libllama was found but {string.Join(" or ", names)} is missing from {where}; the llama.cpp runtime is incomplete. " +
            "Run `make runtimes`, or set EDGEQUANT_RUNTIMES to a folder holding the whole llama.cpp library set.", [where]);
    }

    /// <summary>Checks every entry point this binding imports up front, so a different llama.cpp build fails with EQ-RT-006 at load, not mid-run.</summary>
    private static void CheckExports(LoadedNativeLibrary library, Type bindings)
    {
        foreach (var m in bindings.GetMethods(BindingFlags.Public | BindingFlags.Static | BindingFlags.DeclaredOnly))
            if (m.Name.StartsWith("llama_", StringComparison.Ordinal)) library.GetExport(m.Name);
    }

    /// <summary>ggml picks the best <c>libggml-cpu-&lt;variant&gt;.so</c> for this CPU at run time; the process map says which.</summary>
    private static (string? Variant, string? Path) FindLoadedCpuVariant()
    {
        const string maps = "/proc/self/maps";
        if (!File.Exists(maps)) return (null, null);
        foreach (var line in File.ReadLines(maps))
        {
            var slash = line.IndexOf('/');
            if (slash < 0) continue;
            var path = line[slash..];
            var file = System.IO.Path.GetFileName(path);
            if (file.StartsWith("libggml-cpu-", StringComparison.Ordinal) && file.EndsWith(".so", StringComparison.Ordinal))
                return (file["libggml-cpu-".Length..^".so".Length], path);
        }
        return (null, null);
    }

    internal static string Str(nint utf8) => utf8 == 0 ? "" : Marshal.PtrToStringUTF8(utf8) ?? "";
}
