using System.Diagnostics;
using System.Runtime.InteropServices;
using EdgeQuant.Cli.Tests.Infrastructure;
using EdgeQuant.Core.Errors;
using EdgeQuant.Testing;

namespace EdgeQuant.Cli.Tests.Framework;

/// <summary>A fact that needs Linux (named pipes, /proc, kill(2)).</summary>
public sealed class LinuxFactAttribute : FactAttribute
{
    public LinuxFactAttribute()
    {
        if (!OperatingSystem.IsLinux()) Skip = "needs Linux: mkfifo, /proc/<pid>/wchan and kill(2)";
    }
}

/// <summary>
/// Ctrl-C and SIGTERM on the real process. The command is made to block where cancellation cannot reach: MODEL is a
/// named pipe nobody writes to, so opening it waits forever. The test waits until the main thread is parked in that
/// open (Linux reports <c>wait_for_partner</c> in /proc), signals, and expects exit 130 with one stderr line.
/// </summary>
public partial class InterruptTests
{
    private const int SIGINT = 2, SIGTERM = 15;

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int mkfifo(string path, uint mode);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int kill(int pid, int signal);

    [LinuxFact]
    public void Sigint_while_blocked_exits_130_with_one_line() => InterruptBlockedInspect(SIGINT);

    [LinuxFact]
    public void Sigterm_while_blocked_exits_130_with_one_line() => InterruptBlockedInspect(SIGTERM);

    private static void InterruptBlockedInspect(int signal)
    {
        using var dir = new TempDir();
        var fifo = dir.File("stalled.gguf");
        Assert.True(mkfifo(fifo, Convert.ToUInt32("600", 8)) == 0, $"mkfifo failed: errno {Marshal.GetLastPInvokeError()}");

        var psi = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } h ? h : "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { CliProcess.DllPath, "inspect", fifo }) psi.ArgumentList.Add(a);
        using var process = Process.Start(psi)!;
        try
        {
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            WaitUntilBlockedOpeningTheFifo(process);
            Assert.Equal(0, kill(process.Id, signal));
            Assert.True(process.WaitForExit(TimeSpan.FromSeconds(20)), "edgequant did not exit after the signal");
            process.WaitForExit();
            Assert.Equal(ExitCodes.Interrupted, process.ExitCode);
            var line = Assert.Single(stderr.Result.Split('\n', StringSplitOptions.RemoveEmptyEntries));
            Assert.Equal("edgequant: error: interrupted; nothing further was written", line);
            Assert.Equal("", stdout.Result);
        }
        finally
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
        }
    }

    private static void WaitUntilBlockedOpeningTheFifo(Process process)
    {
        var wchan = $"/proc/{process.Id}/task/{process.Id}/wchan";
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromSeconds(30))
        {
            Assert.False(process.HasExited, "edgequant exited before blocking on the pipe");
            string state;
            try { state = File.ReadAllText(wchan).Trim(); }
            catch (IOException) { state = ""; }
            if (state == "wait_for_partner") return;
            Thread.Sleep(50);
        }
        Assert.Fail($"edgequant never blocked opening the pipe ({wchan} never read wait_for_partner)");
    }
}
