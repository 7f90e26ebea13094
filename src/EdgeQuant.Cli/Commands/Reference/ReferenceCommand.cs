using System.Globalization;
using EdgeQuant.Cli.Commands.Eval;
using EdgeQuant.Cli.Framework;
using EdgeQuant.Cli.Framework.Progress;
using EdgeQuant.Core.Errors;
using EdgeQuant.Runtimes.Evaluation;
using EdgeQuant.Verification.Reference;

namespace EdgeQuant.Cli.Commands.Reference;

/// <summary>What <c>reference --json</c> prints.</summary>
/// <param name="Mode"><c>full</c> or <c>top_k</c>.</param>
/// <param name="BytesPerScoredToken">File size over scored positions.</param>
/// <param name="Ppl">The reference model's own perplexity on the stored positions (from its float logits).</param>
public sealed record ReferenceCommandReport(
    string Output,
    string Model,
    string Text,
    string Mode,
    int? TopK,
    int NCtx,
    int NChunks,
    long NScored,
    int NVocab,
    int NTokens,
    long FileBytes,
    double BytesPerScoredToken,
    double Ppl,
    double PplUnc,
    string ModelSha256,
    string TextSha256,
    EvalRuntime Runtime,
    string RuntimeName,
    double ElapsedSeconds);

/// <summary>
/// Opens the reference model in the chosen runtime (the same choice as <c>eval</c>), tokenizes the text as
/// llama-perplexity does, and writes the <c>.eqref</c> file through <see cref="ReferenceBuilder"/>.
/// </summary>
public sealed class ReferenceCommand(CliContext context, ReferenceOptions options) : ICliCommand
{
    public async Task<int> ExecuteAsync(CancellationToken cancellationToken)
    {
        if (options.Context < 4) throw new BadInputException($"--ctx: {options.Context} is too short (at least 4; n_ctx/2 - 1 tokens are scored per chunk)");
        if (options.Chunks is < 1) throw new BadInputException($"--chunks: {options.Chunks} must be positive");
        if (options.TopK is < 1) throw new BadInputException($"--top-k: {options.TopK} must be positive");
        if (options.Threads is < 1 or > 1024) throw new BadInputException($"--threads: {options.Threads} is outside 1..1024");
        if (!File.Exists(options.TextPath)) throw new BadInputException($"{options.TextPath}: no such text file (--text)");
        if (!File.Exists(options.ModelPath) && !Directory.Exists(options.ModelPath))
            throw new BadInputException($"{options.ModelPath}: no such model file or folder");
        if (options.TokenizerPath is { } tok && !File.Exists(tok)) throw new BadInputException($"{tok}: no such tokenizer file (--tokenizer)");
        var output = Path.GetFullPath(options.OutputPath);
        // Inputs are never modified: refuse an output that would overwrite one of them.
        foreach (var input in new[] { options.ModelPath, options.TextPath, options.TokenizerPath })
        {
            if (input is not null && string.Equals(Path.GetFullPath(input), output, StringComparison.Ordinal))
                throw new BadInputException($"{options.OutputPath}: the output would overwrite the input {input}");
        }
        if (Directory.Exists(output)) throw new BadInputException($"{options.OutputPath}: is a folder; --output names the reference file");
        var outputDir = Path.GetDirectoryName(output)!;
        if (!Directory.Exists(outputDir)) throw new BadInputException($"{options.OutputPath}: folder {outputDir} does not exist");

        var runtime = options.Runtime ?? EvalRuntimes.DefaultFor(options.ModelPath);
        var text = Perplexity.PrepareText(await File.ReadAllTextAsync(options.TextPath, cancellationToken));
        var settings = new EvalRuntimes.Settings(options.Context, options.Threads ?? Environment.ProcessorCount, options.TokenizerPath);

        var (result, runnerName) = await context.CreateProgress().Run((progress, ct) =>
        {
            var hashing = progress.AddTask("hashing model", 1);
            var modelSha = ModelHash.Compute(options.ModelPath, ct);
            hashing.Increment(1);
            var loading = progress.AddTask("loading model", 1);
            using var opened = EvalRuntimes.Open(runtime, options.ModelPath, text, settings, ct);
            loading.Increment(1);
            int chunks = opened.Tokens.Length / options.Context;
            if (options.Chunks is { } max) chunks = Math.Min(chunks, max);
            var writing = progress.AddTask("reference logits", Math.Max(chunks, 1));
            var r = ReferenceBuilder.Build(opened.Runner, opened.Tokens, opened.Bos,
                new ReferenceBuildOptions(options.Context, options.Chunks, options.TopK, ModelName(options.ModelPath), modelSha, ModelHash.OfText(text)),
                output, new ChunkProgress(writing), ct);
            return (r, opened.Runner.Name);
        }, cancellationToken);

        var h = result.Header;
        var report = new ReferenceCommandReport(result.Path, options.ModelPath, options.TextPath, h.Mode == ReferenceMode.Full ? "full" : "top_k",
            h.Mode == ReferenceMode.TopK ? h.TopK : null, h.NCtx, h.NChunks, h.ScoredPositions, h.NVocab, (int)h.TextTokens, result.FileBytes,
            result.BytesPerScoredToken, result.Perplexity, result.PerplexityUnc, h.ModelSha256Hex, h.TextSha256Hex, runtime, runnerName,
            result.Elapsed.TotalSeconds);
        if (options.Json)
        {
            JsonOutput.Write(context.Console.Out, report);
            return ExitCodes.Ok;
        }
        var o = context.Console.Out;
        var inv = CultureInfo.InvariantCulture;
        await o.WriteLineAsync($"wrote {report.Output}");
        await o.WriteLineAsync(string.Format(inv, "{0} mode{1}: {2} chunks of {3}, {4} scored positions, vocabulary {5}",
            report.Mode == "full" ? "full (16-bit log-probs)" : "top-K", report.TopK is { } k ? $" (K = {k})" : "", report.NChunks, report.NCtx,
            report.NScored, report.NVocab));
        await o.WriteLineAsync(string.Format(inv, "{0:N0} bytes, {1:F1} bytes per scored token", report.FileBytes, report.BytesPerScoredToken));
        await o.WriteLineAsync(string.Format(inv, "reference PPL = {0:F4} ± {1:F4} ({2}, {3:F1} s)", report.Ppl, report.PplUnc, report.RuntimeName, report.ElapsedSeconds));
        await o.FlushAsync(cancellationToken);
        return ExitCodes.Ok;
    }

    /// <summary>A file's name, or a folder's: reports show it; the full path stays on the machine that made it.</summary>
    private static string ModelName(string path) => Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(path)));

    private sealed class ChunkProgress(IProgressTask task) : IProgress<(int Done, int Total)>
    {
        public void Report((int Done, int Total) value) => task.Increment(1);
    }
}
