using System.Globalization;
using EdgeQuant.Cli.Framework;
using EdgeQuant.Cli.Framework.Progress;
using EdgeQuant.Compression.Pruning;
using EdgeQuant.Core.Errors;
using EdgeQuant.Export;
using EdgeQuant.Models.Tokenizers;
using EdgeQuant.Runtimes.Evaluation;

namespace EdgeQuant.Cli.Commands.Prune;

/// <summary>The <c>--json</c> report of a pruning run.</summary>
public sealed record PruneReport(string Output, string Format, string Source, string Method, double Sparsity, string? Pattern, int CalibrationSamples,
    int CalibrationTokens, long PrunedWeights, long TargetWeights, long ModelWeights, long Bytes, double Seconds, IReadOnlyList<PruneTensorReport> Tensors);

public sealed record PruneTensorReport(string Name, long[] Shape, long Pruned, long Zeros, double Sparsity);

/// <summary>
/// Loads MODEL, tokenizes the calibration text when the method needs it, prunes with <see cref="ModelPruner"/> and
/// writes the result with <see cref="GgufExporter"/>, <see cref="HfExporter"/> or the ONNX exporter (which write to a
/// temporary name and rename, so an interrupted run leaves nothing). One method per mode: unstructured/N:M here,
/// structured (heads, channels, layers) in PruneCommand.Structured.cs.
/// </summary>
public sealed partial class PruneCommand(CliContext context, PruneCommandOptions options) : ICliCommand
{
    private const int DefaultSeqLen = 512;

    public async Task<int> ExecuteAsync(CancellationToken cancellationToken)
    {
        bool structured = StructuredPlanner.TryParseMethods(options.Method, out var units);
        if (options.ChannelMultiple is not null && (options.Sensitivity is { Active: true } || !structured))
            throw new BadInputException("--channel-multiple applies to --method channels with --sparsity");
        if (options.Sensitivity is { Active: true } sensitivity) return await ExecuteSensitivityAsync(sensitivity, cancellationToken);
        if (string.IsNullOrEmpty(options.OutputPath)) throw new BadInputException("-o/--output OUT is required (where to write the pruned model)");
        if (structured)
        {
            if (options.Sequential) throw new BadInputException($"--sequential applies to wanda and sparsegpt, not --method {options.Method}");
            return await ExecuteStructuredAsync(units, cancellationToken);
        }
        return await ExecuteUnstructuredAsync(cancellationToken);
    }

    /// <summary>magnitude, wanda, sparsegpt: zeros inside the weights, shapes unchanged.</summary>
    private async Task<int> ExecuteUnstructuredAsync(CancellationToken cancellationToken)
    {
        // Everything that can be refused without reading the model is checked first.
        var method = ModelPruner.ParseMethod(options.Method);
        string format = CheckFormat(options.Format);
        NmPattern? pattern = options.Pattern is null ? null : NmPattern.Parse(options.Pattern);
        double sparsity = options.Sparsity ?? pattern?.Sparsity ?? 0.5;
        SparsityRule.Check(sparsity);
        if (pattern is { } p && options.Sparsity is { } s && Math.Abs(s - p.Sparsity) > 1e-12)
            throw new BadInputException($"--sparsity {s.ToString(CultureInfo.InvariantCulture)} contradicts --pattern {p} (which zeroes {p.Sparsity.ToString(CultureInfo.InvariantCulture)} of the weights)");
        if (method != PruneMethod.Magnitude && options.Calib.Length == 0)
            throw new BadInputException($"--method {ModelPruner.Name(method)} needs calibration text: pass --calib FILE");
        foreach (var f in options.Calib)
            if (!File.Exists(f)) throw new BadInputException($"{f}: no such calibration file (--calib)");
        if (options.CalibSamples < 1) throw new BadInputException($"--calib-samples: {options.CalibSamples} must be positive");
        if (options.CalibSeqLen is < 2) throw new BadInputException($"--calib-seq-len: {options.CalibSeqLen} is too short (at least 2 tokens)");
        if (options.Threads is < 1 or > 1024) throw new BadInputException($"--threads: {options.Threads} is outside 1..1024");
        if (!File.Exists(options.ModelPath) && !Directory.Exists(options.ModelPath))
            throw new BadInputException($"{options.ModelPath}: no such model file or folder");
        ExportPaths.CheckOutput(options.ModelPath, options.OutputPath, options.Force);
        var pruneOptions = new PruneOptions { Method = method, Sparsity = sparsity, Pattern = pattern, Global = options.Global, Exclude = options.Exclude,
            Sequential = options.Sequential };
        ModelPruner.Validate(pruneOptions);
        if (method == PruneMethod.Magnitude && options.Calib.Length > 0)
            await context.Console.Error.WriteLineAsync("edgequant: warning: --calib is not used by --method magnitude");
        var texts = new List<string>();
        foreach (var f in options.Calib) texts.Add(Perplexity.PrepareText(await File.ReadAllTextAsync(f, cancellationToken)));

        int threads = options.Threads ?? Environment.ProcessorCount;
        var started = DateTime.UtcNow;
        var report = await context.CreateProgress().Run((progress, ct) =>
        {
            var loading = progress.AddTask("loading model", 1);
            using var model = context.LoadModel(options.ModelPath, options.TokenizerPath);
            loading.Increment(1);
            List<int>? tokens = null;
            int seqLen = options.CalibSeqLen ?? Math.Min(DefaultSeqLen, model.Config.ContextLength);
            if (method != PruneMethod.Magnitude)
            {
                if (model.Tokenizer is null)
                    throw new BadInputException($"{options.ModelPath}: the model carries no tokenizer, so the calibration text cannot be tokenized");
                var tokenizer = Tokenizer.FromModel(model);
                tokens = [];
                foreach (var t in texts) tokens.AddRange(tokenizer.Encode(t, addSpecial: true, parseSpecial: false));
            }
            // Bad patterns and excludes are refused before the (long) calibration.
            var targets = ModelPruner.Targets(model, pruneOptions);
            var o = pruneOptions with
            {
                Calibration = new CalibrationOptions { SequenceLength = seqLen, Samples = options.CalibSamples, Threads = threads },
                SparseGpt = new SparseGptOptions { Threads = threads },
            };
            IProgressTask? calibrating = null, pruning = null;
            var relay = new Relay(e =>
            {
                if (e.Stage == "calibrating")
                {
                    calibrating ??= progress.AddTask("calibrating", e.Total);
                    calibrating.Increment(1);
                }
                else
                {
                    pruning ??= progress.AddTask($"pruning ({ModelPruner.Name(method)})", targets.Count);
                    if (e.Tensor is { } name) pruning.Description = $"pruning ({ModelPruner.Name(method)}): {name}";
                    if (e.Done > 0) pruning.Increment(1);
                }
            });
            var result = ModelPruner.Prune(model, tokens, o, relay, ct);
            var writing = progress.AddTask($"writing {format}", 1);
            var (written, bytes) = WriteOutput(result.Model, format, writing, ct);
            return new PruneReport(written, format, options.ModelPath, ModelPruner.Name(method), pattern?.Sparsity ?? sparsity, pattern?.ToString(),
                result.CalibrationSamples, result.CalibrationTokens, result.PrunedWeights, result.TargetElements, model.ParameterCount, bytes,
                Math.Round((DateTime.UtcNow - started).TotalSeconds, 3),
                result.Tensors.Select(t => new PruneTensorReport(t.Name, [t.Rows, t.Columns], t.Pruned, t.Zeros, Math.Round(t.Sparsity, 6))).ToList());
        }, cancellationToken);

        var o = context.Console.Out;
        if (options.Json)
        {
            JsonOutput.Write(o, report);
            await o.FlushAsync(cancellationToken);
            return ExitCodes.Ok;
        }
        var inv = CultureInfo.InvariantCulture;
        foreach (var t in report.Tensors)
            await o.WriteLineAsync(string.Format(inv, "{0,-28} [{1}, {2}]  {3,10:N0} zeros  {4:P2}", t.Name, t.Shape[0], t.Shape[1], t.Zeros, t.Sparsity));
        if (report.CalibrationSamples > 0)
            await o.WriteLineAsync(string.Format(inv, "calibration: {0} sequences, {1:N0} tokens", report.CalibrationSamples, report.CalibrationTokens));
        await o.WriteLineAsync(string.Format(inv, "pruned {0:N0} of {1:N0} weights in {2} tensors ({3:P2}; {4:P2} of all {5:N0} parameters), {6}{7}",
            report.PrunedWeights, report.TargetWeights, report.Tensors.Count, (double)report.PrunedWeights / report.TargetWeights,
            (double)report.PrunedWeights / report.ModelWeights, report.ModelWeights, report.Method, report.Pattern is null ? "" : $" {report.Pattern}"));
        await o.WriteLineAsync(string.Format(inv, "wrote {0} ({1}, {2:N0} bytes)", report.Output, report.Format, report.Bytes));
        await o.FlushAsync(cancellationToken);
        return ExitCodes.Ok;
    }

    /// <summary>Reports synchronously on the pruning thread.</summary>
    private sealed class Relay(Action<PruneProgress> report) : IProgress<PruneProgress>
    {
        public void Report(PruneProgress value) => report(value);
    }
}
