using System.Globalization;
using EdgeQuant.Cli.Framework;
using EdgeQuant.Cli.Framework.Progress;
using EdgeQuant.Compression.Imatrix;
using EdgeQuant.Compression.OnnxQuant;
using EdgeQuant.Core.Errors;
using EdgeQuant.Export;
using EdgeQuant.Export.Onnx;
using EdgeQuant.Export.Onnx.Quant;
using EdgeQuant.Models.Tokenizers;

namespace EdgeQuant.Cli.Commands.Quantize;

/// <summary>The <c>--json</c> report of <c>quantize --format onnx</c>.</summary>
public sealed record OnnxQuantizeReport(string Output, string Format, string Source, string Scheme, OnnxSchemeReport Options, long ModelBytes,
    long FolderBytes, long Parameters, int LinearLayers, int QuantizedLayers, IReadOnlyList<string> ExcludedLayers, double? SmoothAlpha,
    OnnxCalibrationReport? Calibration, string? Ranges, string? RangesOut, string? Imatrix, double Seconds);

/// <summary>The scheme's settings as used (null where the scheme has no such setting).</summary>
public sealed record OnnxSchemeReport(bool? PerChannel, bool? ReduceRange, string? CalibrationMethod, double? Percentile, bool? SymmetricActivations,
    int? BlockSize, bool? Symmetric, bool QuantizeLmHead, string? Exclude);

public sealed record OnnxCalibrationReport(IReadOnlyList<string> Files, string Sha256, int Samples, int SequenceLength, long SourceTokens, bool Overlapping, int Seed);

/// <summary>
/// <c>edgequant quantize MODEL --format onnx --scheme …</c>: refuses option combinations that make no sense before
/// reading anything, loads the model and the calibration text, and hands over to <see cref="OnnxQuantizer"/>.
/// </summary>
public sealed class OnnxQuantizeCommand(CliContext context, QuantizeOptions options) : ICliCommand
{
    public const int DefaultSamples = 128, DefaultSeqLen = 512;

    public async Task<int> ExecuteAsync(CancellationToken cancellationToken)
    {
        var o = options.Onnx;
        var given = options.Given;
        if (QuantizeCommandDefinition.GgufOnly.FirstOrDefault(given.Contains) is { } ggufOption)
            throw new BadInputException($"{ggufOption} applies to --format gguf only (--format onnx takes --scheme)");
        if (o.Scheme is null) throw new BadInputException("--scheme is required with --format onnx: int8-dynamic, int8-static or int4-weight");
        var scheme = OnnxQuantizer.ParseScheme(o.Scheme);
        string name = OnnxQuantizer.SchemeName(scheme);
        CheckCombinations(scheme, name, o, given);
        // Not given: the scheme's library default (int8-dynamic quantizes the head as ORT's quantize_dynamic does;
        // int8-static and int4-weight keep it float).
        bool quantizeHead = o.QuantizeLmHead ?? scheme switch
        {
            OnnxQuantScheme.Int8Dynamic => new Int8DynamicOptions().Layers.IncludeLmHead,
            OnnxQuantScheme.Int8Static => new Int8StaticOptions().Layers.IncludeLmHead,
            _ => new Int4WeightOptions().Layers.IncludeLmHead,
        };
        OnnxExportOptions.CheckAttentionBlocks(o.AttentionBlocks, o.FusedAttention);

        var method = o.CalibMethod is null ? CalibrationMethod.MinMax
            : ActivationRanges.ParseMethod(o.CalibMethod) ?? throw new BadInputException($"--calib-method: '{o.CalibMethod}' is not one of minmax, percentile, entropy, mse");
        if (o.Percentile is { } p && !(p > 0 && p <= 100)) throw new BadInputException($"--percentile: {p.ToString(CultureInfo.InvariantCulture)} is outside (0, 100]");
        if (o.SmoothAlpha is { } a && !(a >= 0 && a <= 1)) throw new BadInputException($"--smooth-alpha: {a.ToString(CultureInfo.InvariantCulture)} is outside [0, 1]");
        if (o.BlockSize is { } bs && bs is not (32 or 64 or 128)) throw new BadInputException($"--block-size: {bs} is not one of 32, 64, 128");
        if (options.Threads is < 1 or > 1024) throw new BadInputException($"--threads: {options.Threads} is outside 1..1024");
        var calibOptions = new CalibrationDataOptions
        {
            Samples = o.CalibSamples ?? DefaultSamples,
            SequenceLength = o.CalibSeqLen ?? DefaultSeqLen,
            Seed = o.Seed ?? 0,
            JsonlField = o.CalibField ?? "text",
        };
        if (o.Calib is { Length: > 0 } calib)
        {
            CalibrationData.Validate(calibOptions);
            CalibrationData.ResolveFiles(calib); // a missing file, an empty folder or a glob matching nothing: refused now
        }
        var selection = LayerSelection.Parse(o.Exclude, quantizeHead);
        if (!File.Exists(options.ModelPath) && !Directory.Exists(options.ModelPath))
            throw new BadInputException($"{options.ModelPath}: no such model file or folder");
        ExportPaths.CheckOutput(options.ModelPath, options.OutputPath, options.Force);
        if (o.RangesOut is { } ro && Path.GetFullPath(ro).TrimEnd(Path.DirectorySeparatorChar) == Path.GetFullPath(options.OutputPath).TrimEnd(Path.DirectorySeparatorChar))
            throw new BadInputException($"--ranges-out: {ro} is the model folder");
        var ranges = o.Ranges is null ? null : ActivationRanges.Read(o.Ranges);
        var imatrix = options.ImatrixPath is null ? null : ImportanceMatrix.Read(options.ImatrixPath);

        int threads = options.Threads ?? Environment.ProcessorCount;
        var report = await context.CreateProgress().Run((progress, ct) =>
        {
            var loading = progress.AddTask("loading model", 1);
            using var model = context.LoadModel(options.ModelPath, options.TokenizerPath);
            loading.Increment(1);

            CalibrationSet? set = null;
            if (o.Calib is { Length: > 0 } files)
            {
                var reading = progress.AddTask("reading calibration text", 1);
                var tokenizer = Tokenizer.FromModel(model);
                var co = o.CalibSeqLen is null ? calibOptions with { SequenceLength = Math.Min(DefaultSeqLen, model.Config.ContextLength) } : calibOptions;
                if (co.SequenceLength > model.Config.ContextLength)
                    throw new BadInputException($"--calib-seq-len: {co.SequenceLength} exceeds the model's context length {model.Config.ContextLength}");
                set = CalibrationData.Load(files, tokenizer, co, ct);
                reading.Increment(1);
                if (set.Overlapping)
                    context.Console.Error.WriteLine($"edgequant: warning: the calibration text has {set.SourceTokens:N0} tokens, fewer than --calib-samples {co.Samples} × --calib-seq-len {co.SequenceLength}; the sequences overlap");
            }

            var staticOptions = new Int8StaticOptions
            {
                PerChannel = !o.PerTensor,
                SymmetricActivations = ranges?.Symmetric ?? o.SymmetricActivations,
                ReduceRange = o.ReduceRange,
                Method = ranges?.Method ?? method,
                Percentile = ranges?.Percentile ?? o.Percentile ?? new Int8StaticOptions().Percentile,
                EntropyBins = ranges?.Bins ?? new Int8StaticOptions().EntropyBins,
                Layers = selection,
            };
            var quantizeOptions = new OnnxQuantizeOptions
            {
                Scheme = scheme,
                Dynamic = new Int8DynamicOptions { PerChannel = !o.PerTensor, ReduceRange = o.ReduceRange, Layers = selection },
                Static = staticOptions,
                Int4 = new Int4WeightOptions { BlockSize = o.BlockSize ?? 32, Symmetric = !o.Asymmetric, Importance = imatrix, Layers = selection },
                Calibration = set?.Sequences,
                CalibrationSha256 = set?.Sha256,
                SmoothAlpha = o.SmoothAlpha,
                Ranges = ranges,
                RangesOut = o.RangesOut,
                AllowRequantize = options.AllowRequantize,
                AllowNonFinite = options.AllowNonFinite,
                Overwrite = options.Force,
                Threads = threads,
                FusedAttention = o.FusedAttention,
                AttentionBlocks = o.AttentionBlocks ?? OnnxExportOptions.DefaultAttentionBlocks,
            };
            var tasks = new Dictionary<string, (IProgressTask Task, int Done)>(StringComparer.Ordinal);
            var relay = new Progress(e =>
            {
                if (!tasks.TryGetValue(e.Stage, out var t)) t = (progress.AddTask(e.Stage, Math.Max(1, e.Total)), 0);
                if (e.Done > t.Done) t.Task.Increment(e.Done - t.Done);
                tasks[e.Stage] = (t.Task, Math.Max(t.Done, e.Done));
            });
            var result = OnnxQuantizer.Quantize(model, options.OutputPath, quantizeOptions, relay, ct);
            var linear = OnnxQuantizer.LinearLayers(model).Count;
            return new OnnxQuantizeReport(result.Folder, "onnx", options.ModelPath, result.Scheme,
                new OnnxSchemeReport(
                    PerChannel: scheme == OnnxQuantScheme.Int4Weight ? null : !o.PerTensor,
                    ReduceRange: scheme == OnnxQuantScheme.Int4Weight ? null : o.ReduceRange,
                    CalibrationMethod: scheme == OnnxQuantScheme.Int8Static ? ActivationRanges.MethodName(staticOptions.Method) : null,
                    Percentile: scheme == OnnxQuantScheme.Int8Static && staticOptions.Method == CalibrationMethod.Percentile ? staticOptions.Percentile : null,
                    SymmetricActivations: scheme == OnnxQuantScheme.Int8Static ? staticOptions.SymmetricActivations : null,
                    BlockSize: scheme == OnnxQuantScheme.Int4Weight ? quantizeOptions.Int4.BlockSize : null,
                    Symmetric: scheme == OnnxQuantScheme.Int4Weight ? quantizeOptions.Int4.Symmetric : null,
                    QuantizeLmHead: quantizeHead, Exclude: o.Exclude),
                result.ModelFileBytes, result.FolderBytes, model.ParameterCount, linear, result.Quantized.Count, result.Excluded, o.SmoothAlpha,
                set is null ? null : new OnnxCalibrationReport(set.Files, set.Sha256, set.Sequences.Count, set.SequenceLength, set.SourceTokens, set.Overlapping, calibOptions.Seed),
                o.Ranges, result.RangesPath, options.ImatrixPath, Math.Round(result.Elapsed.TotalSeconds, 3));
        }, cancellationToken);

        var w = context.Console.Out;
        if (options.Json)
        {
            JsonOutput.Write(w, report);
            await w.FlushAsync(cancellationToken);
            return ExitCodes.Ok;
        }
        await w.WriteLineAsync($"wrote {report.Output} ({report.Scheme}{Settings(report.Options)}: model {report.ModelBytes:N0} bytes, folder {report.FolderBytes:N0} bytes; " +
            $"{report.QuantizedLayers} of {report.LinearLayers} linear layers quantized; {report.Seconds:0.0} s)");
        if (report.ExcludedLayers.Count > 0)
            await w.WriteLineAsync($"left FP32: {string.Join(", ", report.ExcludedLayers.Take(12))}{(report.ExcludedLayers.Count > 12 ? $", … ({report.ExcludedLayers.Count})" : "")}");
        if (report.Calibration is { } c)
            await w.WriteLineAsync($"calibration: {c.Samples} × {c.SequenceLength} tokens from {c.Files.Count} file(s), {c.SourceTokens:N0} tokens in all, sha256 {c.Sha256[..16]}…");
        if (report.SmoothAlpha is { } alpha) await w.WriteLineAsync($"SmoothQuant alpha {alpha.ToString(CultureInfo.InvariantCulture)}");
        if (report.RangesOut is { } r) await w.WriteLineAsync($"activation ranges written to {r}");
        await w.FlushAsync(cancellationToken);
        return ExitCodes.Ok;
    }

    private static string Settings(OnnxSchemeReport s)
    {
        var parts = new List<string>();
        if (s.CalibrationMethod is { } m) parts.Add(s.Percentile is { } p ? $"{m} {p.ToString(CultureInfo.InvariantCulture)}" : m);
        if (s.PerChannel is { } pc) parts.Add(pc ? "per-channel" : "per-tensor");
        if (s.SymmetricActivations is true) parts.Add("symmetric activations");
        if (s.ReduceRange is true) parts.Add("reduce-range");
        if (s.BlockSize is { } bs) parts.Add($"block {bs}");
        if (s.Symmetric is { } sym) parts.Add(sym ? "symmetric" : "asymmetric");
        if (s.QuantizeLmHead) parts.Add("LM head quantized");
        return parts.Count == 0 ? "" : ", " + string.Join(", ", parts);
    }

    /// <summary>Options that the scheme does not use, or that contradict each other, are refused rather than ignored.</summary>
    private static void CheckCombinations(OnnxQuantScheme scheme, string name, OnnxQuantizeCommandOptions o, IReadOnlySet<string> given)
    {
        void Only(string option, bool allowed, string why)
        {
            if (given.Contains(option) && !allowed) throw new BadInputException($"{option} {why}, not with --scheme {name}");
        }
        bool isStatic = scheme == OnnxQuantScheme.Int8Static, isInt4 = scheme == OnnxQuantScheme.Int4Weight;
        Only("--calib-method", isStatic, "chooses int8-static activation ranges");
        Only("--percentile", isStatic, "applies to int8-static --calib-method percentile");
        Only("--symmetric-activations", isStatic, "applies to int8-static activations");
        Only("--ranges", isStatic, "applies to int8-static");
        Only("--ranges-out", isStatic, "applies to int8-static");
        Only("--per-channel", !isInt4, "applies to INT8 weights (int4-weight uses blocks)");
        Only("--per-tensor", !isInt4, "applies to INT8 weights (int4-weight uses blocks)");
        Only("--reduce-range", !isInt4, "applies to INT8 weights");
        Only("--smooth-alpha", !isInt4, "migrates activation outliers for INT8 activations; int4-weight leaves activations float,");
        Only("--block-size", isInt4, "applies to int4-weight");
        Only("--asymmetric", isInt4, "applies to int4-weight");
        Only("--imatrix", isInt4, "weights int4-weight rounding");
        if (o.PerChannel && o.PerTensor) throw new BadInputException("--per-channel and --per-tensor contradict each other");
        if (given.Contains("--percentile") && !string.Equals(o.CalibMethod, "percentile", StringComparison.OrdinalIgnoreCase))
            throw new BadInputException("--percentile needs --calib-method percentile");
        bool hasCalib = o.Calib is { Length: > 0 };
        foreach (var option in new[] { "--calib-field", "--calib-samples", "--calib-seq-len", "--seed" })
            if (given.Contains(option) && !hasCalib) throw new BadInputException($"{option} needs --calib FILES");
        if (o.SmoothAlpha is not null && !hasCalib) throw new BadInputException("--smooth-alpha needs calibration text: pass --calib FILES");
        if (isStatic && !hasCalib && o.Ranges is null)
            throw new BadInputException("--scheme int8-static needs activation ranges: pass --calib FILES (or --ranges F.json from an earlier run)");
        if (isStatic && o.Ranges is not null)
        {
            if (given.Contains("--calib-method") || given.Contains("--percentile") || given.Contains("--symmetric-activations"))
                throw new BadInputException("--ranges fixes the calibration method and activation symmetry; drop --calib-method, --percentile and --symmetric-activations");
            if (hasCalib && o.SmoothAlpha is null)
                throw new BadInputException("--ranges replaces calibration: --calib is only needed with it for --smooth-alpha");
        }
        if (hasCalib && !isStatic && o.SmoothAlpha is null)
            throw new BadInputException($"--calib is used by int8-static and --smooth-alpha, not by --scheme {name}");
    }

    private sealed class Progress(Action<OnnxQuantizeProgress> report) : IProgress<OnnxQuantizeProgress>
    {
        private readonly Lock _lock = new();

        public void Report(OnnxQuantizeProgress value)
        {
            lock (_lock) report(value);
        }
    }
}
