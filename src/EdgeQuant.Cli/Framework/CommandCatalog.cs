using System.CommandLine;
using EdgeQuant.Cli.Commands.Compare;
using EdgeQuant.Cli.Commands.Eval;
using EdgeQuant.Cli.Commands.Export;
using EdgeQuant.Cli.Commands.Generate;
using EdgeQuant.Cli.Commands.Imatrix;
using EdgeQuant.Cli.Commands.Inspect;
using EdgeQuant.Cli.Commands.Prune;
using EdgeQuant.Cli.Commands.Quantize;
using EdgeQuant.Cli.Commands.Reference;
using EdgeQuant.Cli.Commands.Runtimes;
using EdgeQuant.Cli.Commands.Tokenize;
using EdgeQuant.Cli.Commands.Verify;

namespace EdgeQuant.Cli.Framework;

/// <summary>
/// Every command of <c>edgequant</c>, one line each, in the order <c>--help</c> lists them. A new command adds its
/// folder under Commands/ and one line here.
/// </summary>
public static class CommandCatalog
{
    public static IReadOnlyList<Func<CliContext, Command>> All { get; } =
    [
        context => new InspectCommandDefinition(context),
        context => new GenerateCommandDefinition(context),
        context => new TokenizeCommandDefinition(context),
        context => new EvalCommandDefinition(context),
        context => new ExportCommandDefinition(context),
        context => new ImatrixCommandDefinition(context),
        context => new QuantizeCommandDefinition(context),
        context => new PruneCommandDefinition(context),
        context => new ReferenceCommandDefinition(context),
        context => new VerifyCommandDefinition(context),
        context => new CompareCommandDefinition(context),
        context => new RuntimesCommandDefinition(context),
    ];
}
