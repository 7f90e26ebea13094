using System.Runtime.InteropServices;
using EdgeQuant.Core.Errors;

namespace EdgeQuant.Cli.Framework;

/// <summary>
/// Turns Ctrl-C (SIGINT) and SIGTERM into cancellation of the running command, which then ends with exit code 130
/// and one stderr line through <see cref="CliApp"/>. A command stuck where cancellation cannot reach (a blocking
/// read, native code) still ends: after <see cref="GracePeriod"/> the process exits 130 itself. A second Ctrl-C
/// terminates at once, as usual.
/// </summary>
public sealed class ProcessInterruption : IDisposable
{
    /// <summary>Long enough to delete a temporary output file, short enough that a person does not press Ctrl-C again.</summary>
    public static readonly TimeSpan GracePeriod = TimeSpan.FromSeconds(3);

    private readonly CancellationTokenSource _cancellation = new();
    private readonly TextWriter _stderr;
    private readonly PosixSignalRegistration _sigterm;
    private int _interrupted;

    public ProcessInterruption(TextWriter stderr)
    {
        _stderr = stderr;
        Console.CancelKeyPress += OnCancelKeyPress;
        _sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context =>
        {
            context.Cancel = true;
            Interrupt();
        });
    }

    public CancellationToken Token => _cancellation.Token;

    private void OnCancelKeyPress(object? sender, ConsoleCancelEventArgs e)
    {
        if (Volatile.Read(ref _interrupted) != 0) return; // second Ctrl-C: let the runtime terminate the process
        e.Cancel = true;
        Interrupt();
    }

    private void Interrupt()
    {
        if (Interlocked.Exchange(ref _interrupted, 1) != 0) return;
        _cancellation.Cancel();
        _ = Task.Delay(GracePeriod).ContinueWith(_ =>
        {
            _stderr.WriteLine($"{CliApp.Name}: error: {CliApp.InterruptedMessage}");
            _stderr.Flush();
            Environment.Exit(ExitCodes.Interrupted);
        }, TaskScheduler.Default);
    }

    public void Dispose()
    {
        Console.CancelKeyPress -= OnCancelKeyPress;
        _sigterm.Dispose();
        _cancellation.Dispose();
    }
}
