using EdgeQuant.Compression.Pruning;
using EdgeQuant.Export;
using EdgeQuant.Models;
using EdgeQuant.Models.Engine;
using EdgeQuant.Runtimes;
using EdgeQuant.Runtimes.LlamaCpp;

namespace EdgeQuant.Benchmarks.Engine;

/// <summary>
/// What structured pruning buys in speed: the SmolLM-135M-shape random fixture (F32 GGUF) pruned to about 10/25/40 %
/// fewer parameters by FFN channels, layers, or KV groups + channels (uniform plans from calibration importance on
/// seeded random tokens; the weights are random, so only the shapes matter here), exported to GGUF, and its prefill
/// (one 256-token perplexity chunk, as engine.prefill) timed against the dense model, round-robin (process CPU time and wall time), in the engine and
/// in llama.cpp (F32 KV cache). One thread each: on the shared, loaded machines two llama.cpp threads spin badly,
/// which would measure the spinning rather than the model.
/// </summary>
public static class StructuredPruningBenchmarks
{
    private const int Threads = 1, N = 256;

    public static void Prefill()
    {
        string gguf = EngineBenchmarks.SmolLmFixture();
        using var model = ModelLoader.Load(gguf);
        var rng = new Random(7);
        var calib = Enumerable.Range(0, 4 * 128).Select(_ => rng.Next(3, model.Config.VocabSize)).ToArray();
        var imp = StructuredImportance.Collect(model, calib, new CalibrationOptions { SequenceLength = 128, Samples = 4, Threads = Threads, Bos = 1 });
        var dense = ReferenceEngine.Load(model, new EngineOptions { Threads = Threads });
        using var denseRunner = new EngineLogitsRunner(dense, N);
        using var denseLlama = LlamaCppRunner.Open(gguf, LlamaContextOptions.FullPrecision(N, Threads));

        var tokens = Enumerable.Range(0, N).Select(i => (int)((i * 7919L + 13) % model.Config.VocabSize)).ToArray();
        var rows = Enumerable.Range(N / 2, N / 2 - 1).ToArray();
        var logits = new float[rows.Length * model.Config.VocabSize];
        Action Run(ILogitsRunner r) => () =>
        {
            r.Reset();
            r.Evaluate(tokens, 0, rows, logits);
        };

        var dir = Path.Combine(Path.GetTempPath(), $"edgequant-bench-structured-{Environment.ProcessId}");
        Directory.CreateDirectory(dir);
        try
        {
            Console.WriteLine($"dense: {model.ParameterCount:N0} parameters, {new FileInfo(gguf).Length:N0} bytes");
            Console.WriteLine("| units | plan | removed | GGUF MB | engine tok/s dense → pruned | speed-up CPU (wall) | llama.cpp tok/s dense → pruned | speed-up CPU (wall) |");
            Console.WriteLine("|---|---|---|---|---|---|---|---|");
            // Channel counts kept a multiple of 64 first (fast kernels), then free counts (odd widths included).
            var cases = new List<(string, StructuredMethod[], double, int)>();
            cases.Add(("channels", [StructuredMethod.Channels], 0.10, 64));
            cases.Add(("channels", [StructuredMethod.Channels], 0.25, 64));
            foreach (double t in new[] { 0.10, 0.25, 0.40 }) cases.Add(("heads+channels", [StructuredMethod.Heads, StructuredMethod.Channels], t, 64));
            cases.Add(("layers", [StructuredMethod.Layers], 0.25, 1));
            cases.Add(("heads", [StructuredMethod.Heads], 0.05, 1));
            cases.Add(("channels", [StructuredMethod.Channels], 0.10, 1));
            cases.Add(("channels", [StructuredMethod.Channels], 0.25, 1));
            foreach (var (label, units, target, multiple) in cases)
            {
                var plan = StructuredPlanner.ForParameterTarget(model, imp, target, units, multiple);
                string path = Path.Combine(dir, "pruned.gguf");
                long bytes;
                using (var pruned = StructuredPruner.Apply(model, plan.Plan))
                    bytes = GgufExporter.Export(pruned, path, new GgufExportOptions { Overwrite = true }).FileBytes;
                ReferenceEngine engine;
                using (var back = ModelLoader.Load(path)) engine = ReferenceEngine.Load(back, new EngineOptions { Threads = Threads });
                using var runner = new EngineLogitsRunner(engine, N);
                using var llama = LlamaCppRunner.Open(path, LlamaContextOptions.FullPrecision(N, Threads));
                var (wall, cpu) = InterleavedMedians([Run(denseRunner), Run(runner), Run(denseLlama), Run(llama)], rounds: 3);
                Console.WriteLine($"| {label} | {plan.Description} | {plan.Removed:P1} | {bytes / 1e6:F0} | {N / cpu[0]:F0} → {N / cpu[1]:F0} | {cpu[0] / cpu[1]:F2}x ({wall[0] / wall[1]:F2}x) | {N / cpu[2]:F0} → {N / cpu[3]:F0} | {cpu[2] / cpu[3]:F2}x ({wall[2] / wall[3]:F2}x) |");
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>
    /// Round-robin medians of wall time and of the process's CPU time per call. Both contenders run on one thread, so
    /// CPU time is the work itself: on a machine shared with dozens of busy processes it is far steadier than wall time,
    /// which mostly measures the scheduler.
    /// </summary>
    private static (double[] Wall, double[] Cpu) InterleavedMedians(Action[] actions, int rounds)
    {
        foreach (var a in actions) a();
        var wall = actions.Select(_ => new List<double>()).ToArray();
        var cpu = actions.Select(_ => new List<double>()).ToArray();
        using var self = System.Diagnostics.Process.GetCurrentProcess();
        for (int r = 0; r < rounds; r++)
            for (int i = 0; i < actions.Length; i++)
            {
                self.Refresh();
                var c0 = self.TotalProcessorTime;
                long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
                actions[i]();
                wall[i].Add(System.Diagnostics.Stopwatch.GetElapsedTime(t0).TotalSeconds);
                self.Refresh();
                cpu[i].Add((self.TotalProcessorTime - c0).TotalSeconds);
            }
        static double Median(List<double> v) => v.Order().ElementAt(v.Count / 2);
        return (wall.Select(Median).ToArray(), cpu.Select(Median).ToArray());
    }
}
