using System.CommandLine;
using EdgeQuant.Cli.Framework;
using EdgeQuant.Compression.GgufQuant;

namespace EdgeQuant.Cli.Commands.Quantize;

/// <summary>
/// <c>edgequant quantize MODEL -o OUT.gguf --type Q4_K_M [--imatrix FILE] [--threads N] [--pure] [--leave-output-tensor]
/// [--output-tensor-type T] [--token-embedding-type T] [--tensor-type REGEX=TYPE ...] [--allow-requantize]
/// [--allow-nonfinite] [--force] [--json]</c>, or with <c>--format onnx</c>:
/// <c>edgequant quantize MODEL --format onnx --scheme int8-dynamic|int8-static|int4-weight -o DIR [--calib FILES ...]</c>
/// (see <see cref="OnnxQuantizeCommand"/>).
/// </summary>
public sealed class QuantizeCommandDefinition : Command
{
    public Argument<string> Model { get; } = new("MODEL")
    {
        Description = "The model to quantize: a Hugging Face folder, a GGUF file (F32/F16/BF16) or a llama2.c checkpoint.",
    };

    public Option<string> Output { get; } = new("--output", "-o")
    {
        Description = "The GGUF file to write, or with --format onnx the model folder (under a temporary name, renamed when complete).",
        HelpName = "OUT",
        Required = true,
    };

    public Option<string> Format { get; } = new("--format", "-f")
    {
        Description = "gguf (llama.cpp file types, --type) or onnx (ONNX Runtime schemes, --scheme; see docs/onnx-quantization.md).",
        DefaultValueFactory = _ => "gguf",
        HelpName = "gguf|onnx",
    };

    public Option<string?> Type { get; } = new("--type")
    {
        Description = "GGUF (required there): the llama.cpp file type: " + string.Join(", ", QuantFileTypes.All.Select(t => t.Name)) + " (see docs/quant-types.md).",
        HelpName = "TYPE",
    };

    public Option<string?> Imatrix { get; } = new("--imatrix")
    {
        Description = "An importance matrix (from `edgequant imatrix` or llama-imatrix, GGUF or .dat) for the weighted quantizers (GGUF types; ONNX int4-weight).",
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

    // ---- --format onnx

    public Option<string?> Scheme { get; } = new("--scheme")
    {
        Description = "ONNX (required there): int8-dynamic (DynamicQuantizeLinear + MatMulInteger), int8-static (QDQ, calibrated ranges) or int4-weight (MatMulNBits).",
        HelpName = "SCHEME",
    };

    public Option<string[]> Calib { get; } = new("--calib")
    {
        Description = "ONNX calibration text for int8-static and --smooth-alpha: UTF-8 files, folders (their .txt/.jsonl files), globs (data/*.txt) or .jsonl (see --calib-field).",
        HelpName = "FILES",
        AllowMultipleArgumentsPerToken = true,
    };

    public Option<string?> CalibField { get; } = new("--calib-field")
    {
        Description = "The string field read from each line of a .jsonl calibration file (default: text).",
        HelpName = "F",
    };

    public Option<int?> CalibSamples { get; } = new("--calib-samples")
    {
        Description = "Calibration sequences (default 128), at seeded random offsets of the tokenized text, disjoint when the text is long enough.",
        HelpName = "N",
    };

    public Option<int?> CalibSeqLen { get; } = new("--calib-seq-len")
    {
        Description = "Tokens per calibration sequence (default: 512, or the model's context length when shorter).",
        HelpName = "N",
    };

    public Option<int?> Seed { get; } = new("--seed")
    {
        Description = "Seed of the calibration sequence offsets (default 0).",
        HelpName = "S",
    };

    public Option<string?> CalibMethod { get; } = new("--calib-method")
    {
        Description = "int8-static activation ranges: minmax (default), percentile, entropy (KL divergence, 2048 bins) or mse.",
        HelpName = "METHOD",
    };

    public Option<double?> Percentile { get; } = new("--percentile")
    {
        Description = "With --calib-method percentile: the share of |x| kept, in (0, 100] (default 99.99).",
        HelpName = "P",
    };

    public Option<bool> PerChannel { get; } = new("--per-channel")
    {
        Description = "INT8 weights with one scale per output channel (the default).",
    };

    public Option<bool> PerTensor { get; } = new("--per-tensor")
    {
        Description = "INT8 weights with one scale per tensor.",
    };

    public Option<bool> SymmetricActivations { get; } = new("--symmetric-activations")
    {
        Description = "int8-static: INT8 activations with zero point 0 instead of asymmetric UINT8.",
    };

    public Option<bool> ReduceRange { get; } = new("--reduce-range")
    {
        Description = "INT8 schemes: 7-bit weights, as ORT's reduce_range (for CPUs without VNNI).",
    };

    public Option<double?> SmoothAlpha { get; } = new("--smooth-alpha")
    {
        Description = "INT8 schemes: SmoothQuant with migration strength A in [0, 1] (e.g. 0.5) on --calib text before quantizing.",
        HelpName = "A",
    };

    public Option<string?> Exclude { get; } = new("--exclude")
    {
        Description = "ONNX: linear layers left FP32, a regular expression over names like blk.0.attn_q or blk.0.ffn_down.weight; must match one.",
        HelpName = "RE",
    };

    public Option<bool?> QuantizeLmHead { get; } = new("--quantize-lm-head")
    {
        Description = "ONNX: quantize the LM head (output) too, or keep it FP32 with '--quantize-lm-head false'. Default: quantized by int8-dynamic (as ORT's quantize_dynamic does), FP32 for int8-static and int4-weight.",
        HelpName = "true|false",
    };

    public Option<int?> AttentionBlocks { get; } = CommonOptions.AttentionBlocks();

    public Option<int?> BlockSize { get; } = new("--block-size")
    {
        Description = "int4-weight: weights per block along the input, 32 (default), 64 or 128.",
        HelpName = "32|64|128",
    };

    public Option<bool> Asymmetric { get; } = new("--asymmetric")
    {
        Description = "int4-weight: blocks with stored zero points instead of the implicit 8.",
    };

    public Option<string?> RangesOut { get; } = new("--ranges-out")
    {
        Description = "int8-static: also write the activation ranges used as JSON, for review or --ranges.",
        HelpName = "F.json",
    };

    public Option<bool> FusedAttention { get; } = new("--fused-attention")
    {
        Description = "onnx: attention as ONNX Runtime's fused com.microsoft GroupQueryAttention (faster prefill; runs only in ONNX Runtime; head_dim a multiple of 16).",
    };

    public Option<string?> Ranges { get; } = new("--ranges")
    {
        Description = "int8-static: use these activation ranges (from --ranges-out) instead of calibrating.",
        HelpName = "F.json",
    };

    public QuantizeCommandDefinition(CliContext context)
        : base("quantize", "Quantize a model to a GGUF file, byte-identical to llama.cpp's quantizer (Q8_0 ... Q2_K, K-quant mixes, imatrix), or to an ONNX folder (INT8 dynamic, INT8 static QDQ, INT4 weight-only).")
    {
        Add(Model);
        Add(Output);
        Add(Format);
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
        Option[] onnx = [Scheme, Calib, CalibField, CalibSamples, CalibSeqLen, Seed, CalibMethod, Percentile, PerChannel, PerTensor,
            SymmetricActivations, ReduceRange, SmoothAlpha, Exclude, QuantizeLmHead, BlockSize, Asymmetric, RangesOut, Ranges, FusedAttention, AttentionBlocks];
        foreach (var o in onnx) Add(o);
        this.SetCommand(parseResult => new QuantizeCommand(context, new QuantizeOptions(
            ModelPath: parseResult.GetRequiredValue(Model),
            OutputPath: parseResult.GetRequiredValue(Output),
            Type: parseResult.GetValue(Type),
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
            Json: parseResult.GetValue(Json))
        {
            Format = parseResult.GetValue(Format) ?? "gguf",
            Given = Options.Where(o => parseResult.GetResult(o) is { Implicit: false }).Select(o => o.Name).ToHashSet(StringComparer.Ordinal),
            Onnx = new OnnxQuantizeCommandOptions(
                Scheme: parseResult.GetValue(Scheme),
                Calib: parseResult.GetValue(Calib) ?? [],
                CalibField: parseResult.GetValue(CalibField),
                CalibSamples: parseResult.GetValue(CalibSamples),
                CalibSeqLen: parseResult.GetValue(CalibSeqLen),
                Seed: parseResult.GetValue(Seed),
                CalibMethod: parseResult.GetValue(CalibMethod),
                Percentile: parseResult.GetValue(Percentile),
                PerChannel: parseResult.GetValue(PerChannel),
                PerTensor: parseResult.GetValue(PerTensor),
                SymmetricActivations: parseResult.GetValue(SymmetricActivations),
                ReduceRange: parseResult.GetValue(ReduceRange),
                SmoothAlpha: parseResult.GetValue(SmoothAlpha),
                Exclude: parseResult.GetValue(Exclude),
                QuantizeLmHead: parseResult.GetValue(QuantizeLmHead),
                BlockSize: parseResult.GetValue(BlockSize),
                Asymmetric: parseResult.GetValue(Asymmetric),
                RangesOut: parseResult.GetValue(RangesOut),
                Ranges: parseResult.GetValue(Ranges),
                FusedAttention: parseResult.GetValue(FusedAttention),
                AttentionBlocks: parseResult.GetValue(AttentionBlocks)),
        }));
    }

    /// <summary>Options that only --format gguf uses.</summary>
    public static readonly string[] GgufOnly = ["--type", "--pure", "--leave-output-tensor", "--output-tensor-type", "--token-embedding-type", "--tensor-type"];

    /// <summary>Options that only --format onnx uses.</summary>
    public static readonly string[] OnnxOnly = ["--scheme", "--calib", "--calib-field", "--calib-samples", "--calib-seq-len", "--seed", "--calib-method",
        "--percentile", "--per-channel", "--per-tensor", "--symmetric-activations", "--reduce-range", "--smooth-alpha", "--exclude", "--quantize-lm-head",
        "--block-size", "--asymmetric", "--ranges-out", "--ranges", "--fused-attention", "--attention-blocks"];
}

public sealed record QuantizeOptions(string ModelPath, string OutputPath, string? Type, string? ImatrixPath, int? Threads, bool Pure,
    bool LeaveOutputTensor, string? OutputTensorType, string? TokenEmbeddingType, string[] TensorTypes, bool AllowRequantize,
    bool AllowNonFinite, bool Force, string? TokenizerPath, bool Json)
{
    /// <summary>gguf or onnx (--format).</summary>
    public string Format { get; init; } = "gguf";

    /// <summary>Names of the options given on the command line (to refuse those the chosen format does not use).</summary>
    public IReadOnlySet<string> Given { get; init; } = new HashSet<string>();

    public OnnxQuantizeCommandOptions Onnx { get; init; } = new();
}

/// <summary>The --format onnx options as given (null: not given, defaults applied by <see cref="OnnxQuantizeCommand"/>).</summary>
public sealed record OnnxQuantizeCommandOptions(string? Scheme = null, string[]? Calib = null, string? CalibField = null, int? CalibSamples = null,
    int? CalibSeqLen = null, int? Seed = null, string? CalibMethod = null, double? Percentile = null, bool PerChannel = false, bool PerTensor = false,
    bool SymmetricActivations = false, bool ReduceRange = false, double? SmoothAlpha = null, string? Exclude = null, bool? QuantizeLmHead = null,
    int? BlockSize = null, bool Asymmetric = false, string? RangesOut = null, string? Ranges = null, bool FusedAttention = false, int? AttentionBlocks = null);
