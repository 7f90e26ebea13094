using System.CommandLine;
using EdgeQuant.Cli.Framework;

namespace EdgeQuant.Cli.Commands.Export;

/// <summary><c>edgequant export MODEL --format gguf|hf|onnx -o OUT [--outtype f32|f16|bf16] [--dtype fp32|fp16] [--kv-cache|--no-kv-cache] [--force] [--allow-nonfinite] [--tokenizer FILE] [--json]</c>.</summary>
public sealed class ExportCommandDefinition : Command
{
    public Argument<string> Model { get; } = new("MODEL")
    {
        Description = "The model to convert: a Hugging Face folder, a GGUF file or a llama2.c checkpoint (.bin).",
    };

    public Option<string> Format { get; } = new("--format", "-f")
    {
        Description = "Output format: gguf (one file, llama.cpp's names and keys), hf (a folder: model.safetensors, config.json, tokenizer.json) or onnx (a folder: model.onnx with a KV cache, tokenizer.json, genai_config.json).",
        HelpName = "gguf|hf|onnx",
        Required = true,
    };

    public Option<string> Output { get; } = new("--output", "-o")
    {
        Description = "The output file (gguf) or folder (hf). Written under a temporary name and renamed when complete.",
        HelpName = "OUT",
        Required = true,
    };

    public Option<string?> OutType { get; } = new("--outtype")
    {
        Description = "Store weights as f32, f16 or bf16 (GGUF keeps 1-D tensors f32, as llama.cpp does). Default: each tensor's source type, f32 for quantized sources.",
        HelpName = "f32|f16|bf16",
    };

    public Option<string?> Dtype { get; } = new("--dtype")
    {
        Description = "ONNX only: how weight matrices are stored: fp32 (default) or fp16 (half the file; cast to fp32 in the graph, so the math stays fp32 on fp16-rounded weights, which is what ONNX Runtime's CPU provider runs fastest).",
        HelpName = "fp32|fp16",
    };

    public Option<bool> KvCache { get; } = new("--kv-cache")
    {
        Description = "ONNX only: past_key_values.N.key/value inputs and present.N.key/value outputs (the default).",
    };

    public Option<bool> NoKvCache { get; } = new("--no-kv-cache")
    {
        Description = "ONNX only: a graph without past/present values, that takes the whole sequence on every call.",
    };

    public Option<bool> FusedAttention { get; } = new("--fused-attention")
    {
        Description = "ONNX only: attention as ONNX Runtime's fused com.microsoft GroupQueryAttention (faster prefill; runs only in ONNX Runtime; head_dim a multiple of 16).",
    };

    public Option<int?> AttentionBlocks { get; } = CommonOptions.AttentionBlocks();

    public Option<bool> Force { get; } = new("--force")
    {
        Description = "Replace the output if it exists.",
    };

    public Option<bool> AllowNonFinite { get; } = new("--allow-nonfinite")
    {
        Description = "Write NaN or infinite weights (including f16 overflows) instead of refusing the model.",
    };

    public Option<string?> Tokenizer { get; } = new("--tokenizer")
    {
        Description = "For a llama2.c checkpoint: its tokenizer.bin (default: tok<vocab>.bin or tokenizer.bin beside it).",
        HelpName = "FILE",
    };

    public Option<bool> Json { get; } = CommonOptions.Json();

    public ExportCommandDefinition(CliContext context)
        : base("export", "Convert a model to GGUF, a Hugging Face folder (F32, F16 or BF16) or an ONNX folder (FP32 or FP16 weights, with or without a KV cache).")
    {
        Add(Model);
        Add(Format);
        Add(Output);
        Add(OutType);
        Add(Dtype);
        Add(KvCache);
        Add(NoKvCache);
        Add(FusedAttention);
        Add(AttentionBlocks);
        Add(Force);
        Add(AllowNonFinite);
        Add(Tokenizer);
        Add(Json);
        this.SetCommand(parseResult => new ExportCommand(context, new ExportOptions(
            ModelPath: parseResult.GetRequiredValue(Model),
            Format: parseResult.GetRequiredValue(Format),
            OutputPath: parseResult.GetRequiredValue(Output),
            OutType: parseResult.GetValue(OutType),
            Dtype: parseResult.GetValue(Dtype),
            KvCache: parseResult.GetValue(NoKvCache) ? (parseResult.GetValue(KvCache) ? null : false) : true,
            Force: parseResult.GetValue(Force),
            AllowNonFinite: parseResult.GetValue(AllowNonFinite),
            TokenizerPath: parseResult.GetValue(Tokenizer),
            Json: parseResult.GetValue(Json),
            FusedAttention: parseResult.GetValue(FusedAttention),
            AttentionBlocks: parseResult.GetValue(AttentionBlocks))));
    }
}

/// <param name="KvCache">True (default, or --kv-cache), false (--no-kv-cache), null when both were given (refused).</param>
public sealed record ExportOptions(string ModelPath, string Format, string OutputPath, string? OutType, string? Dtype, bool? KvCache, bool Force, bool AllowNonFinite,
    string? TokenizerPath, bool Json, bool FusedAttention = false, int? AttentionBlocks = null);
