using System.CommandLine;
using EdgeQuant.Cli.Framework;
using EdgeQuant.Compression.GgufQuant;

namespace EdgeQuant.Cli.Commands.Quantize;

/// <summary>
/// <c>edgequant quantize MODEL -o OUT.gguf --type Q4_K_M [--imatrix FILE] [--threads N] [--pure] [--leave-output-tensor]
/// [--output-tensor-type T] [--token-embedding-type T] [--tensor-type REGEX=TYPE ...] [--allow-requantize]
/// [--allow-nonfinite] [--force] [--json]</c>.
/// </summary>
public sealed class QuantizeCommandDefinition : Command
{
    public Argument<string> Model { get; } = new("MODEL")
    {
        Description = "The model to quantize: a Hugging Face folder, a GGUF file (F32/F16/BF16) or a llama2.c checkpoint.",
    };

    public Option<string> Output { get; } = new("--output", "-o")
    {
        Description = "The GGUF file to write (under a temporary name, renamed when complete).",
        HelpName = "OUT.gguf",
        Required = true,
    };

    public Option<string> Type { get; } = new("--type")
    {
        Description = "The llama.cpp file type: " + string.Join(", ", QuantFileTypes.All.Select(t => t.Name)) + " (see docs/quant-types.md).",
        HelpName = "TYPE",
        Required = true,
    };

    public Option<string?> Imatrix { get; } = new("--imatrix")
    {
        Description = "An importance matrix (from `edgequant imatrix` or llama-imatrix, GGUF or .dat) for the weighted quantizers.",
        HelpName = "FILE",
    };

    public Option<int?> Threads { get; } = new("--threads", "-t")
    {
        Description = "Quantizer threads (default: all cores).",
        HelpName = "N",
    };

    public Option<bool> Pure { get; } = new("--pure")
    {
        Description = "Every quantizable tensor gets the default type of TYPE (no per-tensor mix), as llama-quantize --pure.",
    };

    public Option<bool> LeaveOutputTensor { get; } = new("--leave-output-tensor")
    {
        Description = "Keep output.weight unquantized, as llama-quantize --leave-output-tensor.",
    };

    public Option<string?> OutputTensorType { get; } = new("--output-tensor-type")
    {
        Description = "The type for output.weight (e.g. q8_0).",
        HelpName = "T",
    };

    public Option<string?> TokenEmbeddingType { get; } = new("--token-embedding-type")
    {
        Description = "The type for token_embd.weight (e.g. q8_0).",
        HelpName = "T",
    };

    public Option<string[]> TensorType { get; } = new("--tensor-type")
    {
        Description = "Per-tensor override REGEX=TYPE (searched in the tensor name, e.g. attn_v=q8_0); repeatable, first match wins.",
        HelpName = "REGEX=TYPE",
        AllowMultipleArgumentsPerToken = false,
    };

    public Option<bool> AllowRequantize { get; } = new("--allow-requantize")
    {
        Description = "Quantize tensors that already are quantized (loses more accuracy than quantizing the original).",
    };

    public Option<bool> AllowNonFinite { get; } = new("--allow-nonfinite")
    {
        Description = "Quantize NaN or infinite weights instead of refusing the model.",
    };

    public Option<bool> Force { get; } = new("--force")
    {
        Description = "Replace the output if it exists.",
    };

    public Option<string?> Tokenizer { get; } = new("--tokenizer")
    {
        Description = "For a llama2.c checkpoint: its tokenizer.bin.",
        HelpName = "FILE",
    };

    public Option<bool> Json { get; } = CommonOptions.Json();

    public QuantizeCommandDefinition(CliContext context)
        : base("quantize", "Quantize a model to a GGUF file, byte-identical to llama.cpp's quantizer (Q8_0 ... Q2_K, K-quant mixes, imatrix).")
    {
        Add(Model);
        Add(Output);
        Add(Type);
        Add(Imatrix);
        Add(Threads);
        Add(Pure);
        Add(LeaveOutputTensor);
        Add(OutputTensorType);
        Add(TokenEmbeddingType);
        Add(TensorType);
        Add(AllowRequantize);
        Add(AllowNonFinite);
        Add(Force);
        Add(Tokenizer);
        Add(Json);
        this.SetCommand(parseResult => new QuantizeCommand(context, new QuantizeOptions(
            ModelPath: parseResult.GetRequiredValue(Model),
            OutputPath: parseResult.GetRequiredValue(Output),
            Type: parseResult.GetRequiredValue(Type),
            ImatrixPath: parseResult.GetValue(Imatrix),
            Threads: parseResult.GetValue(Threads),
            Pure: parseResult.GetValue(Pure),
            LeaveOutputTensor: parseResult.GetValue(LeaveOutputTensor),
            OutputTensorType: parseResult.GetValue(OutputTensorType),
            TokenEmbeddingType: parseResult.GetValue(TokenEmbeddingType),
            TensorTypes: parseResult.GetValue(TensorType) ?? [],
            AllowRequantize: parseResult.GetValue(AllowRequantize),
            AllowNonFinite: parseResult.GetValue(AllowNonFinite),
            Force: parseResult.GetValue(Force),
            TokenizerPath: parseResult.GetValue(Tokenizer),
            Json: parseResult.GetValue(Json))));
    }
}

public sealed record QuantizeOptions(string ModelPath, string OutputPath, string Type, string? ImatrixPath, int? Threads, bool Pure,
    bool LeaveOutputTensor, string? OutputTensorType, string? TokenEmbeddingType, string[] TensorTypes, bool AllowRequantize,
    bool AllowNonFinite, bool Force, string? TokenizerPath, bool Json);
