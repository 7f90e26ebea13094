using System.Runtime.InteropServices;
using EdgeQuant.Core.Errors;
using EdgeQuant.Testing;

namespace EdgeQuant.Runtimes.Tests.OnnxRuntime;

/// <summary>The native library policy: env var, bundled runtimes/&lt;rid&gt;/native, system; numbered errors.</summary>
public sealed class RuntimeResolutionTests
{
    [Fact]
    public void Rid_detection_covers_the_shipped_platforms_only()
    {
        Assert.Equal("linux-x64", RuntimeIdentifiers.Detect(true, Architecture.X64));
        Assert.Equal("linux-arm64", RuntimeIdentifiers.Detect(true, Architecture.Arm64));
        Assert.Null(RuntimeIdentifiers.Detect(false, Architecture.X64));
        Assert.Null(RuntimeIdentifiers.Detect(true, Architecture.X86));
        Assert.Equal(RuntimeIdentifiers.Supported, new[] { "linux-x64", "linux-arm64" });
    }

    [Fact]
    public void An_empty_runtimes_folder_gives_the_numbered_actionable_message()
    {
        using var empty = new TempDir();
        var resolver = new NativeLibraryResolver(empty.Path, [], "linux-x64");
        var e = Assert.Throws<RuntimeNotFoundException>(() => resolver.Load(NativeLibraries.OnnxRuntime));
        Assert.Equal("EQ-RT-001", e.Code);
        Assert.StartsWith("EQ-RT-001: ONNX Runtime not found (looked in: ", e.Message);
        Assert.Contains(empty.Path, e.Message);
        Assert.Contains("EDGEQUANT_RUNTIMES", e.Message);
        Assert.Contains("libonnxruntime.so.1", e.Message);
        Assert.IsAssignableFrom<InternalFailureException>(e);
        Assert.Equal(ExitCodes.InternalFailure, e.ExitCode);
        // An explicit setting is final: the env folder (and its <rid>/native) only, never the bundled or system copy.
        Assert.Equal([Path.Combine(empty.Path, "linux-x64", "native"), empty.Path], e.Searched);

        var llama = Assert.Throws<RuntimeNotFoundException>(() => resolver.Load(NativeLibraries.LlamaCpp));
        Assert.StartsWith("EQ-RT-002: llama.cpp not found", llama.Message);

        Assert.Null(resolver.TryLoad(NativeLibraries.Ggml, out var ggml));
        Assert.Equal("EQ-RT-003", ggml!.Code);
    }

    [Fact]
    public void Without_the_variable_the_bundled_walk_stops_at_the_repository_root_and_says_run_make_runtimes()
    {
        using var repo = new TempDir();
        File.WriteAllText(repo.File("EdgeQuant.sln"), "");
        var app = Directory.CreateDirectory(Path.Combine(repo.Path, "src", "app", "bin")).FullName;
        var resolver = new NativeLibraryResolver(null, [app], "linux-x64", searchSystem: false);
        var dirs = resolver.CandidateDirectories();
        Assert.Equal(Path.Combine(app, "runtimes", "linux-x64", "native"), dirs[0]);
        Assert.Equal(Path.Combine(repo.Path, "runtimes", "linux-x64", "native"), dirs[^1]);
        var e = Assert.Throws<RuntimeNotFoundException>(() => resolver.Load(NativeLibraries.OnnxRuntime));
        Assert.Contains("run `make runtimes`", e.Message);
    }

    [Fact]
    public void A_library_the_loader_rejects_is_reported_with_the_loaders_reason()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("libonnxruntime.so.1"), "not an ELF file");
        var resolver = new NativeLibraryResolver(dir.Path, [], "linux-x64");
        var e = Assert.Throws<RuntimeNotFoundException>(() => resolver.Load(NativeLibraries.OnnxRuntime));
        Assert.Equal("EQ-RT-005", e.Code);
        Assert.Contains(dir.File("libonnxruntime.so.1"), e.Message);
        Assert.IsNotType<DllNotFoundException>(e);
        Assert.IsType<DllNotFoundException>(e.InnerException);
    }

    [Fact]
    public void An_unsupported_platform_gets_its_own_number()
    {
        var resolver = new NativeLibraryResolver(null, [AppContext.BaseDirectory], rid: null, searchSystem: false);
        var e = Assert.Throws<RuntimeNotFoundException>(() => resolver.Load(NativeLibraries.OnnxRuntime));
        Assert.Equal("EQ-RT-004", e.Code);
        Assert.Contains("linux-x64, linux-arm64", e.Message);
    }

    [OnnxRuntimeFact]
    public void The_bundled_layout_is_found_next_to_the_app_and_through_the_variable()
    {
        var real = RuntimeAvailability.Require(NativeLibraries.OnnxRuntime);
        var rid = RuntimeIdentifiers.Current!;
        Assert.NotNull(real.Directory);
        using var tree = new TempDir();
        File.WriteAllText(tree.File("EdgeQuant.sln"), "");
        var native = Directory.CreateDirectory(Path.Combine(tree.Path, "runtimes", rid, "native")).FullName;
        File.CreateSymbolicLink(Path.Combine(native, "libonnxruntime.so.1"), real.Path);
        var app = Directory.CreateDirectory(Path.Combine(tree.Path, "out", "bin")).FullName;

        var bundled = new NativeLibraryResolver(null, [app], rid, searchSystem: false).Load(NativeLibraries.OnnxRuntime);
        Assert.Equal(NativeLibrarySource.Bundled, bundled.Source);
        Assert.Equal(Path.Combine(native, "libonnxruntime.so.1"), bundled.Path);
        Assert.NotEqual(IntPtr.Zero, bundled.GetExport("OrtGetApiBase"));
        var missing = Assert.Throws<RuntimeNotFoundException>(() => bundled.GetExport("NoSuchExport"));
        Assert.Equal("EQ-RT-006", missing.Code);

        // The variable may name the runtimes root (holding <rid>/native) or the library folder itself.
        foreach (var env in new[] { Path.Combine(tree.Path, "runtimes"), native })
        {
            var found = new NativeLibraryResolver(env, [], rid).Load(NativeLibraries.OnnxRuntime);
            Assert.Equal(NativeLibrarySource.EnvironmentVariable, found.Source);
            Assert.Equal(Path.Combine(native, "libonnxruntime.so.1"), found.Path);
        }
    }
}
