using System.CommandLine;
using EdgeQuant.Cli.Framework;

namespace EdgeQuant.Cli.Commands.Imatrix;

/// <summary>
/// <c>edgequant imatrix MODEL --text FILE -o OUT [--ctx 512] [--chunks N] [--threads N] [--format gguf|dat]
/// [--process-output] [--no-ppl] [--force] [--json]</c>.
/// </summary>
public sealed class ImatrixCommandDefinition : Command
{
    public Argument<string> Model { get; } = new("MODEL")
    {
        Description = "The model the engine runs: a Hugging Face folder, a GGUF file (F32/F16/BF16 or quantized) or a llama2.c .bin.",
    };

    public Option<string> Text { get; } = new("--text")
    {
        Description = "UTF-8 calibration text (one trailing newline is dropped, as llama-imatrix does); recorded in imatrix.datasets as given.",
        Required = true,
        HelpName = "FILE",
    };

    public Option<string> Output { get; } = new("--output", "-o")
    {
        Description = "The importance matrix file to write.",
        Required = true,
        HelpName = "OUT",
    };

    public Option<int> Context { get; } = new("--ctx", "-c")
    {
        Description = "Tokens per chunk; each chunk starts from an empty cache with BOS (the text needs at least 2 chunks).",
        DefaultValueFactory = _ => 512,
        HelpName = "N",
    };

    public Option<int?> Chunks { get; } = new("--chunks")
    {
        Description = "Process at most this many chunks (default: every whole chunk of the text).",
        HelpName = "N",
    };

    public Option<int?> Threads { get; } = new("--threads", "-t")
    {
        Description = "Worker threads (default: every core).",
        HelpName = "N",
    };

    public Option<string> Format { get; } = new("--format")
    {
        Description = "gguf (llama-imatrix's default) or dat (the legacy format).",
        DefaultValueFactory = _ => "gguf",
        HelpName = "gguf|dat",
    };

    public Option<bool> ProcessOutput { get; } = new("--process-output")
    {
        Description = "Also collect the output projection (untied output only), as llama-imatrix --process-output.",
    };

    public Option<bool> NoPerplexity { get; } = new("--no-ppl")
    {
        Description = "Do not compute the perplexity of each chunk's second half.",
    };

    public Option<bool> Force { get; } = new("--force")
    {
        Description = "Replace OUT if it exists.",
    };

    public Option<string?> Tokenizer { get; } = new("--tokenizer")
    {
        Description = "llama2.c checkpoints: the tokenizer.bin (default: tok*.bin or tokenizer.bin beside the checkpoint).",
        HelpName = "FILE",
    };

    public Option<bool> Json { get; } = CommonOptions.Json();

    public ImatrixCommandDefinition(CliContext context)
        : base("imatrix", "Collect an importance matrix (llama.cpp's imatrix file) by running the model over a text.")
    {
        Add(Model);
        Add(Text);
        Add(Output);
        Add(Context);
        Add(Chunks);
        Add(Threads);
        Add(Format);
        Add(ProcessOutput);
        Add(NoPerplexity);
        Add(Force);
        Add(Tokenizer);
        Add(Json);
        this.SetCommand(parseResult => new ImatrixCommand(context, new ImatrixOptions(
            ModelPath: parseResult.GetRequiredValue(Model),
            TextPath: parseResult.GetRequiredValue(Text),
            OutputPath: parseResult.GetRequiredValue(Output),
            Context: parseResult.GetValue(Context),
            Chunks: parseResult.GetValue(Chunks),
            Threads: parseResult.GetValue(Threads),
            Format: parseResult.GetValue(Format) ?? "gguf",
            ProcessOutput: parseResult.GetValue(ProcessOutput),
            Perplexity: !parseResult.GetValue(NoPerplexity),
            Force: parseResult.GetValue(Force),
            TokenizerPath: parseResult.GetValue(Tokenizer),
            Json: parseResult.GetValue(Json))));
    }
}

public sealed record ImatrixOptions(string ModelPath, string TextPath, string OutputPath, int Context, int? Chunks, int? Threads, string Format,
    bool ProcessOutput, bool Perplexity, bool Force, string? TokenizerPath, bool Json);
