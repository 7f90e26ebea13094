using System.CommandLine;

namespace EdgeQuant.Cli.Framework;

/// <summary>Options several commands share, so their names and descriptions stay the same everywhere.</summary>
public static class CommonOptions
{
    /// <summary><c>--json</c>: the report as one JSON document on stdout (snake_case), nothing else there.</summary>
    public static Option<bool> Json() => new("--json")
    {
        Description = "Write the report as JSON (snake_case fields) on stdout and nothing else there.",
    };
}
