namespace EdgeQuant.Testing;

/// <summary>A fresh temporary folder removed on dispose.</summary>
public sealed class TempDir : IDisposable
{
    public TempDir(string prefix = "eqtest")
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"{prefix}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
