using System.Globalization;
using EdgeQuant.Cli.Framework;
using EdgeQuant.Cli.Framework.Progress;
using EdgeQuant.Compression.Pruning;
using EdgeQuant.Core.Errors;
using EdgeQuant.Export;
using EdgeQuant.Export.Onnx;
using EdgeQuant.Models;
using EdgeQuant.Models.Tokenizers;
using EdgeQuant.Runtimes.Evaluation;

namespace EdgeQuant.Cli.Commands.Prune;

/// <summary>The <c>--json</c> report of a structured pruning run.</summary>
public sealed record StructuredPruneReport(string Output, string Format, string Source, string Method, double Sparsity, int CalibrationSamples,
    int CalibrationTokens, long ParametersBefore, long ParametersAfter, double ParametersRemoved, long Bytes, double Seconds,
    IReadOnlyList<int> RemovedLayers, IReadOnlyList<StructuredLayerReport> Layers);

/// <summary>One block of the pruned model: its index now and in the source, and its widths before → after.</summary>
public sealed record StructuredLayerReport(int Layer, int SourceLayer, int Heads, int SourceHeads, int KvHeads, int SourceKvHeads,
    int FeedForward, int SourceFeedForward);

public sealed partial class PruneCommand
{
    /// <summary>
    /// heads, channels, layers (or a comma-separated mix): importance from calibration (<see cref="StructuredImportance"/>),
    /// a uniform plan removing <c>--sparsity</c> of each kind's units (<see cref="StructuredPlanner"/>), then a smaller
    /// dense model (<see cref="StructuredPruner"/>).
    /// </summary>
    private async Task<int> ExecuteStructuredAsync(IReadOnlyList<StructuredMethod> units, CancellationToken cancellationToken)
    {
        string method = string.Join(",", units.Select(StructuredPlanner.Name));
        string format = CheckFormat(options.Format);
        if (options.Pattern is not null) throw new BadInputException($"--pattern applies to magnitude, wanda and sparsegpt, not --method {method}");
        if (options.Global) throw new BadInputException($"--global applies to magnitude pruning, not --method {method}");
        if (options.Exclude is not null) throw new BadInputException($"--exclude applies to magnitude, wanda and sparsegpt, not --method {method}");
        if (options.Sparsity is not { } sparsity)
            throw new BadInputException($"--method {method} needs --sparsity S: the share of each layer's {string.Join("/", units.Select(UnitName))} to remove");
        SparsityRule.Check(sparsity);
        if (options.ChannelMultiple is { } cm)
        {
            if (!units.Contains(StructuredMethod.Channels)) throw new BadInputException($"--channel-multiple applies to --method channels, not --method {method}");
            StructuredPlanner.CheckChannelMultiple(cm);
        }
        if (options.Calib.Length == 0)
            throw new BadInputException($"--method {method} needs calibration text to rank the units: pass --calib FILE");
        foreach (var f in options.Calib)
            if (!File.Exists(f)) throw new BadInputException($"{f}: no such calibration file (--calib)");
        if (options.CalibSamples < 1) throw new BadInputException($"--calib-samples: {options.CalibSamples} must be positive");
        if (options.CalibSeqLen is < 2) throw new BadInputException($"--calib-seq-len: {options.CalibSeqLen} is too short (at least 2 tokens)");
        if (options.Threads is < 1 or > 1024) throw new BadInputException($"--threads: {options.Threads} is outside 1..1024");
        if (!File.Exists(options.ModelPath) && !Directory.Exists(options.ModelPath))
            throw new BadInputException($"{options.ModelPath}: no such model file or folder");
        ExportPaths.CheckOutput(options.ModelPath, options.OutputPath, options.Force);
        var texts = new List<string>();
        foreach (var f in options.Calib) texts.Add(Perplexity.PrepareText(await File.ReadAllTextAsync(f, cancellationToken)));

        int threads = options.Threads ?? Environment.ProcessorCount;
        var started = DateTime.UtcNow;
        var report = await context.CreateProgress().Run((progress, ct) =>
        {
            var loading = progress.AddTask("loading model", 1);
            using var model = context.LoadModel(options.ModelPath, options.TokenizerPath);
            loading.Increment(1);
            // GGUF and HF derive GPT-2's head size from n_embd / n_head, so a GPT-2 with fewer heads has no file to go to.
            if (model.Config.Architecture == Architecture.Gpt2 && units.Contains(StructuredMethod.Heads))
                throw new BadInputException($"{options.ModelPath}: GPT-2 files derive the head size from n_embd / n_head, so its heads cannot be pruned; prune channels or layers");
            var calib = CalibrationTokens(model, texts);
            var o = new CalibrationOptions
            {
                SequenceLength = options.CalibSeqLen ?? Math.Min(DefaultSeqLen, model.Config.ContextLength),
                Samples = options.CalibSamples,
                Hessian = false,
                Threads = threads,
            };
            int samples = PruningCalibration.SampleCount(calib.Count, o);
            IProgressTask? calibrating = null;
            var importance = StructuredImportance.Collect(model, calib, o, new CalibrationRelay(p =>
            {
                calibrating ??= progress.AddTask("ranking heads, channels and layers", p.Samples);
                calibrating.Increment(1);
            }), ct);
            // A plan that would empty a layer is refused here, before anything is written.
            var plan = StructuredPlanner.Uniform(model.Config, importance, units, sparsity, options.ChannelMultiple ?? 1);
            var pruned = StructuredPruner.Apply(model, plan);
            var writing = progress.AddTask($"writing {format}", 1);
            var (written, bytes) = WriteOutput(pruned, format, writing, ct);
            return new StructuredPruneReport(written, format, options.ModelPath, method, sparsity, importance.Samples, (int)importance.Tokens,
                model.ParameterCount, pruned.ParameterCount, Math.Round(1 - (double)pruned.ParameterCount / model.ParameterCount, 6), bytes,
                Math.Round((DateTime.UtcNow - started).TotalSeconds, 3),
                Enumerable.Range(0, plan.Layers.Count).Where(l => !plan.Layers[l].Keep).ToList(), LayerReports(model.Config, pruned.Config, plan));
        }, cancellationToken);

        var w = context.Console.Out;
        if (options.Json)
        {
            JsonOutput.Write(w, report);
            await w.FlushAsync(cancellationToken);
            return ExitCodes.Ok;
        }
        var inv = CultureInfo.InvariantCulture;
        foreach (var l in report.Layers)
            await w.WriteLineAsync(string.Format(inv, "blk.{0,-3} (was {1,3})  heads {2,4}/{3,-4} kv {4,4}/{5,-4} ffn {6,6}/{7}",
                l.Layer, l.SourceLayer, l.Heads, l.SourceHeads, l.KvHeads, l.SourceKvHeads, l.FeedForward, l.SourceFeedForward));
        if (report.RemovedLayers.Count > 0)
            await w.WriteLineAsync("removed layers: " + string.Join(", ", report.RemovedLayers));
        await w.WriteLineAsync(string.Format(inv, "calibration: {0} sequences, {1:N0} tokens", report.CalibrationSamples, report.CalibrationTokens));
        await w.WriteLineAsync(string.Format(inv, "parameters: {0:N0} -> {1:N0} ({2:P2} removed), {3} --sparsity {4}",
            report.ParametersBefore, report.ParametersAfter, report.ParametersRemoved, report.Method, report.Sparsity));
        await w.WriteLineAsync(string.Format(inv, "wrote {0} ({1}, {2:N0} bytes)", report.Output, report.Format, report.Bytes));
        await w.FlushAsync(cancellationToken);
        return ExitCodes.Ok;
    }

    private static string UnitName(StructuredMethod m) => m switch
    {
        StructuredMethod.Heads => "KV-head groups",
        StructuredMethod.Channels => "FFN channels",
        _ => "layers",
    };

    /// <summary>The calibration text in the model's tokens (BOS added as the tokenizer does).</summary>
    private List<int> CalibrationTokens(Model model, List<string> texts)
    {
        if (model.Tokenizer is null)
            throw new BadInputException($"{options.ModelPath}: the model carries no tokenizer, so the calibration text cannot be tokenized");
        var tokenizer = Tokenizer.FromModel(model);
        var tokens = new List<int>();
        foreach (var t in texts) tokens.AddRange(tokenizer.Encode(t, addSpecial: true, parseSpecial: false));
        return tokens;
    }

    private static List<StructuredLayerReport> LayerReports(ModelConfig before, ModelConfig after, StructuredPlan plan)
    {
        var list = new List<StructuredLayerReport>();
        for (int l = 0, n = 0; l < plan.Layers.Count; l++)
        {
            if (!plan.Layers[l].Keep) continue;
            list.Add(new StructuredLayerReport(n, l, after.HeadsIn(n), before.HeadsIn(l), after.KvHeadsIn(n), before.KvHeadsIn(l),
                after.FeedForwardIn(n), before.FeedForwardIn(l)));
            n++;
        }
        return list;
    }

    private static string CheckFormat(string text)
    {
        string format = text.ToLowerInvariant();
        if (format is not ("gguf" or "hf" or "onnx")) throw new BadInputException($"--format: '{text}' is not one of gguf, hf, onnx");
        return format;
    }

    /// <summary>Writes the model in the chosen format; returns the path written and its size (the weights' files).</summary>
    private (string Path, long Bytes) WriteOutput(Model model, string format, IProgressTask writing, CancellationToken ct)
    {
        Action<int, int> step = (_, total) => writing.Increment(1.0 / total);
        switch (format)
        {
            case "gguf":
                {
                    var r = GgufExporter.Export(model, options.OutputPath, new GgufExportOptions { Overwrite = options.Force, TensorWritten = step }, ct);
                    return (r.Path, r.FileBytes);
                }
            case "hf":
                {
                    var h = HfExporter.Export(model, options.OutputPath, new HfExportOptions { Overwrite = options.Force, TensorWritten = step }, ct);
                    return (h.Folder, h.SafetensorsBytes);
                }
            default:
                {
                    var o = OnnxExporter.Export(model, options.OutputPath, new OnnxExportOptions { Overwrite = options.Force, TensorWritten = step }, ct);
                    long bytes = new FileInfo(o.ModelPath).Length;
                    var data = Path.Combine(o.Folder, OnnxExporter.ExternalDataFileName);
                    if (File.Exists(data)) bytes += new FileInfo(data).Length;
                    return (o.Folder, bytes);
                }
        }
    }

    /// <summary>Reports synchronously on the calibration thread.</summary>
    private sealed class CalibrationRelay(Action<CalibrationProgress> report) : IProgress<CalibrationProgress>
    {
        public void Report(CalibrationProgress value) => report(value);
    }
}
