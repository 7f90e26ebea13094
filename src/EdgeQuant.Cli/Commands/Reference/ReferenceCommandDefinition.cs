using System.CommandLine;
using EdgeQuant.Cli.Commands.Eval;
using EdgeQuant.Cli.Framework;

namespace EdgeQuant.Cli.Commands.Reference;

/// <summary><c>edgequant reference MODEL --text FILE -o ref.eqref [--ctx 512] [--chunks N] [--top-k K] [--runtime R] [--threads N] [--json]</c>.</summary>
public sealed class ReferenceCommandDefinition : Command
{
    public Argument<string> Model { get; } = new("MODEL")
    {
        Description = "The full-precision reference model: a .gguf file (llama.cpp), a Hugging Face folder or llama2.c .bin (engine), or an .onnx LM.",
    };

    public Option<string> Text { get; } = new("--text")
    {
        Description = "UTF-8 evaluation text (one trailing newline is dropped, as llama-perplexity does).",
        Required = true,
        HelpName = "FILE",
    };

    public Option<string> Output { get; } = new("--output", "-o")
    {
        Description = "The reference file to write (.eqref).",
        Required = true,
        HelpName = "FILE",
    };

    public Option<int> Context { get; } = new("--ctx", "-c")
    {
        Description = "Tokens per chunk (n_ctx); positions n_ctx/2..n_ctx-2 of each chunk are stored and scored.",
        DefaultValueFactory = _ => 512,
        HelpName = "N",
    };

    public Option<int?> Chunks { get; } = new("--chunks")
    {
        Description = "Store at most this many chunks (default: every whole chunk of the text).",
        HelpName = "N",
    };

    public Option<int?> TopK { get; } = new("--top-k")
    {
        Description = "Store the K most likely tokens and the tail mass per position instead of the full 16-bit distribution (KLD then approximated).",
        HelpName = "K",
    };

    public Option<int?> Threads { get; } = new("--threads", "-t")
    {
        Description = "Worker threads (default: every core).",
        HelpName = "N",
    };

    public Option<EvalRuntime?> Runtime { get; } = new("--runtime")
    {
        Description = "Runtime computing the reference logits (default: llamacpp for .gguf, onnxruntime for .onnx, engine otherwise).",
        HelpName = "engine|llamacpp|onnxruntime",
    };

    public Option<string?> Tokenizer { get; } = new("--tokenizer")
    {
        Description = "llama2.c: its tokenizer.bin; .onnx: its tokenizer.json (default: beside the model).",
        HelpName = "FILE",
    };

    public Option<bool> Json { get; } = CommonOptions.Json();

    public ReferenceCommandDefinition(CliContext context)
        : base("reference", "Run the full-precision model once and store what verify needs to measure drift without it.")
    {
        Add(Model);
        Add(Text);
        Add(Output);
        Add(Context);
        Add(Chunks);
        Add(TopK);
        Add(Threads);
        Add(Runtime);
        Add(Tokenizer);
        Add(Json);
        this.SetCommand(parseResult => new ReferenceCommand(context, new ReferenceOptions(
            ModelPath: parseResult.GetRequiredValue(Model),
            TextPath: parseResult.GetRequiredValue(Text),
            OutputPath: parseResult.GetRequiredValue(Output),
            Context: parseResult.GetValue(Context),
            Chunks: parseResult.GetValue(Chunks),
            TopK: parseResult.GetValue(TopK),
            Threads: parseResult.GetValue(Threads),
            Runtime: parseResult.GetValue(Runtime),
            TokenizerPath: parseResult.GetValue(Tokenizer),
            Json: parseResult.GetValue(Json))));
    }
}

public sealed record ReferenceOptions(string ModelPath, string TextPath, string OutputPath, int Context, int? Chunks, int? TopK, int? Threads,
    EvalRuntime? Runtime, string? TokenizerPath, bool Json);
