using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;
using EdgeQuant.Core.Errors;

namespace EdgeQuant.Formats.IO;

/// <summary>
/// A read-only view of a whole file (memory-mapped), or of a byte array for tests. Every access is bounds-checked
/// against <see cref="Length"/>; tensors are handed out as spans over the mapping, never copied.
/// </summary>
public sealed unsafe class MappedFile : IDisposable
{
    private readonly MemoryMappedFile? _map;
    private readonly MemoryMappedViewAccessor? _view;
    private readonly GCHandle _pin;
    private byte* _base;

    private MappedFile(string path, MemoryMappedFile? map, MemoryMappedViewAccessor? view, byte* basePtr, long length, GCHandle pin)
    {
        Path = path;
        _map = map;
        _view = view;
        _base = basePtr;
        Length = length;
        _pin = pin;
    }

    /// <summary>The file's path as the user gave it (used in every error message).</summary>
    public string Path { get; }

    public long Length { get; }

    public static MappedFile Open(string path)
    {
        FileInfo info;
        try
        {
            info = new FileInfo(path);
            if (!info.Exists) throw new BadInputException($"{path}: file not found");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            throw new BadInputException($"{path}: cannot open: {e.Message}", e);
        }
        if (info.Length == 0) return new MappedFile(path, null, null, null, 0, default);
        try
        {
            var map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
            var view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            byte* p = null;
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
            p += view.PointerOffset;
            return new MappedFile(path, map, view, p, info.Length, default);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new BadInputException($"{path}: cannot map file: {e.Message}", e);
        }
    }

    /// <summary>Wraps bytes already in memory (tests, fuzzing, embedded data) with a display name for errors.</summary>
    public static MappedFile FromBytes(byte[] bytes, string displayName)
    {
        var pin = GCHandle.Alloc(bytes, GCHandleType.Pinned);
        return new MappedFile(displayName, null, null, (byte*)pin.AddrOfPinnedObject(), bytes.Length, pin);
    }

    /// <summary>True when [offset, offset+length) lies inside the file (overflow-safe).</summary>
    public bool Contains(long offset, long length) => offset >= 0 && length >= 0 && offset <= Length && length <= Length - offset;

    /// <summary>A span over [offset, offset+length); throws <see cref="FileFormatException"/> naming <paramref name="field"/> when it lies outside the file.</summary>
    public ReadOnlySpan<byte> Span(long offset, int length, string field)
    {
        if (!Contains(offset, length))
            throw new FileFormatException(Path, field, offset, $"needs {length} bytes but the file is {Length} bytes long");
        ObjectDisposedException.ThrowIf(_base == null && Length != 0, this);
        return new ReadOnlySpan<byte>(_base + offset, length);
    }

    /// <summary>Raw pointer to byte <paramref name="offset"/>, for kernels that stream over more than 2 GiB. Caller checks bounds with <see cref="Contains"/>.</summary>
    public byte* Pointer(long offset)
    {
        if (offset < 0 || offset > Length) throw new ArgumentOutOfRangeException(nameof(offset));
        return _base + offset;
    }

    public void Dispose()
    {
        if (_view is not null && _base != null) _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _base = null;
        _view?.Dispose();
        _map?.Dispose();
        if (_pin.IsAllocated) _pin.Free();
    }
}
