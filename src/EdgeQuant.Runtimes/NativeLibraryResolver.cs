using System.Collections.Concurrent;
using System.Runtime.InteropServices;

namespace EdgeQuant.Runtimes;

/// <summary>
/// The one policy for finding native libraries, in this order:
/// <list type="number">
/// <item><c>EDGEQUANT_RUNTIMES</c>, when set: a folder holding the libraries, or a runtimes root holding
/// <c>&lt;rid&gt;/native/</c>. An explicit setting is final: nothing else is searched, so a wrong setting is
/// reported instead of silently shadowed by another copy.</item>
/// <item><c>runtimes/&lt;rid&gt;/native/</c> next to the application (<see cref="AppContext.BaseDirectory"/>) or in any
/// parent folder up to the repository root (the folder holding <c>EdgeQuant.sln</c>), then the same walk from the
/// working directory (builds with an artifacts path outside the tree run from there).</item>
/// <item>The system loader's search by file name (LD_LIBRARY_PATH, the ld.so cache).</item>
/// </list>
/// A miss throws <see cref="RuntimeNotFoundException"/> with a numbered message listing every place tried.
/// </summary>
public sealed class NativeLibraryResolver
{
    public const string EnvironmentVariable = "EDGEQUANT_RUNTIMES";
    private const string RepoMarker = "EdgeQuant.sln";

    private static readonly ConcurrentDictionary<string, Lazy<LoadedNativeLibrary>> DefaultCache = new();

    private readonly string? _environmentValue;
    private readonly IReadOnlyList<string> _probeRoots;
    private readonly bool _searchSystem;

    /// <param name="environmentValue">The value of <c>EDGEQUANT_RUNTIMES</c> (null or empty: unset).</param>
    /// <param name="probeRoots">Folders whose ancestors are searched for <c>runtimes/&lt;rid&gt;/native</c>, in order.</param>
    /// <param name="rid">The runtime identifier whose folders are searched (usually <see cref="RuntimeIdentifiers.Current"/>); null: an unsupported platform.</param>
    /// <param name="searchSystem">Whether to fall back to the system loader's search.</param>
    public NativeLibraryResolver(string? environmentValue, IReadOnlyList<string> probeRoots, string? rid, bool searchSystem = true)
    {
        _environmentValue = string.IsNullOrWhiteSpace(environmentValue) ? null : environmentValue;
        _probeRoots = probeRoots;
        Rid = rid;
        _searchSystem = searchSystem;
    }

    /// <summary>The resolver for this process: the environment variable, the app folder, the working folder, the system.</summary>
    public static NativeLibraryResolver Default =>
        new(Environment.GetEnvironmentVariable(EnvironmentVariable), [AppContext.BaseDirectory, Environment.CurrentDirectory], RuntimeIdentifiers.Current);

    /// <summary>The RID whose <c>runtimes/&lt;rid&gt;/native</c> folders are searched; null on an unsupported platform.</summary>
    public string? Rid { get; }

    /// <summary>
    /// Loads a library through <see cref="Default"/> once per process and returns the same instance afterwards
    /// (the OS loader keeps one copy per path anyway; caching keeps the lookup and its I/O off hot paths).
    /// </summary>
    public static LoadedNativeLibrary LoadShared(NativeLibraryInfo library)
    {
        var lazy = DefaultCache.GetOrAdd(library.Code, _ => new Lazy<LoadedNativeLibrary>(() => Default.Load(library)));
        try
        {
            return lazy.Value;
        }
        catch (RuntimeNotFoundException)
        {
            // Do not cache a miss: the user may run `make runtimes` or set the variable and retry in-process.
            DefaultCache.TryRemove(new KeyValuePair<string, Lazy<LoadedNativeLibrary>>(library.Code, lazy));
            throw;
        }
    }

    /// <summary>The folders searched, in order (the system search is not listed; it has no folder).</summary>
    public IReadOnlyList<string> CandidateDirectories()
    {
        var dirs = new List<string>();
        if (_environmentValue is { } env)
        {
            var full = Path.GetFullPath(env);
            if (Rid is not null) dirs.Add(Path.Combine(full, Rid, "native"));
            dirs.Add(full);
            return dirs;
        }
        if (Rid is null) return dirs;
        foreach (var root in _probeRoots)
        {
            for (var dir = new DirectoryInfo(Path.GetFullPath(root)); dir is not null; dir = dir.Parent)
            {
                var candidate = Path.Combine(dir.FullName, "runtimes", Rid, "native");
                if (!dirs.Contains(candidate)) dirs.Add(candidate);
                if (File.Exists(Path.Combine(dir.FullName, RepoMarker))) break;
            }
        }
        return dirs;
    }

    /// <summary>Like <see cref="Load"/>, but reports a miss through <paramref name="error"/> (for listings such as <c>edgequant runtimes</c>).</summary>
    public LoadedNativeLibrary? TryLoad(NativeLibraryInfo library, out RuntimeNotFoundException? error)
    {
        try
        {
            error = null;
            return Load(library);
        }
        catch (RuntimeNotFoundException e)
        {
            error = e;
            return null;
        }
    }

    /// <summary>Finds and loads <paramref name="library"/>, or throws the numbered <see cref="RuntimeNotFoundException"/>.</summary>
    public LoadedNativeLibrary Load(NativeLibraryInfo library)
    {
        var searched = new List<string>();
        var source = _environmentValue is null ? NativeLibrarySource.Bundled : NativeLibrarySource.EnvironmentVariable;
        foreach (var dir in CandidateDirectories())
        {
            searched.Add(dir);
            foreach (var name in library.FileNames)
            {
                var path = Path.Combine(dir, name);
                if (File.Exists(path)) return LoadPath(library, path, source, searched);
            }
        }

        bool systemSearched = _environmentValue is null && _searchSystem;
        if (systemSearched)
        {
            searched.Add("the system library path");
            foreach (var name in library.FileNames)
            {
                if (NativeLibrary.TryLoad(name, out var handle))
                    return new LoadedNativeLibrary(library, handle, name, NativeLibrarySource.System);
            }
        }

        throw NotFound(library, searched);
    }

    private LoadedNativeLibrary LoadPath(NativeLibraryInfo library, string path, NativeLibrarySource source, List<string> searched)
    {
        try
        {
            return new LoadedNativeLibrary(library, NativeLibrary.Load(path), path, source);
        }
        catch (Exception e) when (e is DllNotFoundException or BadImageFormatException)
        {
            // The loader's text (dlerror) says why: wrong architecture, a missing dependency, a truncated file.
            throw new RuntimeNotFoundException(NativeLibraries.LoadFailedCode,
                $"{NativeLibraries.LoadFailedCode}: {library.DisplayName} at {path} could not be loaded ({OneLine(e.Message)}). " +
                $"Run `make runtimes` to lay out the pinned libraries for {Rid ?? RuntimeIdentifiers.DescribeCurrent()}, " +
                $"or set {EnvironmentVariable} to a folder holding a working {library.PrimaryFileName}.",
                searched, e);
        }
    }

    private RuntimeNotFoundException NotFound(NativeLibraryInfo library, List<string> searched)
    {
        if (Rid is null && _environmentValue is null)
        {
            return new RuntimeNotFoundException(NativeLibraries.UnsupportedPlatformCode,
                $"{NativeLibraries.UnsupportedPlatformCode}: {library.DisplayName} not found, and EdgeQuant bundles no native runtimes for " +
                $"{RuntimeIdentifiers.DescribeCurrent()} (supported: {string.Join(", ", RuntimeIdentifiers.Supported)}). " +
                $"Set {EnvironmentVariable} to a folder holding {library.PrimaryFileName} built for this platform.",
                searched);
        }
        var where = searched.Count == 0 ? "nowhere" : string.Join(", ", searched);
        var how = _environmentValue is null
            ? $"Set {EnvironmentVariable} to a folder holding {library.PrimaryFileName}, or run `make runtimes`."
            : $"{EnvironmentVariable} is set to '{_environmentValue}', which does not hold {library.PrimaryFileName}: point it at a folder that does, or unset it and run `make runtimes`.";
        return new RuntimeNotFoundException(library.Code, $"{library.Code}: {library.DisplayName} not found (looked in: {where}). {how}", searched);
    }

    private static string OneLine(string s) => s.ReplaceLineEndings(" ").Trim();
}
