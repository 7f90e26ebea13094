using System.CommandLine;
using EdgeQuant.Cli.Framework;

namespace EdgeQuant.Cli.Commands.Runtimes;

/// <summary><c>edgequant runtimes [--json]</c>.</summary>
public sealed class RuntimesCommandDefinition : Command
{
    public Option<bool> Json { get; } = CommonOptions.Json();

    public RuntimesCommandDefinition(CliContext context)
        : base("runtimes", "List the native runtimes found: versions, paths, llama.cpp's CPU variant.")
    {
        Add(Json);
        this.SetCommand(parseResult => new RuntimesCommand(context, parseResult.GetValue(Json)));
    }
}
