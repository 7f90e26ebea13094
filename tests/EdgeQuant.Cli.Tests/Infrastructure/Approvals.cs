using System.Runtime.CompilerServices;

namespace EdgeQuant.Cli.Tests.Infrastructure;

/// <summary>
/// Approved-file snapshots: <c>Approved/&lt;name&gt;.approved.txt</c> in the source tree is the expected text. On a
/// mismatch the actual text is written beside it as <c>.received.txt</c> for review; a missing approved file fails
/// (it is created as <c>.received.txt</c>; rename it to approve). Set EDGEQUANT_APPROVE=1 to accept all received output.
/// </summary>
public static class Approvals
{
    public static void Verify(string name, string actual, [CallerFilePath] string callerFile = "")
    {
        var folder = Path.Combine(FindProjectFolder(callerFile), "Approved");
        Directory.CreateDirectory(folder);
        var approvedPath = Path.Combine(folder, name + ".approved.txt");
        var receivedPath = Path.Combine(folder, name + ".received.txt");
        var normalized = Normalize(actual);
        if (Environment.GetEnvironmentVariable("EDGEQUANT_APPROVE") == "1")
        {
            File.WriteAllText(approvedPath, normalized);
            return;
        }
        if (!File.Exists(approvedPath))
        {
            File.WriteAllText(receivedPath, normalized);
            Assert.Fail($"no approved snapshot {approvedPath}; the output was written to {receivedPath}");
        }
        var approved = Normalize(File.ReadAllText(approvedPath));
        if (approved != normalized)
        {
            File.WriteAllText(receivedPath, normalized);
            Assert.Equal(approved, normalized);
        }
        else if (File.Exists(receivedPath)) File.Delete(receivedPath);
    }

    /// <summary>Line endings and trailing spaces (help wrapping leaves some) are not part of the contract.</summary>
    public static string Normalize(string text) =>
        string.Join('\n', text.Replace("\r\n", "\n").Split('\n').Select(l => l.TrimEnd())).TrimEnd('\n') + "\n";

    /// <summary>The test project's source folder: the nearest ancestor of the calling source file with the .csproj.</summary>
    private static string FindProjectFolder(string callerFile)
    {
        for (var dir = Path.GetDirectoryName(callerFile); dir is not null; dir = Path.GetDirectoryName(dir))
            if (File.Exists(Path.Combine(dir, "EdgeQuant.Cli.Tests.csproj"))) return dir;
        throw new DirectoryNotFoundException($"no EdgeQuant.Cli.Tests.csproj above {callerFile}");
    }
}
