using System.Globalization;
using EdgeQuant.Cli.Framework;
using EdgeQuant.Cli.Framework.Progress;
using EdgeQuant.Core.Errors;
using EdgeQuant.Runtimes.Evaluation;
using EdgeQuant.Runtimes.LlamaCpp;
using EdgeQuant.Runtimes.LlamaCpp.Native;

namespace EdgeQuant.Cli.Commands.Eval;

/// <summary>
/// Opens the model in the chosen runtime, tokenizes the text with that runtime's tokenizer, and measures perplexity
/// with <see cref="Perplexity"/> (the same protocol code for every runtime). The figure goes to stdout; progress to
/// stderr when it is a terminal.
/// </summary>
public sealed class EvalCommand(CliContext context, EvalOptions options) : ICliCommand
{
    public async Task<int> ExecuteAsync(CancellationToken cancellationToken)
    {
        if (options.Context < 4) throw new BadInputException($"--ctx: {options.Context} is too short (at least 4; N/2 - 1 tokens are scored per chunk)");
        if (options.Chunks is < 1) throw new BadInputException($"--chunks: {options.Chunks} must be positive");
        if (options.Threads is < 1 or > 1024) throw new BadInputException($"--threads: {options.Threads} is outside 1..1024");
        if (!File.Exists(options.TextPath)) throw new BadInputException($"{options.TextPath}: no such text file (--text)");
        if (!File.Exists(options.ModelPath) && !Directory.Exists(options.ModelPath))
            throw new BadInputException($"{options.ModelPath}: no such model file or folder");
        if (options.TokenizerPath is { } tok && !File.Exists(tok)) throw new BadInputException($"{tok}: no such tokenizer file (--tokenizer)");
        var runtime = options.Runtime ?? EvalRuntimes.DefaultFor(options.ModelPath);
        var text = Perplexity.PrepareText(await File.ReadAllTextAsync(options.TextPath, cancellationToken));
        var settings = new EvalRuntimes.Settings(options.Context, options.Threads ?? Environment.ProcessorCount, options.TokenizerPath, options.EngineExact);
        var (previousSink, previousLevel) = (LlamaLog.Sink, LlamaLog.MinimumLevel);
        if (options.Verbose)
        {
            // llama.cpp is quiet by default; --verbose shows its warnings and errors (they explain a failed load).
            var stderr = context.Console.Error;
            LlamaLog.MinimumLevel = GgmlLogLevel.Warn;
            LlamaLog.Sink = (level, line) => { lock (stderr) stderr.WriteLine($"llama.cpp: {line}"); };
        }
        PerplexityResult result;
        string runnerName;
        try
        {
            (result, runnerName) = await context.CreateProgress().Run((progress, ct) =>
            {
                var loading = progress.AddTask("loading model", 1);
                using var opened = EvalRuntimes.Open(runtime, options.ModelPath, text, settings, ct);
                loading.Increment(1);
                int chunks = opened.Tokens.Length / options.Context;
                if (options.Chunks is { } max) chunks = Math.Min(chunks, max);
                var scoring = progress.AddTask("perplexity", Math.Max(chunks, 1));
                var r = Perplexity.Evaluate(opened.Runner, opened.Tokens, opened.Bos, new PerplexityOptions(options.Context, options.Chunks),
                    new ChunkProgress(scoring), ct);
                return (r, opened.Runner.Name);
            }, cancellationToken);
        }
        finally
        {
            // The log sink is process-wide; an in-process caller (tests, a pipeline) must not inherit ours.
            (LlamaLog.Sink, LlamaLog.MinimumLevel) = (previousSink, previousLevel);
        }

        var report = new EvalReport(result.Perplexity, result.Uncertainty, result.ScoredTokens, result.Chunks, result.TokensPerSecond,
            options.ModelPath, options.TextPath, runtime, runnerName, result.ContextLength, result.TextTokens, result.MeanNll,
            result.Elapsed.TotalSeconds);
        if (options.Json)
        {
            JsonOutput.Write(context.Console.Out, report);
            return ExitCodes.Ok;
        }
        var o = context.Console.Out;
        var inv = CultureInfo.InvariantCulture;
        await o.WriteLineAsync(string.Format(inv, "PPL = {0:F4} ± {1:F4}", report.Ppl, report.PplUnc));
        await o.WriteLineAsync(string.Format(inv, "scored {0} tokens in {1} chunks of {2} ({3} tokens in the text)",
            report.NScored, report.NChunks, report.Ctx, report.NTokens));
        await o.WriteLineAsync(string.Format(inv, "runtime {0}, {1:F0} tokens/s, {2:F1} s", report.RuntimeName, report.TokensPerSecond, report.ElapsedSeconds));
        await o.FlushAsync(cancellationToken);
        return ExitCodes.Ok;
    }

    private sealed class ChunkProgress(IProgressTask task) : IProgress<PerplexityProgress>
    {
        public void Report(PerplexityProgress value) => task.Increment(1);
    }
}
