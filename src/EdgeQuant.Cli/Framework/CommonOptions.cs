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

    /// <summary><c>--attention-blocks N</c> of the ONNX exporters (standard-op attention split into causal query blocks).</summary>
    public static Option<int?> AttentionBlocks() => new("--attention-blocks")
    {
        Description = "ONNX: split standard-op attention into N causal query blocks (1..16, default 4), so a prefill skips most of the masked half of the score matrix; 1: one block.",
        HelpName = "N",
    };
}
