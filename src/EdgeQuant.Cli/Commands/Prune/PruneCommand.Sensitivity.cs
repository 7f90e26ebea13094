using System.Globalization;
using EdgeQuant.Cli.Framework;
using EdgeQuant.Cli.Framework.Progress;
using EdgeQuant.Compression.OnnxQuant;
using EdgeQuant.Compression.Pruning;
using EdgeQuant.Core.Errors;
using EdgeQuant.Export;
using EdgeQuant.Models;
using EdgeQuant.Models.Tokenizers;

namespace EdgeQuant.Cli.Commands.Prune;

/// <summary>
/// <c>--sensitivity</c>, <c>--plan auto</c> and their options, as parsed. <see cref="Given"/> names the options the user
/// typed (calibration defaults differ from the other modes': sensitivity runs every unit over the sequences).
/// </summary>
public sealed record PruneSensitivityOptions(bool Measure, string? Plan, string? TargetParams, string? ReportPath, bool Uniform,
    IReadOnlySet<string> Given)
{
    public bool Active => Measure || Plan is not null;
}

/// <summary>The <c>--json</c> document of <c>--plan auto</c>.</summary>
public sealed record AutoPruneReport(string Output, string Format, string Source, string SensitivityReport, bool Uniform, long Target,
    long ParametersBefore, long ParametersAfter, double ParametersRemoved, double EstimatedKld, long Bytes, double Seconds,
    IReadOnlyList<int> RemovedLayers, IReadOnlyList<StructuredLayerReport> Layers, IReadOnlyList<string> Steps);

public sealed partial class PruneCommand
{
    /// <summary>Sensitivity defaults: every unit re-runs the calibration set, so it is kept short.</summary>
    private const int SensitivitySamples = 32, SensitivitySeqLen = 128, TableRows = 20;

    /// <summary>
    /// <c>--sensitivity</c>: measure every layer / KV-head group / FFN-channel level (<see cref="StructuredSensitivity"/>)
    /// and write the ranked report (<c>-o</c>, JSON). <c>--plan auto --target-params N|P%</c>: plan from a report
    /// (<c>--sensitivity-report</c>, checked against MODEL) or from a fresh measurement (<c>--calib</c>) with
    /// <see cref="AutoPlanner"/>, then write the pruned model (<see cref="StructuredPruner"/>).
    /// </summary>
    private async Task<int> ExecuteSensitivityAsync(PruneSensitivityOptions s, CancellationToken cancellationToken)
    {
        var given = s.Given;
        foreach (var (name, allowed) in new[] { ("--method", false), ("--sparsity", false), ("--pattern", false), ("--global", false), ("--exclude", false), ("--sequential", false) })
            if (!allowed && given.Contains(name))
                throw new BadInputException($"{name} does not apply to {(s.Plan is null ? "--sensitivity" : "--plan auto")} (it measures and removes heads, channels and layers itself)");
        if (s.Measure && s.Plan is not null)
            throw new BadInputException("--sensitivity writes a report and --plan auto a model: run them separately (--plan auto --calib measures on the way)");
        if (s.Plan is { } plan && !plan.Equals("auto", StringComparison.OrdinalIgnoreCase))
            throw new BadInputException($"--plan: '{plan}' is not 'auto'");
        if (s.Measure && (s.TargetParams is not null || s.Uniform))
            throw new BadInputException("--target-params and --uniform apply to --plan auto");
        if (s.Measure && s.ReportPath is not null)
            throw new BadInputException("--sensitivity writes its report to -o; --sensitivity-report is what --plan auto reads");
        if (s.Plan is not null)
        {
            if (s.TargetParams is null) throw new BadInputException("--plan auto needs --target-params N (parameters) or P% (share of the parameters to remove)");
            if (string.IsNullOrEmpty(options.OutputPath)) throw new BadInputException("--plan auto needs -o OUT (the pruned model)");
            if (s.ReportPath is not null && options.Calib.Length > 0)
                throw new BadInputException("--plan auto takes either --sensitivity-report F.json or --calib FILES (to measure), not both");
            if (s.ReportPath is null && options.Calib.Length == 0)
                throw new BadInputException("--plan auto needs a sensitivity report (--sensitivity-report F.json) or calibration text to measure one (--calib FILES)");
            if (s.ReportPath is not null && !File.Exists(s.ReportPath)) throw new BadInputException($"{s.ReportPath}: no such sensitivity report (--sensitivity-report)");
        }
        else if (options.Calib.Length == 0) throw new BadInputException("--sensitivity needs calibration text: pass --calib FILES");
        string format = CheckFormat(options.Format);
        if (options.CalibSamples < 1) throw new BadInputException($"--calib-samples: {options.CalibSamples} must be positive");
        if (options.CalibSeqLen is < 2) throw new BadInputException($"--calib-seq-len: {options.CalibSeqLen} is too short (at least 2 tokens)");
        if (options.Threads is < 1 or > 1024) throw new BadInputException($"--threads: {options.Threads} is outside 1..1024");
        if (!File.Exists(options.ModelPath) && !Directory.Exists(options.ModelPath))
            throw new BadInputException($"{options.ModelPath}: no such model file or folder");
        if (s.Plan is not null) ExportPaths.CheckOutput(options.ModelPath, options.OutputPath, options.Force);
        else if (!string.IsNullOrEmpty(options.OutputPath)) CheckReportOutput(options.OutputPath);
        var reportFile = s.ReportPath is null ? null : SensitivityReport.Read(s.ReportPath);

        int threads = options.Threads ?? Environment.ProcessorCount;
        var started = DateTime.UtcNow;
        var result = await context.CreateProgress().Run((progress, ct) =>
        {
            var loading = progress.AddTask("loading model", 1);
            using var model = context.LoadModel(options.ModelPath, options.TokenizerPath);
            loading.Increment(1);
            SensitivityReport report;
            if (reportFile is not null)
            {
                reportFile.CheckModel(model, s.ReportPath!);
                report = reportFile;
            }
            else report = MeasureSensitivity(model, given, threads, progress, ct);
            if (s.Plan is null)
            {
                if (!string.IsNullOrEmpty(options.OutputPath)) report.Write(options.OutputPath);
                return (object)report;
            }

            long target = AutoPlanner.ParseTarget(s.TargetParams!, model.ParameterCount);
            var planned = AutoPlanner.PlanWithDetails(model, report, target,
                new AutoPlanOptions { Uniform = s.Uniform, ReportSource = s.ReportPath ?? "the measured sensitivity" });
            var pruned = StructuredPruner.Apply(model, planned.Plan);
            var writing = progress.AddTask($"writing {format}", 1);
            var (written, bytes) = WriteOutput(pruned, format, writing, ct);
            var p = planned.Plan;
            return new AutoPruneReport(written, format, options.ModelPath, s.ReportPath ?? "(measured)", s.Uniform, target, model.ParameterCount,
                pruned.ParameterCount, Math.Round(1 - (double)pruned.ParameterCount / model.ParameterCount, 6), planned.EstimatedKld, bytes,
                Math.Round((DateTime.UtcNow - started).TotalSeconds, 3), Enumerable.Range(0, p.Layers.Count).Where(l => !p.Layers[l].Keep).ToList(),
                LayerReports(model.Config, pruned.Config, p), planned.Steps);
        }, cancellationToken);

        var w = context.Console.Out;
        var inv = CultureInfo.InvariantCulture;
        if (result is SensitivityReport r)
        {
            if (options.Json) await w.WriteLineAsync(r.ToJson());
            else
            {
                await w.WriteAsync(r.ToMarkdown(TableRows));
                await w.WriteLineAsync(string.Format(inv, "{0} units measured in {1:F1} s", r.Units.Count, r.Seconds));
                if (!string.IsNullOrEmpty(options.OutputPath)) await w.WriteLineAsync($"wrote {Path.GetFullPath(options.OutputPath)}");
            }
            await w.FlushAsync(cancellationToken);
            return ExitCodes.Ok;
        }
        var a = (AutoPruneReport)result;
        if (options.Json)
        {
            JsonOutput.Write(w, a);
            return ExitCodes.Ok;
        }
        foreach (var step in a.Steps) await w.WriteLineAsync("removed " + step);
        foreach (var l in a.Layers)
            await w.WriteLineAsync(string.Format(inv, "blk.{0,-3} (was {1,3})  heads {2,4}/{3,-4} kv {4,4}/{5,-4} ffn {6,6}/{7}",
                l.Layer, l.SourceLayer, l.Heads, l.SourceHeads, l.KvHeads, l.SourceKvHeads, l.FeedForward, l.SourceFeedForward));
        if (a.RemovedLayers.Count > 0) await w.WriteLineAsync("removed layers: " + string.Join(", ", a.RemovedLayers));
        await w.WriteLineAsync(string.Format(inv, "parameters: {0:N0} -> {1:N0} ({2:P2} removed; target {3:N0}), estimated KLD {4:G4} (sum of the units' measured KLDs)",
            a.ParametersBefore, a.ParametersAfter, a.ParametersRemoved, a.Target, a.EstimatedKld));
        await w.WriteLineAsync(string.Format(inv, "wrote {0} ({1}, {2:N0} bytes)", a.Output, a.Format, a.Bytes));
        await w.FlushAsync(cancellationToken);
        return ExitCodes.Ok;
    }

    private SensitivityReport MeasureSensitivity(Model model, IReadOnlySet<string> given, int threads, IProgressReporter progress, CancellationToken ct)
    {
        if (model.Tokenizer is null)
            throw new BadInputException($"{options.ModelPath}: the model carries no tokenizer, so the calibration text cannot be tokenized");
        var calibOptions = new CalibrationDataOptions
        {
            Samples = given.Contains("--calib-samples") ? options.CalibSamples : SensitivitySamples,
            SequenceLength = options.CalibSeqLen ?? Math.Min(SensitivitySeqLen, model.Config.ContextLength),
        };
        if (calibOptions.SequenceLength > model.Config.ContextLength)
            throw new BadInputException($"--calib-seq-len: {calibOptions.SequenceLength} exceeds the model's context length {model.Config.ContextLength}");
        var calib = CalibrationData.Load(options.Calib, Tokenizer.FromModel(model), calibOptions, ct);
        IProgressTask? dense = null, units = null;
        var gate = new object();
        // Reports arrive from the measuring threads; the tasks are created once, under a lock.
        var relay = new SensitivityRelay(e =>
        {
            IProgressTask task;
            lock (gate) task = e.Stage == "units" ? units ??= progress.AddTask("removing each unit", e.Total) : dense ??= progress.AddTask("dense reference", 1);
            task.Increment(1);
        });
        return StructuredSensitivity.Measure(model, calib.Sequences, new SensitivityOptions { Threads = threads, CalibrationSha256 = calib.Sha256 }, relay, ct);
    }

    /// <summary>The report goes to a JSON file: refuse a folder or the model itself before any work.</summary>
    private void CheckReportOutput(string path)
    {
        if (Directory.Exists(path)) throw new BadInputException($"{path}: -o is a folder; --sensitivity writes a JSON file");
        if (Path.GetFullPath(path) == Path.GetFullPath(options.ModelPath)) throw new BadInputException($"{path}: -o would overwrite the model");
        if (File.Exists(path) && !options.Force) throw new BadInputException($"{path}: exists (pass --force to replace it)");
        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is not null && !Directory.Exists(dir)) throw new BadInputException($"{path}: the folder {dir} does not exist");
    }

    /// <summary>Reports synchronously on the measuring threads (IProgressTask.Increment is thread-safe).</summary>
    private sealed class SensitivityRelay(Action<SensitivityProgress> report) : IProgress<SensitivityProgress>
    {
        public void Report(SensitivityProgress value) => report(value);
    }
}
