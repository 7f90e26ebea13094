using System.CommandLine;
using EdgeQuant.Cli.Framework;

namespace EdgeQuant.Cli.Commands.Inspect;

/// <summary><c>edgequant inspect MODEL [--stats] [--json] [--tokenizer PATH]</c>.</summary>
public sealed class InspectCommandDefinition : Command
{
    public Argument<string> Model { get; } = new("MODEL")
    {
        Description = "The model: a Hugging Face folder (config.json + *.safetensors), a .gguf file, or a llama2.c .bin checkpoint.",
    };

    public Option<bool> Stats { get; } = new("--stats")
    {
        Description = "Also read every tensor and report min, max, mean, std and sparsity (fraction of exact zeros).",
    };

    public Option<bool> Json { get; } = CommonOptions.Json();

    public Option<string?> Tokenizer { get; } = new("--tokenizer")
    {
        Description = "llama2.c only: the tokenizer.bin to use (default: tok*.bin or tokenizer.bin beside the checkpoint).",
        HelpName = "PATH",
    };

    public InspectCommandDefinition(CliContext context)
        : base("inspect", "Show a model's format, architecture, hyperparameters, tensors and tokenizer.")
    {
        Add(Model);
        Add(Stats);
        Add(Json);
        Add(Tokenizer);
        this.SetCommand(parseResult => new InspectCommand(context, new InspectOptions(
            ModelPath: parseResult.GetRequiredValue(Model),
            Stats: parseResult.GetValue(Stats),
            Json: parseResult.GetValue(Json),
            TokenizerPath: parseResult.GetValue(Tokenizer))));
    }
}

public sealed record InspectOptions(string ModelPath, bool Stats, bool Json, string? TokenizerPath);
