using System.Globalization;
using EdgeQuant.Cli.Framework;
using EdgeQuant.Cli.Framework.Progress;
using EdgeQuant.Compression.Imatrix;
using EdgeQuant.Core.Errors;
using EdgeQuant.Export;
using EdgeQuant.Models.Tokenizers;
using EdgeQuant.Runtimes.Evaluation;

namespace EdgeQuant.Cli.Commands.Imatrix;

/// <summary>The <c>--json</c> report of an imatrix run.</summary>
public sealed record ImatrixReport(string Output, string Format, string Model, string Text, int Tensors, int Chunks, int ChunkSize,
    int TextTokens, long Bytes, string Sha256, double? Ppl, double ElapsedSeconds);

/// <summary>
/// Tokenizes the text with the model's tokenizer, runs <see cref="ImatrixRunner"/> on the reference engine and writes
/// the matrix (temporary file, renamed at the end: an interrupted run leaves nothing).
/// </summary>
public sealed class ImatrixCommand(CliContext context, ImatrixOptions options) : ICliCommand
{
    public async Task<int> ExecuteAsync(CancellationToken cancellationToken)
    {
        var format = options.Format.ToLowerInvariant() switch
        {
            "gguf" => ImatrixFormat.Gguf,
            "dat" => ImatrixFormat.Dat,
            _ => throw new BadInputException($"--format: '{options.Format}' is not one of gguf, dat"),
        };
        if (options.Context < 2) throw new BadInputException($"--ctx: {options.Context} is too short (at least 2 tokens per chunk)");
        if (options.Chunks is < 1) throw new BadInputException($"--chunks: {options.Chunks} must be positive");
        if (options.Threads is < 1 or > 1024) throw new BadInputException($"--threads: {options.Threads} is outside 1..1024");
        if (!File.Exists(options.TextPath)) throw new BadInputException($"{options.TextPath}: no such text file (--text)");
        if (!File.Exists(options.ModelPath) && !Directory.Exists(options.ModelPath))
            throw new BadInputException($"{options.ModelPath}: no such model file or folder");
        if (options.TokenizerPath is { } tok && !File.Exists(tok)) throw new BadInputException($"{tok}: no such tokenizer file (--tokenizer)");
        if (string.Equals(Path.GetFullPath(options.OutputPath), Path.GetFullPath(options.TextPath), StringComparison.Ordinal))
            throw new BadInputException($"{options.OutputPath}: the output is the --text file; choose another output path");
        ExportPaths.CheckOutput(options.ModelPath, options.OutputPath, options.Force);

        var text = Perplexity.PrepareText(await File.ReadAllTextAsync(options.TextPath, cancellationToken));
        var started = DateTime.UtcNow;
        var (matrix, tokenCount, ppl) = await context.CreateProgress().Run((progress, ct) =>
        {
            var loading = progress.AddTask("loading model", 1);
            using var model = context.LoadModel(options.ModelPath, options.TokenizerPath);
            if (model.Tokenizer is null)
                throw new BadInputException($"{options.ModelPath}: the model carries no tokenizer, so the text cannot be tokenized");
            // llama-imatrix: common_tokenize(text, add_special = true, parse_special = false).
            var tokens = Tokenizer.FromModel(model).Encode(text, addSpecial: true, parseSpecial: false);
            loading.Increment(1);
            if (tokens.Length < 2L * options.Context)
                throw new BadInputException($"{options.TextPath}: tokenizes to {tokens.Length} tokens; --ctx {options.Context} needs at least {2L * options.Context} (two chunks)");
            int chunks = Math.Min(tokens.Length / options.Context, options.Chunks ?? int.MaxValue);
            var task = progress.AddTask("imatrix", chunks);
            var last = new ImatrixProgress();
            var report = new Progress(p =>
            {
                last = p;
                task.Increment(1);
                if (options.Perplexity) task.Description = string.Format(CultureInfo.InvariantCulture, "imatrix (PPL {0:F4})", p.Perplexity);
            });
            var m = ImatrixRunner.Collect(model, tokens, new ImatrixRunOptions
            {
                Context = options.Context,
                Chunks = options.Chunks,
                Threads = options.Threads ?? Environment.ProcessorCount,
                ProcessOutput = options.ProcessOutput,
                ComputePerplexity = options.Perplexity,
                Datasets = [options.TextPath],
            }, report, ct);
            ct.ThrowIfCancellationRequested();
            m.Write(options.OutputPath, format);
            return (m, tokens.Length, options.Perplexity ? last.Perplexity : (double?)null);
        }, cancellationToken);

        var bytes = new FileInfo(options.OutputPath).Length;
        var result = new ImatrixReport(options.OutputPath, format == ImatrixFormat.Gguf ? "gguf" : "dat", options.ModelPath, options.TextPath,
            matrix.TensorNames.Count, matrix.ChunkCount, matrix.ChunkSize, tokenCount, bytes,
            Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(options.OutputPath))), ppl,
            (DateTime.UtcNow - started).TotalSeconds);
        var o = context.Console.Out;
        if (options.Json)
        {
            JsonOutput.Write(o, result);
            return ExitCodes.Ok;
        }
        var inv = CultureInfo.InvariantCulture;
        await o.WriteLineAsync(string.Format(inv, "wrote {0} ({1}, {2} tensors, {3} chunks of {4} tokens, {5:N0} bytes)",
            result.Output, result.Format, result.Tensors, result.Chunks, result.ChunkSize, result.Bytes));
        if (result.Ppl is { } p) await o.WriteLineAsync(string.Format(inv, "PPL = {0:F4} over the second half of each chunk", p));
        await o.WriteLineAsync($"sha256 {result.Sha256}");
        await o.FlushAsync(cancellationToken);
        return ExitCodes.Ok;
    }

    /// <summary>Reports synchronously on the collecting thread (System.Progress would post to the thread pool).</summary>
    private sealed class Progress(Action<ImatrixProgress> report) : IProgress<ImatrixProgress>
    {
        public void Report(ImatrixProgress value) => report(value);
    }
}
