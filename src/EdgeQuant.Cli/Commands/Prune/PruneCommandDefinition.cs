using System.CommandLine;
using EdgeQuant.Cli.Framework;

namespace EdgeQuant.Cli.Commands.Prune;

/// <summary>
/// <c>edgequant prune MODEL -o OUT --method magnitude|wanda|sparsegpt|heads|channels|layers --sparsity 0.5 [--pattern 2:4]
/// [--calib FILES] [--calib-samples N] [--calib-seq-len N] [--exclude RE] [--global] [--format gguf|hf|onnx] [--threads N] [--force] [--json]</c>.
/// </summary>
public sealed class PruneCommandDefinition : Command
{
    public Argument<string> Model { get; } = new("MODEL")
    {
        Description = "The model to prune: a Hugging Face folder, a GGUF file or a llama2.c .bin.",
    };

    public Option<string> Output { get; } = new("--output", "-o")
    {
        Description = "Where to write the pruned model (a .gguf file, or a folder with --format hf); with --sensitivity, the report (JSON, optional).",
        HelpName = "OUT",
    };

    public Option<string> Method { get; } = new("--method", "-m")
    {
        Description = "Unstructured: magnitude (|W|), wanda (|W|·‖X_j‖, per output row) or sparsegpt (Hessian-based with weight updates). Structured, giving a smaller dense model: heads (KV-head groups), channels (FFN channels), layers, or a mix such as heads,channels. All but magnitude need --calib.",
        DefaultValueFactory = _ => "magnitude",
        HelpName = "METHOD",
    };

    public Option<double?> Sparsity { get; } = new("--sparsity", "-s")
    {
        Description = "Fraction of each pruned tensor's weights set to zero, in [0, 1) (default 0.5; with --pattern it must equal (M-N)/M if given). heads/channels/layers (required there): the share of each layer's KV groups / FFN channels, or of the layers, removed.",
        HelpName = "S",
    };

    public Option<string?> Pattern { get; } = new("--pattern")
    {
        Description = "Semi-structured N:M sparsity instead: N of every M consecutive inputs kept (2:4, 4:8); M must divide every pruned row.",
        HelpName = "N:M",
    };

    public Option<string[]> Calib { get; } = new("--calib")
    {
        Description = "UTF-8 calibration text file(s), tokenized with the model's tokenizer and cut into sequences.",
        HelpName = "FILES",
        AllowMultipleArgumentsPerToken = true,
    };

    public Option<int> CalibSamples { get; } = new("--calib-samples")
    {
        Description = "At most this many calibration sequences.",
        DefaultValueFactory = _ => 128,
        HelpName = "N",
    };

    public Option<int?> CalibSeqLen { get; } = new("--calib-seq-len")
    {
        Description = "Tokens per calibration sequence (default: 512, or the model's context length when shorter).",
        HelpName = "N",
    };

    public Option<string?> Exclude { get; } = new("--exclude")
    {
        Description = "Leave tensors whose name matches this regular expression dense (only attn_*/ffn_* block weights are ever pruned).",
        HelpName = "RE",
    };

    public Option<bool> Global { get; } = new("--global")
    {
        Description = "magnitude: one threshold across all pruned tensors instead of the same sparsity in each.",
    };

    public Option<string> Format { get; } = new("--format")
    {
        Description = "gguf (one file), hf (a safetensors folder) or onnx (a folder, as edgequant export writes it).",
        DefaultValueFactory = _ => "gguf",
        HelpName = "gguf|hf|onnx",
    };

    public Option<int?> Threads { get; } = new("--threads", "-t")
    {
        Description = "Worker threads (default: every core).",
        HelpName = "N",
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

    public Option<bool> Sequential { get; } = new("--sequential")
    {
        Description = "wanda/sparsegpt: calibrate block by block on the model whose earlier blocks are already pruned (one calibration pass per block) instead of all blocks on the dense model.",
    };

    public Option<bool> Sensitivity { get; } = new("--sensitivity")
    {
        Description = "Measure instead of pruning: the KLD and PPL of the model with each layer, each KV-head group and each layer's least important 25/50/75 % of FFN channels removed alone, on --calib (default 32 sequences of 128 tokens); prints the ranking, writes the JSON report to -o.",
    };

    public Option<string?> Plan { get; } = new("--plan")
    {
        Description = "auto: remove the units with the least KLD per parameter saved (from --sensitivity-report, or measured on --calib) until the model has at most --target-params parameters.",
        HelpName = "auto",
    };

    public Option<string?> TargetParams { get; } = new("--target-params")
    {
        Description = "--plan auto: the parameter count to reach (N, or 12.5M), or P% of the parameters to remove.",
        HelpName = "N|P%",
    };

    public Option<string?> SensitivityReport { get; } = new("--sensitivity-report")
    {
        Description = "--plan auto: a report written by --sensitivity on this same model.",
        HelpName = "FILE",
    };

    public Option<bool> Uniform { get; } = new("--uniform")
    {
        Description = "--plan auto: keep every layer at the same number of heads and FFN channels (a standard config) instead of per-layer widths.",
    };

    public Option<int?> ChannelMultiple { get; } = new("--channel-multiple")
    {
        Description = "channels with --sparsity: keep in each layer the multiple of N nearest to the FFN width the share leaves (e.g. 64; odd widths run slower in llama.cpp and ORT). Default 1: exactly the share.",
        HelpName = "N",
    };

    public Option<bool> Json { get; } = CommonOptions.Json();

    public PruneCommandDefinition(CliContext context)
        : base("prune", "Prune a model: zero linear weights (magnitude, Wanda, SparseGPT; unstructured or N:M) or remove heads, FFN channels or layers; write GGUF, HF or ONNX.")
    {
        Add(Model);
        Add(Output);
        Add(Method);
        Add(Sparsity);
        Add(Pattern);
        Add(Calib);
        Add(CalibSamples);
        Add(CalibSeqLen);
        Add(Exclude);
        Add(Global);
        Add(Format);
        Add(Threads);
        Add(Force);
        Add(Tokenizer);
        Add(Sequential);
        Add(Sensitivity);
        Add(Plan);
        Add(TargetParams);
        Add(SensitivityReport);
        Add(Uniform);
        Add(ChannelMultiple);
        Add(Json);
        this.SetCommand(parseResult => new PruneCommand(context, new PruneCommandOptions(
            ModelPath: parseResult.GetRequiredValue(Model),
            OutputPath: parseResult.GetValue(Output) ?? "",
            Method: parseResult.GetValue(Method) ?? "magnitude",
            Sparsity: parseResult.GetValue(Sparsity),
            Pattern: parseResult.GetValue(Pattern),
            Calib: parseResult.GetValue(Calib) ?? [],
            CalibSamples: parseResult.GetValue(CalibSamples),
            CalibSeqLen: parseResult.GetValue(CalibSeqLen),
            Exclude: parseResult.GetValue(Exclude),
            Global: parseResult.GetValue(Global),
            Format: parseResult.GetValue(Format) ?? "gguf",
            Threads: parseResult.GetValue(Threads),
            Force: parseResult.GetValue(Force),
            TokenizerPath: parseResult.GetValue(Tokenizer),
            Json: parseResult.GetValue(Json),
            Sensitivity: new PruneSensitivityOptions(parseResult.GetValue(Sensitivity), parseResult.GetValue(Plan), parseResult.GetValue(TargetParams),
                parseResult.GetValue(SensitivityReport), parseResult.GetValue(Uniform),
                Options.Where(o => parseResult.GetResult(o) is { Implicit: false }).Select(o => o.Name).ToHashSet(StringComparer.Ordinal)),
            Sequential: parseResult.GetValue(Sequential),
            ChannelMultiple: parseResult.GetValue(ChannelMultiple))));
    }
}

public sealed record PruneCommandOptions(string ModelPath, string OutputPath, string Method, double? Sparsity, string? Pattern, string[] Calib,
    int CalibSamples, int? CalibSeqLen, string? Exclude, bool Global, string Format, int? Threads, bool Force, string? TokenizerPath, bool Json,
    PruneSensitivityOptions? Sensitivity = null, bool Sequential = false, int? ChannelMultiple = null);
