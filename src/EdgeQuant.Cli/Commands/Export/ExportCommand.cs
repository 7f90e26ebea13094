using EdgeQuant.Cli.Framework;
using EdgeQuant.Cli.Framework.Progress;
using EdgeQuant.Core.Errors;
using EdgeQuant.Core.Tensors;
using EdgeQuant.Export;
using EdgeQuant.Export.Onnx;

namespace EdgeQuant.Cli.Commands.Export;

/// <summary>The <c>--json</c> report of an export.</summary>
public sealed record ExportReport(string Format, string Output, string Source, int Tensors, long Bytes, string? SourceSha256, string? FileType);

/// <summary>Loads MODEL and writes it with <see cref="GgufExporter"/> or <see cref="HfExporter"/>.</summary>
public sealed class ExportCommand(CliContext context, ExportOptions options) : ICliCommand
{
    public async Task<int> ExecuteAsync(CancellationToken cancellationToken)
    {
        string format = options.Format.ToLowerInvariant();
        if (format is not ("gguf" or "hf" or "onnx"))
            throw new BadInputException($"--format: '{options.Format}' is not one of gguf, hf, onnx");
        if (format == "onnx" && options.OutType is not null)
            throw new BadInputException("--outtype applies to gguf and hf; ONNX export takes --dtype");
        if (format != "onnx" && options.Dtype is not null)
            throw new BadInputException("--dtype applies to --format onnx; gguf and hf take --outtype");
        OnnxWeightType weightType = options.Dtype?.ToLowerInvariant() switch
        {
            null or "fp32" => OnnxWeightType.Float32,
            "fp16" => OnnxWeightType.Float16,
            _ => throw new BadInputException($"--dtype: '{options.Dtype}' is not one of fp32, fp16"),
        };
        if (options.KvCache is null) throw new BadInputException("--kv-cache and --no-kv-cache contradict each other; give one");
        if (format != "onnx" && options.KvCache is false) throw new BadInputException("--no-kv-cache applies to --format onnx");
        if (format != "onnx" && options.FusedAttention) throw new BadInputException("--fused-attention applies to --format onnx");
        if (format != "onnx" && options.AttentionBlocks is not null) throw new BadInputException("--attention-blocks applies to --format onnx");
        OnnxExportOptions.CheckAttentionBlocks(options.AttentionBlocks, options.FusedAttention);
        TensorType? outType = options.OutType is null ? null : ExportTypes.Parse(options.OutType);
        // Checked before loading, so a refused output costs nothing; the exporters check again.
        ExportPaths.CheckOutput(options.ModelPath, options.OutputPath, options.Force);

        var report = await context.CreateProgress().Run((progress, ct) =>
        {
            var loading = progress.AddTask("loading model", 1);
            using var model = context.LoadModel(options.ModelPath, options.TokenizerPath);
            loading.Increment(1);
            var writing = progress.AddTask($"writing {format}", 1);
            Action<int, int> step = (_, total) => writing.Increment(1.0 / total);
            if (format == "onnx")
            {
                var o = OnnxExporter.Export(model, options.OutputPath,
                    new OnnxExportOptions
                    {
                        Overwrite = options.Force, AllowNonFinite = options.AllowNonFinite, TensorWritten = step,
                        WeightType = weightType, KvCache = options.KvCache.Value, FusedAttention = options.FusedAttention,
                        AttentionBlocks = options.AttentionBlocks ?? OnnxExportOptions.DefaultAttentionBlocks,
                    }, ct);
                return new ExportReport("onnx", o.Folder, options.ModelPath, o.WeightCount, o.WeightBytes, null, weightType == OnnxWeightType.Float16 ? "F16" : "F32");
            }
            if (format == "gguf")
            {
                var r = GgufExporter.Export(model, options.OutputPath,
                    new GgufExportOptions { OutType = outType, Overwrite = options.Force, AllowNonFinite = options.AllowNonFinite, TensorWritten = step }, ct);
                return new ExportReport("gguf", r.Path, options.ModelPath, r.TensorCount, r.FileBytes, r.SourceSha256,
                    r.FileType switch { 0 => "F32", 1 => "F16", 32 => "BF16", var x => x.ToString() });
            }
            var h = HfExporter.Export(model, options.OutputPath,
                new HfExportOptions { OutType = outType, Overwrite = options.Force, AllowNonFinite = options.AllowNonFinite, TensorWritten = step }, ct);
            return new ExportReport("hf", h.Folder, options.ModelPath, h.TensorCount, h.SafetensorsBytes, null, null);
        }, cancellationToken);

        var output = context.Console.Out;
        if (options.Json) JsonOutput.Write(output, report);
        else
        {
            var type = report.FileType is null ? "" : $", {report.FileType}";
            await output.WriteLineAsync($"wrote {report.Output} ({report.Format}{type}, {report.Tensors} tensors, {report.Bytes:N0} bytes)");
        }
        await output.FlushAsync(cancellationToken);
        return ExitCodes.Ok;
    }
}
