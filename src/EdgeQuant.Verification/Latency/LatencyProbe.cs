using System.Diagnostics;
using EdgeQuant.Core.Errors;
using EdgeQuant.Models.Engine;
using EdgeQuant.Runtimes;
using EdgeQuant.Runtimes.LlamaCpp;
using EdgeQuant.Runtimes.OnnxRuntime;
using EdgeQuant.Verification.Reports;

namespace EdgeQuant.Verification.Latency;

/// <summary>Where the probe is (for a progress display): the stage and how far into it.</summary>
public readonly record struct LatencyProgress(string Stage, int Done, int Total);

/// <summary>
/// Measures how fast a candidate runs in the runtime the device uses. The protocol, in order:
/// <list type="number">
/// <item>The runtime's library is initialized (a once-per-process cost, not counted), the peak-RSS counter is reset
/// (<see cref="LatencyOptions.ResetPeakRss"/>), then <b>load</b> is timed: model load plus context/session creation.</item>
/// <item><b>Warm-up</b> (untimed, its prefill kept as <see cref="LatencyFigures.ColdPrefillMs"/>): one full-context
/// prefill from an empty cache, then <see cref="LatencyOptions.WarmupDecodeTokens"/> single-token steps from an
/// empty cache. This pages in memory-mapped weights, lets the runtime allocate its compute buffers for both batch
/// shapes and the JIT compile the managed paths, so the timed runs measure steady state, as a device does after
/// its first request.</item>
/// <item><b>Prefill</b>: <see cref="LatencyOptions.PrefillRuns"/> batches of n_ctx tokens, each from an empty
/// cache, asking for the last position's logits; the figure is the median.</item>
/// <item><b>Generation</b> from an empty cache: the prompt as one batch, then the argmax of its last logits is the
/// first token (<b>time to first token</b>); then <see cref="LatencyOptions.DecodeTokens"/> steps, each feeding the
/// previous token and taking the argmax (greedy, so runs repeat exactly; end-of-text is not a stop, as in
/// llama-bench, so the count is fixed). Each step is timed on the wall clock around the runtime call, the logits
/// copy and the argmax: what an application waits for per token.</item>
/// </list>
/// Peak RSS is read last (VmHWM: process-wide). Timings are single measurements on a possibly shared machine; gate
/// on them with margins.
/// </summary>
public static class LatencyProbe
{
    public static LatencyFigures Measure(string candidatePath, RuntimeKind runtime, LatencyOptions options, CancellationToken cancellationToken = default,
        IProgress<LatencyProgress>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(candidatePath);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (!File.Exists(candidatePath) && !Directory.Exists(candidatePath))
            throw new BadInputException($"{candidatePath}: no such model file or folder");
        var kind = RuntimeKinds.Resolve(runtime, candidatePath);
        long fileBytes = ModelBytes(candidatePath);
        InitializeLibrary(kind);
        cancellationToken.ThrowIfCancellationRequested();

        bool peakReset = options.ResetPeakRss && ProcessMemory.TryResetPeak();
        progress?.Report(new LatencyProgress("load", 0, 1));
        long start = Stopwatch.GetTimestamp();
        var (runner, threads) = Open(kind, candidatePath, options, cancellationToken);
        double loadMs = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        using var _ = runner;
        progress?.Report(new LatencyProgress("load", 1, 1));

        int ctx = options.ContextSize;
        if (runner.ContextLength < ctx)
            throw new BadInputException($"{candidatePath}: {runner.Name} holds {runner.ContextLength} positions, fewer than the context of {ctx} asked for");
        int promptLength = options.ResolvePromptLength();
        var prompt = Tokens(options, runner.VocabSize, promptLength, candidatePath);
        var batch = Tokens(options, runner.VocabSize, ctx, candidatePath);
        var logits = new float[runner.VocabSize];

        // Warm-up: untimed except for the record of how slow the very first batch was.
        progress?.Report(new LatencyProgress("warm-up", 0, 1));
        double coldPrefillMs = TimePrefill(runner, batch, logits);
        cancellationToken.ThrowIfCancellationRequested();
        runner.Reset();
        int token = prompt[0];
        for (int i = 0; i < options.WarmupDecodeTokens; i++)
        {
            runner.Evaluate([token], i, [0], logits);
            token = ArgMax(logits);
        }
        runner.Reset();
        progress?.Report(new LatencyProgress("warm-up", 1, 1));

        var prefillMs = new double[options.PrefillRuns];
        for (int r = 0; r < prefillMs.Length; r++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            prefillMs[r] = TimePrefill(runner, batch, logits);
            runner.Reset();
            progress?.Report(new LatencyProgress("prefill", r + 1, prefillMs.Length));
        }

        cancellationToken.ThrowIfCancellationRequested();
        var generated = new int[options.DecodeTokens + 1];
        var decodeMs = new double[options.DecodeTokens];
        start = Stopwatch.GetTimestamp();
        runner.Evaluate(prompt, 0, [prompt.Length - 1], logits);
        generated[0] = ArgMax(logits);
        double ttftMs = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        for (int i = 0; i < decodeMs.Length; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            start = Stopwatch.GetTimestamp();
            runner.Evaluate([generated[i]], promptLength + i, [0], logits);
            generated[i + 1] = ArgMax(logits);
            decodeMs[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            if ((i & 15) == 15 || i == decodeMs.Length - 1) progress?.Report(new LatencyProgress("decode", i + 1, decodeMs.Length));
        }
        long? peak = ProcessMemory.PeakRssBytes();

        double prefillMedian = LatencyStatistics.Median(prefillMs);
        double decodeMean = decodeMs.Average();
        return new LatencyFigures
        {
            Runtime = kind,
            RuntimeName = runner.Name,
            CandidatePath = candidatePath,
            ModelFileBytes = fileBytes,
            Threads = threads,
            ContextSize = ctx,
            RuntimeContextLength = runner.ContextLength,
            LoadMs = loadMs,
            ColdPrefillMs = coldPrefillMs,
            PrefillTokens = ctx,
            PrefillMs = prefillMs,
            PrefillMedianMs = prefillMedian,
            PrefillTokensPerSecond = ctx / (prefillMedian / 1000.0),
            PromptTokens = promptLength,
            TimeToFirstTokenMs = ttftMs,
            DecodeTokens = decodeMs.Length,
            DecodeMs = decodeMs,
            DecodeMeanMs = decodeMean,
            DecodeP50Ms = LatencyStatistics.Percentile(decodeMs, 50),
            DecodeP95Ms = LatencyStatistics.Percentile(decodeMs, 95),
            DecodeP99Ms = LatencyStatistics.Percentile(decodeMs, 99),
            DecodeMinMs = decodeMs.Min(),
            DecodeMaxMs = decodeMs.Max(),
            DecodeTokensPerSecond = 1000.0 / decodeMean,
            GeneratedTokens = generated,
            PeakRssBytes = peak,
            PeakRssScope = peakReset ? "probe" : "process",
            CpuModel = EnvironmentInfo.ReadCpuModel(),
            LogicalCpus = Environment.ProcessorCount,
            WarmupPolicy = $"untimed: 1 prefill of {ctx} tokens, then {options.WarmupDecodeTokens} single-token steps, each from an empty cache; " +
                $"then {options.PrefillRuns} timed prefills (median) and 1 timed generation",
        };
    }

    /// <summary>Bytes on disk of a candidate: a file (an .onnx with its external-data files beside it), or the files of a folder.</summary>
    public static long ModelBytes(string candidatePath)
    {
        if (Directory.Exists(candidatePath))
            return new DirectoryInfo(candidatePath).EnumerateFiles().Sum(f => f.Length);
        var file = new FileInfo(candidatePath);
        long total = file.Length;
        if (file.Extension.Equals(".onnx", StringComparison.OrdinalIgnoreCase))
        {
            // ONNX models over 2 GB keep weights in external files; the usual names are model.onnx.data / model.onnx_data.
            foreach (var suffix in new[] { ".data", "_data" })
            {
                var data = new FileInfo(file.FullName + suffix);
                if (data.Exists) total += data.Length;
            }
        }
        return total;
    }

    private static double TimePrefill(ILogitsRunner runner, int[] batch, float[] logits)
    {
        long start = Stopwatch.GetTimestamp();
        runner.Evaluate(batch, 0, [batch.Length - 1], logits);
        return Stopwatch.GetElapsedTime(start).TotalMilliseconds;
    }

    /// <summary>First index of the largest logit (NaN never wins), as llama.cpp's greedy sampler picks.</summary>
    internal static int ArgMax(ReadOnlySpan<float> logits)
    {
        int best = 0;
        float max = float.NegativeInfinity;
        for (int i = 0; i < logits.Length; i++)
        {
            if (logits[i] > max)
            {
                max = logits[i];
                best = i;
            }
        }
        return best;
    }

    /// <summary><paramref name="count"/> prompt ids: the given ones repeated, or seeded pseudo-random ids over the vocabulary.</summary>
    private static int[] Tokens(LatencyOptions options, int vocabSize, int count, string candidatePath)
    {
        var tokens = new int[count];
        if (options.PromptTokens is { } given)
        {
            for (int i = 0; i < count; i++)
            {
                int t = given[i % given.Count];
                if ((uint)t >= (uint)vocabSize)
                    throw new BadInputException($"{candidatePath}: prompt token {i % given.Count} is id {t}, outside the vocabulary of {vocabSize}");
                tokens[i] = t;
            }
            return tokens;
        }
        var random = new Random(options.Seed);
        for (int i = 0; i < count; i++) tokens[i] = random.Next(vocabSize);
        return tokens;
    }

    private static void InitializeLibrary(RuntimeKind kind)
    {
        if (kind == RuntimeKind.LlamaCpp) LlamaLibrary.EnsureInitialized();
        else if (kind == RuntimeKind.OnnxRuntime) _ = OrtEnvironment.Version;
    }

    private static (ILogitsRunner Runner, int Threads) Open(RuntimeKind kind, string path, LatencyOptions options, CancellationToken cancellationToken)
    {
        switch (kind)
        {
            case RuntimeKind.LlamaCpp:
            {
                if (!RuntimeKinds.IsGguf(path)) throw new BadInputException($"{path}: llama.cpp runs GGUF files; this is not one (runtime llamacpp)");
                var runner = LlamaCppRunner.Open(path, new LlamaContextOptions { ContextSize = options.ContextSize, Threads = options.Threads },
                    cancellationToken: cancellationToken);
                return (runner, runner.Context.Threads);
            }
            case RuntimeKind.OnnxRuntime:
            {
                if (!File.Exists(path)) throw new BadInputException($"{path}: ONNX Runtime runs .onnx files; this is a folder (runtime onnxruntime)");
                var runner = OrtLogitsRunner.Open(path, new OrtLogitsRunnerOptions
                {
                    Session = new OrtSessionSettings { IntraOpThreads = options.Threads, InterOpThreads = 1 },
                });
                return (runner, options.Threads);
            }
            case RuntimeKind.Engine:
            {
                var runner = EngineLogitsRunner.Open(path, options.ContextSize, new EngineOptions { Threads = options.Threads }, cancellationToken);
                runner.CancellationToken = cancellationToken;
                return (runner, runner.Engine.Options.Threads);
            }
            default:
                throw new BadInputException($"{path}: unknown runtime {kind}");
        }
    }
}
