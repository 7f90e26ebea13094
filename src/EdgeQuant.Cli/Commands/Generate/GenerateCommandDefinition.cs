using System.CommandLine;
using EdgeQuant.Cli.Framework;

namespace EdgeQuant.Cli.Commands.Generate;

/// <summary><c>edgequant generate MODEL --prompt TEXT [-n 128] [--temp 0] [--seed S] …</c>.</summary>
public sealed class GenerateCommandDefinition : Command
{
    public Argument<string> Model { get; } = new("MODEL")
    {
        Description = "The model: a Hugging Face folder (config.json + *.safetensors), a .gguf file, or a llama2.c .bin checkpoint.",
    };

    public Option<string> Prompt { get; } = new("--prompt", "-p")
    {
        Description = "The text to continue (tokenized with the model's tokenizer, BOS added when the model wants it).",
        Required = true,
        HelpName = "TEXT",
    };

    public Option<int> Tokens { get; } = new("--n-predict", "-n")
    {
        Description = "Most tokens to generate.",
        DefaultValueFactory = _ => 128,
        HelpName = "N",
    };

    public Option<float> Temperature { get; } = new("--temp")
    {
        Description = "Sampling temperature; 0 is greedy (always the most likely token).",
        DefaultValueFactory = _ => 0f,
        HelpName = "T",
    };

    public Option<int?> Seed { get; } = new("--seed")
    {
        Description = "Random seed for sampling (--temp > 0); the same seed repeats the same text. Default: random.",
        HelpName = "S",
    };

    public Option<int> TopK { get; } = new("--top-k")
    {
        Description = "Sample only among the K most likely tokens (0: all).",
        DefaultValueFactory = _ => 0,
        HelpName = "K",
    };

    public Option<float> TopP { get; } = new("--top-p")
    {
        Description = "Sample only among the most likely tokens whose probabilities add up to P (1: all).",
        DefaultValueFactory = _ => 1f,
        HelpName = "P",
    };

    public Option<int?> Context { get; } = new("--ctx")
    {
        Description = "KV cache size in tokens (default: prompt + N, within the model's position limit).",
        HelpName = "N",
    };

    public Option<int?> Threads { get; } = new("--threads", "-t")
    {
        Description = "Worker threads (default: every core).",
        HelpName = "N",
    };

    public Option<bool> IgnoreEos { get; } = new("--ignore-eos")
    {
        Description = "Keep generating past the end-of-sequence token.",
    };

    public Option<string?> Tokenizer { get; } = new("--tokenizer")
    {
        Description = "llama2.c only: the tokenizer.bin to use (default: tok*.bin or tokenizer.bin beside the checkpoint).",
        HelpName = "PATH",
    };

    public Option<bool> Json { get; } = CommonOptions.Json();

    public GenerateCommandDefinition(CliContext context)
        : base("generate", "Continue a prompt with the FP32 reference engine, streaming the text.")
    {
        Add(Model);
        Add(Prompt);
        Add(Tokens);
        Add(Temperature);
        Add(Seed);
        Add(TopK);
        Add(TopP);
        Add(Context);
        Add(Threads);
        Add(IgnoreEos);
        Add(Tokenizer);
        Add(Json);
        this.SetCommand(parseResult => new GenerateCommand(context, new GenerateOptions(
            ModelPath: parseResult.GetRequiredValue(Model),
            Prompt: parseResult.GetRequiredValue(Prompt),
            MaxTokens: parseResult.GetValue(Tokens),
            Temperature: parseResult.GetValue(Temperature),
            Seed: parseResult.GetValue(Seed),
            TopK: parseResult.GetValue(TopK),
            TopP: parseResult.GetValue(TopP),
            Context: parseResult.GetValue(Context),
            Threads: parseResult.GetValue(Threads),
            IgnoreEos: parseResult.GetValue(IgnoreEos),
            TokenizerPath: parseResult.GetValue(Tokenizer),
            Json: parseResult.GetValue(Json))));
    }
}

public sealed record GenerateOptions(
    string ModelPath, string Prompt, int MaxTokens, float Temperature, int? Seed, int TopK, float TopP,
    int? Context, int? Threads, bool IgnoreEos, string? TokenizerPath, bool Json);
