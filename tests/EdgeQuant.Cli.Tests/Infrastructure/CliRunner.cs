using EdgeQuant.Cli.Framework;
using EdgeQuant.Models;

namespace EdgeQuant.Cli.Tests.Infrastructure;

/// <summary>Runs <c>edgequant</c> in-process against a <see cref="TestConsole"/>.</summary>
public static class CliRunner
{
    public sealed record Result(int ExitCode, string StdOut, string StdErr)
    {
        /// <summary>Stderr split into non-empty lines.</summary>
        public string[] ErrorLines => StdErr.Split('\n', StringSplitOptions.RemoveEmptyEntries);

        public override string ToString() => $"exit {ExitCode}\n--- stdout\n{StdOut}\n--- stderr\n{StdErr}";
    }

    /// <param name="args">The command line after <c>edgequant</c>.</param>
    /// <param name="loadModel">Replaces <see cref="ModelLoader.Load"/> (for hand-made models); null for the real loader.</param>
    /// <param name="environment">Environment variables the run sees; none by default (so EDGEQUANT_DEBUG is off).</param>
    /// <param name="console">The console; a redirected <see cref="TestConsole"/> by default.</param>
    public static Result Run(string[] args, Func<string, string?, Model>? loadModel = null,
        IReadOnlyDictionary<string, string>? environment = null, TestConsole? console = null,
        CancellationToken cancellationToken = default)
    {
        console ??= new TestConsole();
        var context = new CliContext(console, name => environment?.GetValueOrDefault(name));
        if (loadModel is not null)
            context = new CliContext(console, name => environment?.GetValueOrDefault(name)) { LoadModel = loadModel };
        var code = CliApp.RunAsync(args, context, cancellationToken).GetAwaiter().GetResult();
        return new Result(code, console.StdOut, console.StdErr);
    }

    public static Result Run(params string[] args) => Run(args, loadModel: null);
}
