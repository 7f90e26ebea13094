using System.CommandLine;

namespace EdgeQuant.Cli.Framework;

/// <summary>A command's behaviour: built from the parse result, runs once, returns an exit code.</summary>
public interface ICliCommand
{
    Task<int> ExecuteAsync(CancellationToken cancellationToken);
}

public static class CommandExtensions
{
    /// <summary>
    /// Wires a definition to its command class: on invocation, <paramref name="create"/> reads the parse result into
    /// a command object whose exit code becomes the process's. Exceptions propagate to <see cref="CliApp"/>.
    /// </summary>
    public static void SetCommand(this Command definition, Func<ParseResult, ICliCommand> create) =>
        definition.SetAction((parseResult, cancellationToken) => create(parseResult).ExecuteAsync(cancellationToken));
}
