using System.CommandLine;
using EdgeQuant.Cli.Framework;

namespace EdgeQuant.Cli.Commands.Eval;

/// <summary>Which runtime computes the logits.</summary>
public enum EvalRuntime
{
    /// <summary>EdgeQuant's FP32 reference engine (HF folders, llama2.c, F32/F16 GGUF).</summary>
    Engine,
    /// <summary>llama.cpp through libllama (.gguf of any tensor type).</summary>
    Llamacpp,
    /// <summary>ONNX Runtime (.onnx decoder LMs with a tokenizer.json beside them).</summary>
    Onnxruntime,
}

/// <summary><c>edgequant eval MODEL --text FILE [--ctx 512] [--chunks N] [--threads N] [--runtime R] [--json]</c>.</summary>
public sealed class EvalCommandDefinition : Command
{
    public Argument<string> Model { get; } = new("MODEL")
    {
        Description = "The model: a .gguf file (llama.cpp), a Hugging Face folder or llama2.c .bin (engine), or an .onnx LM.",
    };

    public Option<string> Text { get; } = new("--text")
    {
        Description = "UTF-8 text to measure perplexity on (one trailing newline is dropped, as llama-perplexity does).",
        Required = true,
        HelpName = "FILE",
    };

    public Option<int> Context { get; } = new("--ctx", "-c")
    {
        Description = "Tokens per chunk (N); the second half of each chunk, positions N/2..N-2, is scored.",
        DefaultValueFactory = _ => 512,
        HelpName = "N",
    };

    public Option<int?> Chunks { get; } = new("--chunks")
    {
        Description = "Score at most this many chunks (default: every whole chunk of the text).",
        HelpName = "N",
    };

    public Option<int?> Threads { get; } = new("--threads", "-t")
    {
        Description = "Worker threads (default: every core).",
        HelpName = "N",
    };

    public Option<EvalRuntime?> Runtime { get; } = new("--runtime")
    {
        Description = "Runtime computing the logits: engine, llamacpp or onnxruntime (default: llamacpp for .gguf, onnxruntime for .onnx, engine otherwise).",
        HelpName = "engine|llamacpp|onnxruntime",
    };

    public Option<string?> Tokenizer { get; } = new("--tokenizer")
    {
        Description = "llama2.c: its tokenizer.bin (default: tok*.bin or tokenizer.bin beside it); .onnx: its tokenizer.json (default: beside the model).",
        HelpName = "FILE",
    };

    public Option<bool> EngineExact { get; } = new("--engine-exact")
    {
        Description = "With --runtime engine on a GGUF: multiply the dequantized weights by exact F32 activations, instead of first rounding each quantized or 16-bit layer's input as llama.cpp's CPU backend does (Q8_0/Q8_1/Q8_K blocks, F16; the default, which reproduces llama.cpp's figures).",
    };

    public Option<bool> Json { get; } = CommonOptions.Json();

    public EvalCommandDefinition(CliContext context)
        : base("eval", "Measure a model's perplexity on a text, as llama-perplexity does.")
    {
        Add(Model);
        Add(Text);
        Add(Context);
        Add(Chunks);
        Add(Threads);
        Add(Runtime);
        Add(Tokenizer);
        Add(EngineExact);
        Add(Json);
        this.SetCommand(parseResult => new EvalCommand(context, new EvalOptions(
            ModelPath: parseResult.GetRequiredValue(Model),
            TextPath: parseResult.GetRequiredValue(Text),
            Context: parseResult.GetValue(Context),
            Chunks: parseResult.GetValue(Chunks),
            Threads: parseResult.GetValue(Threads),
            Runtime: parseResult.GetValue(Runtime),
            TokenizerPath: parseResult.GetValue(Tokenizer),
            Json: parseResult.GetValue(Json),
            Verbose: context.IsDebug(parseResult),
            EngineExact: parseResult.GetValue(EngineExact))));
    }
}

public sealed record EvalOptions(string ModelPath, string TextPath, int Context, int? Chunks, int? Threads, EvalRuntime? Runtime, bool Json,
    bool Verbose = false, string? TokenizerPath = null, bool EngineExact = false);
