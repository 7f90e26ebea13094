using System.Diagnostics;

namespace EdgeQuant.Core.Tests.Kernels;

/// <summary>
/// Re-runs every kernel check in a child process with SIMD widths switched off, so the 256-bit, 128-bit and scalar
/// paths of the process-wide dispatch (elementwise drivers, RoPE, TensorPrimitives underneath) all execute. .NET 10
/// ignores the old DOTNET_EnableAVX512F switch (the knob is DOTNET_EnableAVX512 now), so both are set and the child
/// reports its accelerated widths, which the test asserts: a switch that silently stops working fails here.
/// </summary>
public class FeatureRunnerTests
{
    [Theory]
    [InlineData("DOTNET_EnableAVX512F=0 DOTNET_EnableAVX512=0", "V512=False")]
    [InlineData("DOTNET_EnableAVX2=0", "V512=False V256=False")]
    [InlineData("DOTNET_EnableHWIntrinsic=0", "V512=False V256=False V128=False")]
    public async Task Kernel_checks_pass_with_narrower_simd(string environment, string expectedFeatures)
    {
        string runner = Path.Combine(AppContext.BaseDirectory, "EdgeQuant.Kernels.FeatureRunner.dll");
        Assert.True(File.Exists(runner), $"feature runner not built next to the tests: {runner}");
        var start = new ProcessStartInfo(DotnetHost(), $"\"{runner}\"")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string pair in environment.Split(' '))
        {
            string[] kv = pair.Split('=');
            start.Environment[kv[0]] = kv[1];
        }
        using var process = Process.Start(start)!;
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        Task<string> stdout = process.StandardOutput.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(5));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"feature runner did not finish in 5 minutes under {environment}");
        }
        string output = await stdout + await stderr;
        string features = output.Split('\n').FirstOrDefault(l => l.StartsWith("features:", StringComparison.Ordinal)) ?? "";
        foreach (string flag in expectedFeatures.Split(' '))
            Assert.True(features.Contains(flag, StringComparison.Ordinal), $"expected {flag} under {environment}; runner said '{features}'");
        Assert.True(process.ExitCode == 0, $"kernel checks failed under {environment}:\n{output}");
    }

    /// <summary>The host running these tests (dotnet, or the testhost launched by it) so the child uses the same runtime.</summary>
    private static string DotnetHost()
    {
        string? root = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (!string.IsNullOrEmpty(root) && File.Exists(root)) return root;
        string? main = Environment.ProcessPath;
        if (main is not null && Path.GetFileNameWithoutExtension(main) == "dotnet") return main;
        return "dotnet";
    }
}
