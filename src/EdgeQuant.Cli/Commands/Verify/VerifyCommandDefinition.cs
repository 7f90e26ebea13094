using System.CommandLine;
using EdgeQuant.Cli.Framework;
using EdgeQuant.Verification.Gates;

namespace EdgeQuant.Cli.Commands.Verify;

/// <summary>Which runtime runs the candidate.</summary>
public enum VerifyRuntime
{
    /// <summary>llama.cpp for .gguf, ONNX Runtime for .onnx, the engine otherwise.</summary>
    Auto,
    Llamacpp,
    Onnxruntime,
    Engine,
}

/// <summary>
/// <c>edgequant verify CANDIDATE --reference ref.eqref [--runtime R] [--threads N] [--chunks N] [gates] [--no-latency]
/// [--report DIR] [--json]</c>. The gate options come from <see cref="GateCatalog"/>, one per row.
/// </summary>
public sealed class VerifyCommandDefinition : Command
{
    public Argument<string> Candidate { get; } = new("CANDIDATE")
    {
        Description = "The model to verify: a .gguf file (llama.cpp), an .onnx LM (ONNX Runtime), or a Hugging Face folder / llama2.c .bin / GGUF (engine).",
    };

    public Option<string> Reference { get; } = new("--reference", "-r")
    {
        Description = "The reference file written by 'edgequant reference' from the full-precision model.",
        Required = true,
        HelpName = "FILE",
    };

    public Option<VerifyRuntime> Runtime { get; } = new("--runtime")
    {
        Description = "Runtime running the candidate (auto: llamacpp for .gguf, onnxruntime for .onnx, engine otherwise).",
        DefaultValueFactory = _ => VerifyRuntime.Auto,
        HelpName = "auto|llamacpp|onnxruntime|engine",
    };

    public Option<int?> Threads { get; } = new("--threads", "-t")
    {
        Description = "Worker threads of the runtime (default: every core).",
        HelpName = "N",
    };

    public Option<int?> Chunks { get; } = new("--chunks")
    {
        Description = "Use only the reference's first N chunks (default: all).",
        HelpName = "N",
    };

    public Option<string?> Tokenizer { get; } = new("--tokenizer")
    {
        Description = "llama2.c: its tokenizer.bin; .onnx: its tokenizer.json (default: beside the model).",
        HelpName = "FILE",
    };

    public IReadOnlyList<(GateDefinition Gate, Option<double?> Option)> Gates { get; } =
        [.. GateCatalog.All.Select(g => (g, new Option<double?>("--" + g.Name) { Description = g.Description, HelpName = "X" }))];

    public Option<bool> EngineExact { get; } = new("--engine-exact")
    {
        Description = "With --runtime engine on a GGUF: multiply the dequantized weights by exact F32 activations, instead of first rounding each quantized or 16-bit layer's input as llama.cpp's CPU backend does (Q8_0/Q8_1/Q8_K blocks, F16; the default, which reproduces llama.cpp's figures).",
    };

    public Option<bool> NoLatency { get; } = new("--no-latency")
    {
        Description = "Skip the latency probe (load, prefill, decode timings, peak RSS); latency gates then fail as not measured.",
    };

    public Option<int?> LatencyTokens { get; } = new("--latency-tokens")
    {
        Description = "Tokens generated for the per-token latency figures (default: 128, or n_ctx/2 when smaller).",
        HelpName = "N",
    };

    public Option<string?> Report { get; } = new("--report")
    {
        Description = "Write report.json, report.md, report.html and junit.xml into this folder.",
        HelpName = "DIR",
    };

    public Option<bool> Json { get; } = CommonOptions.Json();

    public VerifyCommandDefinition(CliContext context)
        : base("verify", "Measure a candidate's drift from a reference (PPL, KLD, top-1, Δp) and its latency; exit 3 when a gate fails.")
    {
        Add(Candidate);
        Add(Reference);
        Add(Runtime);
        Add(Threads);
        Add(Chunks);
        Add(Tokenizer);
        Add(EngineExact);
        foreach (var (_, option) in Gates) Add(option);
        Add(NoLatency);
        Add(LatencyTokens);
        Add(Report);
        Add(Json);
        this.SetCommand(parseResult => new VerifyCommand(context, new VerifyOptions(
            CandidatePath: parseResult.GetRequiredValue(Candidate),
            ReferencePath: parseResult.GetRequiredValue(Reference),
            Runtime: parseResult.GetValue(Runtime),
            Threads: parseResult.GetValue(Threads),
            Chunks: parseResult.GetValue(Chunks),
            TokenizerPath: parseResult.GetValue(Tokenizer),
            Gates: [.. Gates.Select(g => (g.Gate, parseResult.GetValue(g.Option))).Where(g => g.Item2 is not null).Select(g => (g.Gate, g.Item2!.Value))],
            NoLatency: parseResult.GetValue(NoLatency),
            LatencyTokens: parseResult.GetValue(LatencyTokens),
            ReportDirectory: parseResult.GetValue(Report),
            Json: parseResult.GetValue(Json),
            Verbose: context.IsDebug(parseResult),
            EngineExact: parseResult.GetValue(EngineExact))));
    }
}

/// <param name="Gates">The thresholds given, in the gate table's order.</param>
public sealed record VerifyOptions(
    string CandidatePath,
    string ReferencePath,
    VerifyRuntime Runtime,
    int? Threads,
    int? Chunks,
    string? TokenizerPath,
    IReadOnlyList<(GateDefinition Gate, double Threshold)> Gates,
    bool NoLatency,
    int? LatencyTokens,
    string? ReportDirectory,
    bool Json,
    bool Verbose = false,
    bool EngineExact = false);
