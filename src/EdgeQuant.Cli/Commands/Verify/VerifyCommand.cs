using System.Globalization;
using EdgeQuant.Cli.Commands.Eval;
using EdgeQuant.Cli.Framework;
using EdgeQuant.Cli.Framework.Progress;
using EdgeQuant.Core.Errors;
using EdgeQuant.Models;
using EdgeQuant.Runtimes.LlamaCpp;
using EdgeQuant.Runtimes.LlamaCpp.Native;
using EdgeQuant.Verification.Accuracy;
using EdgeQuant.Verification.Gates;
using EdgeQuant.Verification.Latency;
using EdgeQuant.Verification.Reference;
using EdgeQuant.Verification.Reports;

namespace EdgeQuant.Cli.Commands.Verify;

/// <summary>
/// Runs the candidate on the reference's chunks in the chosen runtime (<see cref="DriftEvaluator"/>), measures its
/// latency (<see cref="LatencyProbe"/>, first, so its peak RSS is not the accuracy run's), checks the gates, and
/// writes the report. Exit 0 when every gate passes, 3 when one fails (named on stderr), 2 on bad input.
/// </summary>
public sealed class VerifyCommand(CliContext context, VerifyOptions options) : ICliCommand
{
    /// <summary>llama-bench's default generation length; enough samples for a p99 that means something.</summary>
    private const int DefaultLatencyTokens = 128;

    public async Task<int> ExecuteAsync(CancellationToken cancellationToken)
    {
        if (options.Threads is < 1 or > 1024) throw new BadInputException($"--threads: {options.Threads} is outside 1..1024");
        if (options.Chunks is < 1) throw new BadInputException($"--chunks: {options.Chunks} must be positive");
        if (options.LatencyTokens is < 1) throw new BadInputException($"--latency-tokens: {options.LatencyTokens} must be positive");
        if (!File.Exists(options.CandidatePath) && !Directory.Exists(options.CandidatePath))
            throw new BadInputException($"{options.CandidatePath}: no such model file or folder");
        if (!File.Exists(options.ReferencePath)) throw new BadInputException($"{options.ReferencePath}: no such reference file (--reference)");
        if (options.TokenizerPath is { } tok && !File.Exists(tok)) throw new BadInputException($"{tok}: no such tokenizer file (--tokenizer)");
        if (options.ReportDirectory is { } dir && File.Exists(dir)) throw new BadInputException($"{dir}: is a file; --report names a folder");
        var specs = options.Gates.Select(g => GateEvaluator.Spec(g.Gate, g.Threshold)).ToList();

        using var reference = ReferenceFile.Open(options.ReferencePath);
        var h = reference.Header;
        var kind = RuntimeKinds.Resolve(ToKind(options.Runtime), options.CandidatePath);
        int threads = options.Threads ?? Environment.ProcessorCount;
        int latencyTokens = options.LatencyTokens ?? Math.Min(DefaultLatencyTokens, h.NCtx / 2);
        if (!options.NoLatency && latencyTokens > h.NCtx - h.NCtx / 2)
            throw new BadInputException($"--latency-tokens: {latencyTokens} tokens after a prompt of {h.NCtx / 2} do not fit the reference's n_ctx of {h.NCtx}");

        var (previousSink, previousLevel) = (LlamaLog.Sink, LlamaLog.MinimumLevel);
        if (options.Verbose)
        {
            var stderr = context.Console.Error;
            LlamaLog.MinimumLevel = GgmlLogLevel.Warn;
            LlamaLog.Sink = (level, line) => { lock (stderr) stderr.WriteLine($"llama.cpp: {line}"); };
        }
        VerificationReport report;
        try
        {
            report = await context.CreateProgress().Run((progress, ct) => Measure(reference, kind, threads, latencyTokens, specs, progress, ct),
                cancellationToken);
        }
        finally
        {
            // The log sink is process-wide; an in-process caller (tests, a pipeline) must not inherit ours.
            (LlamaLog.Sink, LlamaLog.MinimumLevel) = (previousSink, previousLevel);
        }

        IReadOnlyList<string> written = [];
        if (options.ReportDirectory is { } reportDir)
            written = [VerificationReportJson.WriteFile(report, reportDir), .. ReportFiles.WriteRendered(report, reportDir)];

        var o = context.Console.Out;
        if (options.Json)
        {
            await o.WriteLineAsync(VerificationReportJson.Serialize(report));
            await o.FlushAsync(cancellationToken);
        }
        else
        {
            await WriteText(o, report, written, cancellationToken);
        }
        if (GateEvaluator.DescribeFailures(report.Gates) is { } failures)
        {
            await context.Console.Error.WriteLineAsync($"edgequant: verification failed: {failures}");
            return ExitCodes.GateFailed;
        }
        return ExitCodes.Ok;
    }

    private VerificationReport Measure(ReferenceFile reference, RuntimeKind kind, int threads, int latencyTokens, List<GateSpec> specs,
        IProgressReporter progress, CancellationToken ct)
    {
        var h = reference.Header;
        LatencyReport? latency = null;
        if (!options.NoLatency)
        {
            var probe = progress.AddTask("latency", 1);
            // The prompt is the reference's own first chunk (BOS first, as the accuracy run feeds it): real text, not random ids.
            var prompt = reference.ChunkTokens(0)[..(h.NCtx / 2)].ToArray();
            if (h.Bos is { } b) prompt[0] = b;
            var figures = LatencyProbe.Measure(options.CandidatePath, kind, new LatencyOptions
            {
                ContextSize = h.NCtx,
                DecodeTokens = latencyTokens,
                PromptTokens = prompt,
                Threads = threads,
            }, ct);
            latency = figures.ToReport();
            probe.Increment(1);
        }

        var loading = progress.AddTask("loading candidate", 1);
        var evalRuntime = ToEvalRuntime(kind);
        using var opened = EvalRuntimes.Open(evalRuntime, options.CandidatePath, "",
            new EvalRuntimes.Settings(h.NCtx, threads, options.TokenizerPath, options.EngineExact), ct);
        loading.Increment(1);
        if (opened.Bos != h.Bos)
            throw new BadInputException($"{options.CandidatePath}: its vocabulary {(opened.Bos is { } cb ? $"starts chunks with BOS {cb}" : "adds no BOS")} " +
                $"but the reference's {(h.Bos is { } rb ? $"starts them with BOS {rb}" : "adds none")}; the candidate must share the reference model's tokenizer");
        int chunks = Math.Min(h.NChunks, options.Chunks ?? int.MaxValue);
        var scoring = progress.AddTask("drift", chunks);
        var accuracy = DriftEvaluator.Evaluate(opened.Runner, reference, options.Chunks, new ChunkProgress(scoring), ct);

        var report = new VerificationReport
        {
            Candidate = new CandidateInfo(options.CandidatePath, FormatOf(options.CandidatePath), Wire(evalRuntime), opened.Runner.Name,
                LatencyProbe.ModelBytes(options.CandidatePath), threads),
            Reference = new ReferenceInfo(options.ReferencePath, h.ModelName, h.ModelSha256Hex, h.TextSha256Hex,
                h.Mode == ReferenceMode.Full ? "full" : "top_k", h.Mode == ReferenceMode.TopK ? h.TopK : null, h.NCtx, h.NChunks, h.NVocab,
                reference.FileBytes, reference.BytesPerScoredToken),
            Accuracy = accuracy,
            Latency = latency,
            Environment = EnvironmentInfo.Capture(),
        };
        return report with { Gates = GateEvaluator.Evaluate(report, specs) };
    }

    private static async Task WriteText(TextWriter o, VerificationReport r, IReadOnlyList<string> written, CancellationToken ct)
    {
        var inv = CultureInfo.InvariantCulture;
        var a = r.Accuracy!;
        var c = r.Candidate;
        var f = r.Reference!;
        await o.WriteLineAsync($"candidate {c.Path} in {c.RuntimeName}, {c.Threads} threads");
        await o.WriteLineAsync(string.Format(inv, "reference {0} ({1}, {2}{3}): {4} chunks of {5}, {6} scored tokens",
            f.Path, f.Model, f.Mode, f.TopK is { } k ? $" K={k}" : "", a.NChunks, a.NCtx, a.NScored));
        if (a.Approximation is { } note) await o.WriteLineAsync($"note: {note}");
        await o.WriteLineAsync();
        // Labels and precision as llama-perplexity's KLD summary, so the two can be read side by side.
        await o.WriteLineAsync(string.Format(inv, "Mean PPL(Q)                   : {0,10:F6} ± {1,10:F6}", a.PplCand, a.PplCandUnc));
        await o.WriteLineAsync(string.Format(inv, "Mean PPL(base)                : {0,10:F6} ± {1,10:F6}", a.PplBase, a.PplBaseUnc));
        await o.WriteLineAsync(string.Format(inv, "Cor(ln(PPL(Q)), ln(PPL(base))): {0,6:F2}%", 100 * a.LnPplCor));
        await o.WriteLineAsync(string.Format(inv, "Mean ln(PPL(Q)/PPL(base))     : {0,10:F6} ± {1,10:F6}", a.LnPplRatio, a.LnPplRatioUnc));
        await o.WriteLineAsync(string.Format(inv, "Mean    KLD: {0,10:F6} ± {1,10:F6}", a.KldMean, a.KldMeanUnc));
        await o.WriteLineAsync(string.Format(inv, "Maximum KLD: {0,10:F6}", a.KldMax));
        await o.WriteLineAsync(string.Format(inv, "99.9%   KLD: {0,10:F6}", a.KldP99_9));
        await o.WriteLineAsync(string.Format(inv, "99.0%   KLD: {0,10:F6}", a.KldP99));
        await o.WriteLineAsync(string.Format(inv, "95.0%   KLD: {0,10:F6}", a.KldP95));
        await o.WriteLineAsync(string.Format(inv, "90.0%   KLD: {0,10:F6}", a.KldP90));
        await o.WriteLineAsync(string.Format(inv, "Median  KLD: {0,10:F6}", a.KldMedian));
        await o.WriteLineAsync(string.Format(inv, "Mean    Δp: {0,6:F3} ± {1,5:F3} %", 100 * a.DeltaPMean, 100 * a.DeltaPMeanUnc));
        await o.WriteLineAsync(string.Format(inv, "RMS Δp    : {0,6:F3} ± {1,5:F3} %", 100 * a.DeltaPRms, 100 * a.DeltaPRmsUnc));
        await o.WriteLineAsync(string.Format(inv, "Same top p: {0,6:F3} ± {1,5:F3} %", 100 * a.SameTopP, 100 * a.SameTopPUnc));
        if (r.Latency is { } l)
        {
            await o.WriteLineAsync();
            await o.WriteLineAsync(string.Format(inv, "load {0:F0} ms, prefill {1:F0} tokens/s ({2} tokens), time to first token {3:F1} ms",
                l.LoadMs, l.PrefillTps, l.PrefillTokens, l.TtftMs));
            await o.WriteLineAsync(string.Format(inv, "decode {0:F1} tokens/s over {1} tokens; per token p50 {2:F2} / p95 {3:F2} / p99 {4:F2} ms",
                l.DecodeTps, l.DecodeTokens, l.TokenMsP50, l.TokenMsP95, l.TokenMsP99));
            await o.WriteLineAsync(string.Format(inv, "peak RSS {0:F1} MiB, model {1:N0} bytes, {2} threads, {3}",
                l.PeakRssMb, l.ModelFileBytes, l.Threads, l.CpuModel ?? "unknown CPU"));
        }
        if (r.Gates.Count > 0)
        {
            await o.WriteLineAsync();
            foreach (var g in r.Gates) await o.WriteLineAsync($"{(g.Passed ? "PASS" : "FAIL")} {GateEvaluator.Describe(g)}");
        }
        foreach (var path in written) await o.WriteLineAsync($"wrote {path}");
        await o.FlushAsync(ct);
    }

    private static RuntimeKind ToKind(VerifyRuntime r) => r switch
    {
        VerifyRuntime.Llamacpp => RuntimeKind.LlamaCpp,
        VerifyRuntime.Onnxruntime => RuntimeKind.OnnxRuntime,
        VerifyRuntime.Engine => RuntimeKind.Engine,
        _ => RuntimeKind.Auto,
    };

    private static EvalRuntime ToEvalRuntime(RuntimeKind k) => k switch
    {
        RuntimeKind.LlamaCpp => EvalRuntime.Llamacpp,
        RuntimeKind.OnnxRuntime => EvalRuntime.Onnxruntime,
        _ => EvalRuntime.Engine,
    };

    private static string Wire(EvalRuntime r) => r switch
    {
        EvalRuntime.Llamacpp => "llamacpp",
        EvalRuntime.Onnxruntime => "onnxruntime",
        _ => "engine",
    };

    private static string FormatOf(string path)
    {
        if (path.EndsWith(".onnx", StringComparison.OrdinalIgnoreCase)) return "onnx";
        try
        {
            return ModelLoader.Detect(path) switch
            {
                ModelFormat.Gguf => "gguf",
                ModelFormat.Llama2c => "llama2c",
                ModelFormat.HuggingFace => "hf",
                _ => "unknown",
            };
        }
        catch (BadInputException)
        {
            return "unknown";
        }
    }

    private sealed class ChunkProgress(IProgressTask task) : IProgress<DriftProgress>
    {
        public void Report(DriftProgress value) => task.Increment(1);
    }
}
