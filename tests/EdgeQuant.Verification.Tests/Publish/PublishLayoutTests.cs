using EdgeQuant.Runtimes;
using EdgeQuant.Testing;
using EdgeQuant.Verification.Tests.Latency;

namespace EdgeQuant.Verification.Tests.Publish;

/// <summary>
/// The folder <c>tools/publish-runner.sh</c> makes (an executable with <c>runtimes/&lt;rid&gt;/native</c> beside it)
/// as the native resolution sees it: the library comes from the app's own folder, chosen by the RID. Running the
/// publish itself takes minutes, so it is checked by hand (docs/publish-runner.md has the figures); this test
/// rebuilds only the layout, with links to the repository's pinned libraries.
/// </summary>
public sealed class PublishLayoutTests
{
    [LatencyLlamaCppFact]
    public void The_runner_folder_supplies_the_libraries_for_its_own_rid_only()
    {
        LatencyTestRuntimes.Configure();
        var repoNative = Path.Combine(SharedData.RepoRoot, "runtimes", RuntimeIdentifiers.LinuxX64, "native");
        Assert.True(File.Exists(Path.Combine(repoNative, "libllama.so")), $"no pinned runtimes in {repoNative}; run make runtimes");
        using var dir = new TempDir("eq-runner-layout");
        var app = Path.Combine(dir.Path, "edgequant-linux-x64");
        var x64 = Directory.CreateDirectory(Path.Combine(app, "runtimes", RuntimeIdentifiers.LinuxX64, "native")).FullName;
        // Links, not copies: the OS loader then sees the very files this process may already have loaded.
        foreach (var f in Directory.GetFiles(repoNative, "*.so*"))
            File.CreateSymbolicLink(Path.Combine(x64, Path.GetFileName(f)), Path.GetFullPath(f));
        // An arm64 folder beside it holding something that is no x64 library.
        var arm = Directory.CreateDirectory(Path.Combine(app, "runtimes", RuntimeIdentifiers.LinuxArm64, "native")).FullName;
        File.WriteAllText(Path.Combine(arm, "libllama.so"), "not an ELF file");

        var onX64 = new NativeLibraryResolver(environmentValue: null, [app], RuntimeIdentifiers.LinuxX64, searchSystem: false);
        Assert.Equal(Path.Combine(app, "runtimes", "linux-x64", "native"), onX64.CandidateDirectories()[0]);
        var loaded = onX64.Load(NativeLibraries.LlamaCpp);
        Assert.Equal(Path.Combine(x64, "libllama.so"), loaded.Path);
        Assert.Equal(NativeLibrarySource.Bundled, loaded.Source);

        // On an arm64 board the same resolver looks in runtimes/linux-arm64/native and nowhere near the x64 folder.
        var onArm = new NativeLibraryResolver(environmentValue: null, [app], RuntimeIdentifiers.LinuxArm64, searchSystem: false);
        Assert.Equal(Path.Combine(app, "runtimes", "linux-arm64", "native"), onArm.CandidateDirectories()[0]);
        Assert.DoesNotContain(onArm.CandidateDirectories(), d => d.EndsWith(Path.Combine("runtimes", "linux-x64", "native"), StringComparison.Ordinal));
        var e = Assert.Throws<RuntimeNotFoundException>(() => onArm.Load(NativeLibraries.LlamaCpp));
        Assert.Contains(Path.Combine(arm, "libllama.so"), e.Message);
    }
}
