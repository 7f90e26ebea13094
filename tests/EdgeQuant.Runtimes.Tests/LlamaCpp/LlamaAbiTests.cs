using System.Diagnostics;
using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.RegularExpressions;
using EdgeQuant.Runtimes.LlamaCpp.Native;
using EdgeQuant.Testing;

namespace EdgeQuant.Runtimes.Tests.LlamaCpp;

/// <summary>
/// One ABI check per mirrored struct: a C program compiled against llama.h of the pinned bundle prints sizeof and the
/// offsetof of every field the C# mirror declares (the C# field names are the C ones, so the program is generated
/// from the mirror); the test compares them with <see cref="Marshal.SizeOf(Type)"/>, <see cref="Unsafe.SizeOf{T}"/>
/// and <see cref="Marshal.OffsetOf(Type, string)"/>. A field the mirror misspells fails to compile; one it misplaces
/// or mistypes (C bool as 4 bytes, int for size_t) shows as an offset or size difference.
/// </summary>
public sealed partial class LlamaAbiTests
{
    private static readonly Type[] Mirrors = typeof(llama_batch).Assembly.GetTypes()
        .Where(t => t.Namespace == typeof(llama_batch).Namespace && t.IsValueType && !t.IsEnum && !t.IsNested)
        .OrderBy(t => t.Name, StringComparer.Ordinal)
        .ToArray();

    private static readonly Lazy<Dictionary<string, long>> CLayout = new(CompileAndRunProbe);

    public static TheoryData<string> StructNames()
    {
        var data = new TheoryData<string>();
        foreach (var t in Mirrors) data.Add(t.Name);
        return data;
    }

    [LlamaHeaderTheory]
    [MemberData(nameof(StructNames))]
    public void Struct_matches_llama_h(string name)
    {
        var type = Mirrors.Single(t => t.Name == name);
        var c = CLayout.Value;
        long cSize = c[$"{name}"];
        Assert.Equal(cSize, Marshal.SizeOf(type));
        Assert.Equal(cSize, ManagedSize(type));
        foreach (var field in Fields(type))
        {
            long expected = c[$"{name}.{field.Name}"];
            Assert.True(expected == (long)Marshal.OffsetOf(type, field.Name),
                $"{name}.{field.Name}: offsetof in C is {expected}, the mirror has {Marshal.OffsetOf(type, field.Name)}");
        }
    }

    [LlamaHeaderFact]
    public void Every_struct_of_llama_h_is_mirrored()
    {
        var header = File.ReadAllText(Path.Combine(HeaderDirectories().Include, "llama.h"));
        var declared = StructDefinition().Matches(header).Select(m => m.Groups[1].Value).Distinct().ToList();
        Assert.NotEmpty(declared);
        var mirrored = Mirrors.Select(t => t.Name).ToHashSet();
        var missing = declared.Where(d => !mirrored.Contains(d)).ToList();
        Assert.True(missing.Count == 0, $"llama.h structs without a mirror: {string.Join(", ", missing)}");
    }

    [GeneratedRegex(@"^\s*(?:typedef\s+)?struct\s+(llama_\w+)\s*\{", RegexOptions.Multiline)]
    private static partial Regex StructDefinition();

    private static IEnumerable<FieldInfo> Fields(Type t) =>
        t.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic);

    private static long ManagedSize(Type t) =>
        (int)typeof(Unsafe).GetMethod(nameof(Unsafe.SizeOf))!.MakeGenericMethod(t).Invoke(null, null)!;

    /// <summary>The bundle's source root: <c>.cache/llama.cpp-src</c> laid out by tools/fetch-runtimes.sh, or EDGEQUANT_LLAMA_SRC.</summary>
    internal static string SourceRoot =>
        Environment.GetEnvironmentVariable("EDGEQUANT_LLAMA_SRC") is { Length: > 0 } env
            ? env
            : Path.Combine(SharedData.RepoRoot, ".cache", "llama.cpp-src");

    private static (string Include, string GgmlInclude) HeaderDirectories()
    {
        var root = SourceRoot;
        var include = Path.Combine(root, "include");
        if (!File.Exists(Path.Combine(include, "llama.h")))
            throw new FileNotFoundException($"llama.h of the pinned bundle not found under {root}: run `make runtimes` (or set EDGEQUANT_LLAMA_SRC)");
        return (include, Path.Combine(root, "ggml", "include"));
    }

    private static Dictionary<string, long> CompileAndRunProbe()
    {
        var (include, ggmlInclude) = HeaderDirectories();
        var src = new StringBuilder("#include <stdio.h>\n#include <stddef.h>\n#include \"llama.h\"\nint main(void) {\n");
        foreach (var t in Mirrors)
        {
            src.Append($"  printf(\"{t.Name} %zu\\n\", sizeof(struct {t.Name}));\n");
            foreach (var f in Fields(t))
                src.Append($"  printf(\"{t.Name}.{f.Name} %zu\\n\", offsetof(struct {t.Name}, {f.Name}));\n");
        }
        src.Append("  return 0;\n}\n");

        using var dir = new TempDir("eq-abi");
        var cFile = dir.File("probe.c");
        var exe = dir.File("probe");
        File.WriteAllText(cFile, src.ToString());
        Run("gcc", ["-std=c11", "-I", include, "-I", ggmlInclude, cFile, "-o", exe], out _);
        Run(exe, [], out var output);
        var result = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var line in output.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var parts = line.Split(' ');
            result[parts[0]] = long.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture);
        }
        return result;
    }

    private static void Run(string file, string[] args, out string stdout)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {file}");
        var err = p.StandardError.ReadToEndAsync();
        stdout = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"{file} exited with {p.ExitCode}: {err.Result}");
    }
}

/// <summary>Skips (outside CI) when llama.h of the bundle is not laid out; under CI=true the test runs and fails instead.</summary>
internal static class LlamaHeaderAvailability
{
    public static string? SkipReason =>
        SharedData.IsCi || File.Exists(Path.Combine(LlamaAbiTests.SourceRoot, "include", "llama.h"))
            ? null
            : $"llama.h not found under {LlamaAbiTests.SourceRoot}: run `make runtimes` (under CI=true this fails instead)";
}

public sealed class LlamaHeaderFactAttribute : FactAttribute
{
    public LlamaHeaderFactAttribute() => Skip = LlamaHeaderAvailability.SkipReason;
}

public sealed class LlamaHeaderTheoryAttribute : TheoryAttribute
{
    public LlamaHeaderTheoryAttribute() => Skip = LlamaHeaderAvailability.SkipReason;
}
