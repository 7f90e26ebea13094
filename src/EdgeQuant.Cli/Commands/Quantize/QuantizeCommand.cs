using EdgeQuant.Cli.Framework;
using EdgeQuant.Cli.Framework.Progress;
using EdgeQuant.Compression.GgufQuant;
using EdgeQuant.Compression.Imatrix;
using EdgeQuant.Core.Errors;
using EdgeQuant.Core.Tensors;
using EdgeQuant.Export;
using Spectre.Console;

namespace EdgeQuant.Cli.Commands.Quantize;

/// <summary>The <c>--json</c> report of a quantization.</summary>
public sealed record QuantizeReport(string Output, string Source, string Type, long FileBytes, long SourceTensorBytes, long TensorBytes,
    double BitsPerWeight, int Fallbacks, double Seconds, string SourceSha256, string? Imatrix, string? CalibrationSha256,
    IReadOnlyList<QuantizeTensorReport> Tensors);

public sealed record QuantizeTensorReport(string Name, long[] Shape, string SourceType, string Type, long Bytes, bool Imatrix, string? Note);

/// <summary>Loads MODEL (and the imatrix), quantizes it with <see cref="GgufQuantizer"/> and prints what each tensor became.</summary>
public sealed class QuantizeCommand(CliContext context, QuantizeOptions options) : ICliCommand
{
    public async Task<int> ExecuteAsync(CancellationToken cancellationToken)
    {
        string format = options.Format.ToLowerInvariant();
        if (format == "onnx") return await new OnnxQuantizeCommand(context, options).ExecuteAsync(cancellationToken);
        if (format != "gguf") throw new BadInputException($"--format: '{options.Format}' is not one of gguf, onnx");
        if (QuantizeCommandDefinition.OnnxOnly.FirstOrDefault(options.Given.Contains) is { } onnxOption)
            throw new BadInputException($"{onnxOption} applies to --format onnx only");
        if (options.Type is null) throw new BadInputException("--type is required with --format gguf (e.g. --type Q4_K_M)");

        // Everything that can be refused without reading the model is checked first.
        var fileType = QuantFileTypes.Parse(options.Type);
        var policy = new QuantizationPolicyOptions
        {
            Pure = options.Pure,
            LeaveOutputTensor = options.LeaveOutputTensor,
            OutputTensorType = options.OutputTensorType is null ? null : QuantFileTypes.ParseTensorType(options.OutputTensorType, "--output-tensor-type"),
            TokenEmbeddingType = options.TokenEmbeddingType is null ? null : QuantFileTypes.ParseTensorType(options.TokenEmbeddingType, "--token-embedding-type"),
            Overrides = options.TensorTypes.Select(o => TensorTypeOverride.Parse(o)).ToList(),
        };
        if (options.Threads is < 0) throw new BadInputException($"--threads: {options.Threads} is negative");
        ExportPaths.CheckOutput(options.ModelPath, options.OutputPath, options.Force);
        if (options.ImatrixPath is { } ip && !File.Exists(ip)) throw new BadInputException($"{ip}: no such imatrix file");

        var result = await context.CreateProgress().Run((progress, ct) =>
        {
            var loading = progress.AddTask("loading model", 1);
            using var model = context.LoadModel(options.ModelPath, options.TokenizerPath);
            var imatrix = options.ImatrixPath is null ? null : ImportanceMatrix.Read(options.ImatrixPath);
            loading.Increment(1);
            var writing = progress.AddTask($"quantizing to {fileType.Name}", 1);
            return GgufQuantizer.Quantize(model, options.OutputPath, new GgufQuantizeOptions
            {
                FileType = fileType,
                Policy = policy,
                Imatrix = imatrix,
                ImatrixFile = options.ImatrixPath,
                Threads = options.Threads ?? 0,
                Overwrite = options.Force,
                AllowNonFinite = options.AllowNonFinite,
                AllowRequantize = options.AllowRequantize,
                TensorWritten = (_, total, t) =>
                {
                    writing.Description = $"quantizing to {fileType.Name}: {t.Name}";
                    writing.Increment(1.0 / total);
                },
            }, ct);
        }, cancellationToken);

        var report = new QuantizeReport(result.Path, options.ModelPath, fileType.Name, result.FileBytes, result.SourceTensorBytes,
            result.TensorBytes, Math.Round(result.BitsPerWeight, 4), result.Fallbacks, Math.Round(result.Elapsed.TotalSeconds, 3),
            result.SourceSha256, options.ImatrixPath, result.CalibrationSha256,
            result.Tensors.Select(t => new QuantizeTensorReport(t.Name, t.Shape, TensorTypes.Get(t.SourceType).Name, TensorTypes.Get(t.Type).Name,
                t.Bytes, t.UsedImatrix, t.Note)).ToList());
        if (options.Json)
        {
            JsonOutput.Write(context.Console.Out, report);
            await context.Console.Out.FlushAsync(cancellationToken);
            return ExitCodes.Ok;
        }
        context.WriteRendered(console =>
        {
            var table = new Table().Border(TableBorder.Simple);
            table.AddColumn("tensor");
            table.AddColumn("shape");
            table.AddColumn("from");
            table.AddColumn("to");
            table.AddColumn(new TableColumn("bytes").RightAligned());
            table.AddColumn("note");
            foreach (var t in report.Tensors)
                table.AddRow(Markup.Escape(t.Name), string.Join("x", t.Shape), t.SourceType, t.Type, t.Bytes.ToString("N0"),
                    Markup.Escape(string.Join("; ", new[] { t.Imatrix ? "imatrix" : null, t.Note }.Where(s => s is not null))));
            console.Write(table);
        });
        var types = report.Tensors.GroupBy(t => t.Type).OrderByDescending(g => g.Count()).Select(g => $"{g.Key} x{g.Count()}");
        await context.Console.Out.WriteLineAsync(
            $"wrote {report.Output} ({report.Type}: {report.FileBytes:N0} bytes, {report.BitsPerWeight:0.00} bits/weight; tensors {report.SourceTensorBytes:N0} -> {report.TensorBytes:N0} bytes; {string.Join(", ", types)}; {report.Seconds:0.0} s)");
        if (report.Fallbacks > 0)
            await context.Console.Out.WriteLineAsync($"{report.Fallbacks} tensor(s) used a fallback type (rows not a multiple of the block size)");
        await context.Console.Out.FlushAsync(cancellationToken);
        return ExitCodes.Ok;
    }
}
