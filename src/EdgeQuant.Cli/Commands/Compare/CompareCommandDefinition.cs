using System.CommandLine;
using EdgeQuant.Cli.Framework;

namespace EdgeQuant.Cli.Commands.Compare;

/// <summary><c>edgequant compare BASELINE.json CURRENT.json [--tolerance T ...] [--sigmas Z] [--output FILE] [--json]</c>.</summary>
public sealed class CompareCommandDefinition : Command
{
    public Argument<string> Baseline { get; } = new("BASELINE")
    {
        Description = "The baseline report.json (from `verify --report DIR` or `verify --json`).",
    };

    public Argument<string> Current { get; } = new("CURRENT")
    {
        Description = "The report.json to hold against the baseline.",
    };

    public Option<string[]> Tolerance { get; } = new("--tolerance")
    {
        Description = "Allowed worsening before a regression: 5% (every figure), GROUP=X (accuracy, speed, memory, size) or METRIC=X " +
            "(e.g. kld_mean=0.002, decode_tps=10%); X% is relative to the baseline, a bare X is in the figure's unit; repeatable. " +
            "Defaults: accuracy 0 (uncertainty only), speed 20%, memory 10%.",
        HelpName = "[KEY=]X[%]",
        AllowMultipleArgumentsPerToken = false,
    };

    public Option<double> Sigmas { get; } = new("--sigmas")
    {
        Description = "Combined standard uncertainties a change must exceed to count.",
        DefaultValueFactory = _ => 2.0,
        HelpName = "Z",
    };

    public Option<string?> Output { get; } = new("--output", "-o")
    {
        Description = "Also write the Markdown to this file.",
        HelpName = "FILE",
    };

    public Option<bool> Json { get; } = CommonOptions.Json();

    public CompareCommandDefinition(CliContext context)
        : base("compare", "Compare two verify reports figure by figure; exit 3 on a regression beyond tolerance.")
    {
        Add(Baseline);
        Add(Current);
        Add(Tolerance);
        Add(Sigmas);
        Add(Output);
        Add(Json);
        this.SetCommand(parseResult => new CompareCommand(context, new CompareOptions(
            BaselinePath: parseResult.GetRequiredValue(Baseline),
            CurrentPath: parseResult.GetRequiredValue(Current),
            Tolerances: parseResult.GetValue(Tolerance) ?? [],
            Sigmas: parseResult.GetValue(Sigmas),
            OutputPath: parseResult.GetValue(Output),
            Json: parseResult.GetValue(Json))));
    }
}

public sealed record CompareOptions(string BaselinePath, string CurrentPath, IReadOnlyList<string> Tolerances, double Sigmas, string? OutputPath, bool Json);
