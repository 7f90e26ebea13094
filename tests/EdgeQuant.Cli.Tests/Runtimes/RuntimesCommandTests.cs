using System.Text.Json;
using EdgeQuant.Cli.Tests.Eval;
using EdgeQuant.Cli.Tests.Infrastructure;
using EdgeQuant.Testing;

namespace EdgeQuant.Cli.Tests.Runtimes;

public sealed class RuntimesCommandTests
{
    [LlamaCppFact]
    public void Lists_both_runtimes_with_paths_and_the_cpu_variant()
    {
        var r = CliRunner.Run("runtimes", "--json");
        Assert.True(r.ExitCode == 0, r.ToString());
        var runtimes = JsonDocument.Parse(r.StdOut).RootElement.GetProperty("runtimes").EnumerateArray().ToDictionary(e => e.GetProperty("name").GetString()!);
        var ort = runtimes["onnxruntime"];
        Assert.True(ort.GetProperty("available").GetBoolean());
        Assert.Equal("1.30.0", ort.GetProperty("version").GetString());
        Assert.True(File.Exists(ort.GetProperty("path").GetString()));
        var llama = runtimes["llama.cpp"];
        Assert.True(llama.GetProperty("available").GetBoolean());
        Assert.True(File.Exists(llama.GetProperty("path").GetString()));
        var variant = llama.GetProperty("cpu_variant").GetString();
        Assert.False(string.IsNullOrEmpty(variant));
        Assert.EndsWith($"libggml-cpu-{variant}.so", llama.GetProperty("cpu_variant_path").GetString());

        var table = CliRunner.Run("runtimes");
        Assert.Equal(0, table.ExitCode);
        Assert.Contains($"cpu variant {variant}", table.StdOut);
    }

    [Fact]
    public void Missing_runtimes_are_listed_with_numbered_reasons_and_exit_1()
    {
        using var dir = new TempDir();
        var r = CliProcess.Run(["runtimes", "--json"], new Dictionary<string, string> { ["EDGEQUANT_RUNTIMES"] = dir.Path });
        Assert.Equal(1, r.ExitCode);
        var runtimes = JsonDocument.Parse(r.StdOut).RootElement.GetProperty("runtimes").EnumerateArray().ToList();
        Assert.Equal(2, runtimes.Count);
        foreach (var e in runtimes)
        {
            Assert.False(e.GetProperty("available").GetBoolean());
            Assert.StartsWith("EQ-RT-00", e.GetProperty("error_code").GetString());
            Assert.Contains(dir.Path, e.GetProperty("error").GetString());
        }
    }
}
