using System.CommandLine;
using EdgeQuant.Cli.Framework.Progress;
using EdgeQuant.Models;

namespace EdgeQuant.Cli.Framework;

/// <summary>Options every command accepts (declared once on the root, recursive).</summary>
public sealed class GlobalOptions
{
    public Option<bool> Verbose { get; } = new("--verbose", "-v")
    {
        Description = "Show stack traces and extra diagnostics on errors (also: EDGEQUANT_DEBUG=1).",
        Recursive = true,
    };
}

/// <summary>
/// What a command gets from the host: the console, the environment, global options and the seams tests replace
/// (model loading). One instance per invocation.
/// </summary>
public sealed class CliContext
{
    public CliContext(ICliConsole console, Func<string, string?>? environment = null)
    {
        Console = console;
        Environment = environment ?? System.Environment.GetEnvironmentVariable;
    }

    public ICliConsole Console { get; }

    /// <summary>Environment lookup (injected so tests do not depend on the real environment).</summary>
    public Func<string, string?> Environment { get; }

    public GlobalOptions Globals { get; } = new();

    /// <summary>Loads MODEL (path, optional tokenizer path). Defaults to <see cref="ModelLoader.Load"/>.</summary>
    public Func<string, string?, Model> LoadModel { get; init; } = ModelLoader.Load;

    /// <summary>Whether stack traces go with errors: <c>--verbose</c> or EDGEQUANT_DEBUG=1.</summary>
    public bool IsDebug(ParseResult? parseResult) =>
        (parseResult is not null && parseResult.GetValue(Globals.Verbose)) || Environment("EDGEQUANT_DEBUG") is "1" or "true";

    /// <summary>
    /// The progress sink a command should use: live Spectre progress on stderr when stderr is a terminal, nothing
    /// otherwise (redirected stderr gets no progress noise; stdout never gets progress).
    /// </summary>
    public IProgressSink CreateProgress() =>
        Console.IsErrorTerminal && Environment("EDGEQUANT_NO_PROGRESS") is not ("1" or "true")
            ? new SpectreProgressSink(Console.Error)
            : NullProgressSink.Instance;

    /// <summary>A Spectre console over stdout for tables (plain ASCII, no colours, fixed width when redirected).</summary>
    public Spectre.Console.IAnsiConsole CreateOutputRenderer() =>
        ConsoleRendering.Create(Console.Out, Console.IsOutputTerminal, Console.TerminalWidth);

    /// <summary>
    /// Renders with Spectre into a buffer and writes it to stdout without the trailing spaces Spectre pads grids
    /// with, so piped output diffs cleanly.
    /// </summary>
    public void WriteRendered(Action<Spectre.Console.IAnsiConsole> render)
    {
        var buffer = new StringWriter();
        render(ConsoleRendering.Create(buffer, Console.IsOutputTerminal, Console.TerminalWidth));
        var lines = buffer.ToString().Split('\n');
        var count = lines[^1].Length == 0 ? lines.Length - 1 : lines.Length;
        for (var i = 0; i < count; i++) Console.Out.WriteLine(lines[i].TrimEnd());
        Console.Out.Flush();
    }
}
