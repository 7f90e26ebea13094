using System.Runtime.InteropServices;
using EdgeQuant.Cli.Framework;

// Ctrl-C and SIGTERM cancel the running command (which then exits 130 with one line); a second Ctrl-C kills the
// process the usual way, for commands stuck in native code.
using var cancellation = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    if (cancellation.IsCancellationRequested) return;
    e.Cancel = true;
    cancellation.Cancel();
};
using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context =>
{
    context.Cancel = true;
    cancellation.Cancel();
});

return await CliApp.RunAsync(args, new CliContext(new SystemCliConsole()), cancellation.Token);
