using System.Diagnostics;

namespace EdgeQuant.Cli.Tests.Infrastructure;

/// <summary>Runs the real <c>edgequant</c> in a child process: <c>dotnet edgequant.dll ARGS</c>.</summary>
public static class CliProcess
{
    /// <summary>
    /// The CLI project is referenced by the tests, so its edgequant.dll (with its runtimeconfig) is copied next to
    /// the test assembly.
    /// </summary>
    public static string DllPath
    {
        get
        {
            var p = Path.Combine(AppContext.BaseDirectory, "edgequant.dll");
            if (!File.Exists(p)) throw new FileNotFoundException($"edgequant.dll not found beside the tests at {p}", p);
            return p;
        }
    }

    public static CliRunner.Result Run(IReadOnlyList<string> args, IReadOnlyDictionary<string, string>? environment = null, TimeSpan? timeout = null)
    {
        var psi = new ProcessStartInfo(DotnetHost())
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        psi.ArgumentList.Add(DllPath);
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment.Remove("EDGEQUANT_DEBUG");
        if (environment is not null)
            foreach (var (k, v) in environment) psi.Environment[k] = v;
        using var process = Process.Start(psi) ?? throw new InvalidOperationException("could not start dotnet");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(timeout ?? TimeSpan.FromSeconds(60)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"edgequant {string.Join(' ', args)} did not finish");
        }
        process.WaitForExit();
        return new CliRunner.Result(process.ExitCode, stdout.Result.Replace("\r\n", "\n"), stderr.Result.Replace("\r\n", "\n"));
    }

    public static CliRunner.Result Run(params string[] args) => Run((IReadOnlyList<string>)args);

    /// <summary>The dotnet host running the tests (DOTNET_HOST_PATH under dotnet test), else dotnet on PATH.</summary>
    private static string DotnetHost() =>
        Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host : "dotnet";
}
