using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Invocation;
using EdgeQuant.Core.Errors;

namespace EdgeQuant.Cli.Framework;

/// <summary>
/// The <c>edgequant</c> entry point minus the process: builds the command tree from <see cref="CommandCatalog"/>,
/// parses, runs, and turns every way a run can end into an exit code and at most one stderr line.
/// </summary>
public static class CliApp
{
    public const string Name = "edgequant";

    public const string InterruptedMessage = "interrupted; nothing further was written";

    /// <summary>Help is wrapped at this width when stdout is not a terminal, so piped help and snapshots are stable.</summary>
    public const int RedirectedHelpWidth = 100;

    public static Command BuildRoot(CliContext context)
    {
        // A plain Command rather than RootCommand: RootCommand takes its name from the host executable, which is
        // "testhost" under the test runner and would leak into help output.
        var root = new Command(Name, "EdgeQuant: compress, convert and verify small language models for edge devices.")
        {
            new HelpOption(),
            new VersionOption(),
            context.Globals.Verbose,
        };
        foreach (var create in CommandCatalog.All) root.Add(create(context));
        return root;
    }

    public static async Task<int> RunAsync(string[] args, CliContext context, CancellationToken cancellationToken = default)
    {
        var console = context.Console;
        ParseResult? parseResult = null;
        try
        {
            var root = BuildRoot(context);
            parseResult = root.Parse(args);
            switch (parseResult.Action)
            {
                case ParseErrorAction:
                    return UsageError(console.Error, parseResult);
                case HelpAction help:
                    help.MaxWidth = console.TerminalWidth ?? RedirectedHelpWidth;
                    break;
            }
            var configuration = new InvocationConfiguration
            {
                Output = console.Out,
                Error = console.Error,
                // Exceptions and Ctrl-C are handled here, once, for every command.
                EnableDefaultExceptionHandler = false,
                ProcessTerminationTimeout = null,
            };
            var code = await parseResult.InvokeAsync(configuration, cancellationToken).ConfigureAwait(false);
            await console.Out.FlushAsync(CancellationToken.None).ConfigureAwait(false);
            return code;
        }
        catch (Exception e)
        {
            return ReportFailure(e, context, parseResult);
        }
    }

    /// <summary>Maps an exception that ended a command to its exit code and writes one line on stderr.</summary>
    public static int ReportFailure(Exception e, CliContext context, ParseResult? parseResult)
    {
        var stderr = context.Console.Error;
        var debug = context.IsDebug(parseResult);
        if (e is AggregateException { InnerExceptions.Count: 1 } agg) e = agg.InnerExceptions[0];
        int code;
        string message;
        switch (e)
        {
            case OperationCanceledException:
                code = ExitCodes.Interrupted;
                message = InterruptedMessage;
                break;
            case EdgeQuantException eq:
                code = eq.ExitCode;
                message = eq.Message;
                break;
            // A path the user gave that is missing or unreadable is bad input, even when a BCL API found out first.
            case FileNotFoundException or DirectoryNotFoundException or UnauthorizedAccessException:
                code = ExitCodes.BadInput;
                message = e.Message;
                break;
            default:
                code = ExitCodes.InternalFailure;
                message = $"internal failure ({e.GetType().Name}): {e.Message}" +
                          (debug ? "" : " (run with --verbose or EDGEQUANT_DEBUG=1 for details)");
                break;
        }
        stderr.WriteLine($"{Name}: error: {OneLine(message)}");
        if (debug && code != ExitCodes.Interrupted) stderr.WriteLine(e.ToString());
        stderr.Flush();
        return code;
    }

    private static int UsageError(TextWriter stderr, ParseResult parseResult)
    {
        var messages = string.Join(" ", parseResult.Errors.Select(error => OneLine(error.Message)).Distinct());
        var commandPath = string.Join(' ', CommandPath(parseResult));
        stderr.WriteLine($"{Name}: error: {messages} (see '{commandPath} --help')");
        stderr.Flush();
        return ExitCodes.BadInput;
    }

    private static IEnumerable<string> CommandPath(ParseResult parseResult)
    {
        var names = new Stack<string>();
        for (var result = parseResult.CommandResult; result is not null; result = result.Parent as System.CommandLine.Parsing.CommandResult)
            names.Push(result.Command.Name);
        return names;
    }

    internal static string OneLine(string message) =>
        string.Join(' ', message.Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
}
