using System.Runtime.InteropServices;

namespace EdgeQuant.Runtimes;

/// <summary>Where a library was found by <see cref="NativeLibraryResolver"/>.</summary>
public enum NativeLibrarySource
{
    /// <summary>The folder named by <c>EDGEQUANT_RUNTIMES</c>.</summary>
    EnvironmentVariable,
    /// <summary>A <c>runtimes/&lt;rid&gt;/native</c> folder next to the application or in a parent folder.</summary>
    Bundled,
    /// <summary>The system loader's own search (LD_LIBRARY_PATH, the ld.so cache).</summary>
    System,
}

/// <summary>
/// A native library loaded into the process. The OS handle is never freed: bindings keep function pointers into
/// it for the life of the process, as the runtimes' own language bindings do.
/// </summary>
public sealed class LoadedNativeLibrary
{
    internal LoadedNativeLibrary(NativeLibraryInfo info, IntPtr handle, string path, NativeLibrarySource source)
    {
        Info = info;
        Handle = handle;
        Path = path;
        Source = source;
    }

    public NativeLibraryInfo Info { get; }

    /// <summary>The OS module handle (dlopen's).</summary>
    public IntPtr Handle { get; }

    /// <summary>The full path loaded, or the bare file name when the system loader found it.</summary>
    public string Path { get; }

    /// <summary>The folder holding the library, or null when the system loader found it by name.</summary>
    public string? Directory => Source == NativeLibrarySource.System ? null : System.IO.Path.GetDirectoryName(Path);

    public NativeLibrarySource Source { get; }

    /// <summary>The address of an exported function; EQ-RT-006 when the library lacks it (a version other than the pinned one).</summary>
    public IntPtr GetExport(string name)
    {
        if (NativeLibrary.TryGetExport(Handle, name, out var address)) return address;
        throw new RuntimeNotFoundException(NativeLibraries.MissingExportCode,
            $"{NativeLibraries.MissingExportCode}: {Info.DisplayName} at {Path} does not export {name}; it is not the pinned version. " +
            "Run `make runtimes`, or set EDGEQUANT_RUNTIMES to a folder holding the pinned libraries.",
            [Path]);
    }

    /// <summary>The address of an export, or zero when absent (for optional entry points).</summary>
    public IntPtr TryGetExport(string name) => NativeLibrary.TryGetExport(Handle, name, out var address) ? address : IntPtr.Zero;

    public override string ToString() => $"{Info.DisplayName}: {Path} ({Source})";
}
