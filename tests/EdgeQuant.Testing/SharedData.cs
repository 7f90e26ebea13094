using Xunit;

namespace EdgeQuant.Testing;

/// <summary>
/// Finds the shared, never-committed test data (../shared/data beside the project root, or EDGEQUANT_SHARED_DATA).
/// Absent data skips a test with a reason, except under CI=true where it must fail instead.
/// </summary>
public static class SharedData
{
    public static bool IsCi => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    /// <summary>The project root: the nearest ancestor of the test assembly holding EdgeQuant.sln.</summary>
    public static string RepoRoot { get; } = FindRepoRoot();

    public static string Root =>
        Environment.GetEnvironmentVariable("EDGEQUANT_SHARED_DATA") is { Length: > 0 } env
            ? Path.GetFullPath(env)
            : Path.GetFullPath(Path.Combine(RepoRoot, "..", "shared", "data"));

    /// <summary>Full path of a file under the shared data folder (it may not exist).</summary>
    public static string PathOf(string relative) => Path.Combine(Root, relative);

    /// <summary>Path of a shared file, failing the test with a clear message when it is missing.</summary>
    public static string Require(string relative)
    {
        var p = PathOf(relative);
        if (!File.Exists(p) && !Directory.Exists(p))
            throw new FileNotFoundException($"shared test data missing: {p} (set EDGEQUANT_SHARED_DATA to the shared/data folder)", p);
        return p;
    }

    /// <summary>A skip reason when any of the files is missing and we are not in CI; null otherwise.</summary>
    internal static string? SkipReason(string[] relatives)
    {
        if (IsCi) return null;
        foreach (var r in relatives)
        {
            var p = PathOf(r);
            if (!File.Exists(p) && !Directory.Exists(p))
                return $"shared test data not found: {p} (set EDGEQUANT_SHARED_DATA; under CI=true this fails instead)";
        }
        return null;
    }

    private static string FindRepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "EdgeQuant.sln"))) dir = dir.Parent;
        if (dir is not null) return dir.FullName;
        var baked = typeof(SharedData).Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyMetadataAttribute), false)
            .Cast<System.Reflection.AssemblyMetadataAttribute>().FirstOrDefault(a => a.Key == "EdgeQuantRepoRoot")?.Value;
        return baked ?? Directory.GetCurrentDirectory();
    }
}

/// <summary>A fact that needs shared data files: skipped with a reason when they are absent, failed under CI=true.</summary>
public sealed class SharedDataFactAttribute : FactAttribute
{
    public SharedDataFactAttribute(params string[] files)
    {
        if (SharedData.SkipReason(files) is { } reason) Skip = reason;
    }
}

/// <summary>A theory that needs shared data files (see <see cref="SharedDataFactAttribute"/>).</summary>
public sealed class SharedDataTheoryAttribute : TheoryAttribute
{
    public SharedDataTheoryAttribute(params string[] files)
    {
        if (SharedData.SkipReason(files) is { } reason) Skip = reason;
    }
}
