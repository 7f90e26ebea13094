using System.Diagnostics;
using EdgeQuant.Fixtures;
using EdgeQuant.Models;
using EdgeQuant.Models.Engine;
using EdgeQuant.Runtimes;
using EdgeQuant.Runtimes.LlamaCpp;

namespace EdgeQuant.Benchmarks.Engine;

/// <summary>
/// Evaluation prefill of the reference engine against llama.cpp on the same F32 GGUF: a random-weight model of
/// SmolLM-135M's shape (n_embd 576, 30 layers, 9 heads / 3 KV heads, FFN 1536, vocab 49152) from the fixture maker.
/// Each contender decodes one perplexity chunk (N tokens from an empty cache, logits for positions N/2 … N−2, the
/// ILogitsRunner call the perplexity protocol makes), measured round-robin so all see the same background load.
/// llama.cpp runs twice: in full precision (F32 KV cache, no flash attention: the engine's own numerics) and at its
/// defaults (F16 KV cache, flash attention auto), which is what llama-perplexity would do.
/// </summary>
public static class EngineBenchmarks
{
    private const int Threads = 2;

    public static void Prefill()
    {
        string gguf = SmolLmFixture();
        foreach (int n in new[] { 256, 512 })
        {
            ReferenceEngine engine;
            using (var model = ModelLoader.Load(gguf)) engine = ReferenceEngine.Load(model, new EngineOptions { Threads = Threads });
            using var ours = new EngineLogitsRunner(engine, n);
            using var f32 = LlamaCppRunner.Open(gguf, LlamaContextOptions.FullPrecision(n, Threads));
            using var defaults = LlamaCppRunner.Open(gguf, new LlamaContextOptions { ContextSize = n, Threads = Threads });
            ILogitsRunner[] runners = [ours, f32, defaults];
            string[] labels = ["engine", "llama.cpp F32 KV", "llama.cpp defaults"];

            var tokens = Enumerable.Range(0, n).Select(i => (int)((i * 7919L + 13) % engine.VocabSize)).ToArray();
            var rows = Enumerable.Range(n / 2, n / 2 - 1).ToArray();
            var logits = new float[rows.Length * engine.VocabSize];
            var seconds = Measure.InterleavedMedianSeconds(runners.Select(r => (Action)(() =>
            {
                r.Reset();
                r.Evaluate(tokens, 0, rows, logits);
            })).ToArray(), warmup: 1, minRounds: 3, budgetSeconds: 10);

            for (int i = 0; i < runners.Length; i++)
                Console.WriteLine($"prefill n={n,4} {labels[i],-20} {n / seconds[i],8:F0} tok/s  ({seconds[i] * 1e3:F0} ms)");
            Console.WriteLine($"prefill n={n,4} engine / llama.cpp F32 KV = {seconds[1] / seconds[0]:F2}x, engine / llama.cpp defaults = {seconds[2] / seconds[0]:F2}x");
        }
    }

    /// <summary>Single-token decoding at position 128 (memory-bound GEMV over every weight).</summary>
    public static void Decode()
    {
        string gguf = SmolLmFixture();
        ReferenceEngine engine;
        using (var model = ModelLoader.Load(gguf)) engine = ReferenceEngine.Load(model, new EngineOptions { Threads = Threads });
        const int prefix = 128;
        using var ours = new EngineLogitsRunner(engine, prefix + 1);
        using var f32 = LlamaCppRunner.Open(gguf, LlamaContextOptions.FullPrecision(prefix + 1, Threads));
        ILogitsRunner[] runners = [ours, f32];
        var tokens = Enumerable.Range(0, prefix + 1).Select(i => (int)((i * 7919L + 13) % engine.VocabSize)).ToArray();
        var logits = new float[engine.VocabSize];
        // Round-robin: each round re-evaluates the prefix (untimed) and times the one next-token step.
        var step = runners.Select(_ => new List<double>()).ToArray();
        for (int round = 0; round < 15; round++)
        {
            for (int i = 0; i < runners.Length; i++)
            {
                runners[i].Reset();
                runners[i].Evaluate(tokens.AsSpan(0, prefix), 0, [], []);
                long t0 = Stopwatch.GetTimestamp();
                runners[i].Evaluate(tokens.AsSpan(prefix, 1), prefix, [0], logits);
                step[i].Add(Stopwatch.GetElapsedTime(t0).TotalSeconds);
            }
        }
        var med = step.Select(s => s.Order().ElementAt(s.Count / 2)).ToArray();
        Console.WriteLine($"decode at {prefix}: engine {1 / med[0]:F1} tok/s, llama.cpp F32 KV {1 / med[1]:F1} tok/s, ratio {med[1] / med[0]:F2}x");
    }

    /// <summary>The SmolLM-135M-shape F32 GGUF, written once into the temp folder (≈ 540 MB) and reused by later runs.</summary>
    internal static string SmolLmFixture()
    {
        var spec = FixtureSpec.Preset(FixtureArch.Llama, "smollm-135m");
        var dir = Path.Combine(Path.GetTempPath(), $"edgequant-bench-smollm-135m-seed{spec.Seed}");
        var path = Path.Combine(dir, FixtureMaker.GgufDirName, FixtureMaker.GgufFileName);
        if (!File.Exists(path))
        {
            var tmp = dir + ".partial";
            if (Directory.Exists(tmp)) Directory.Delete(tmp, recursive: true);
            FixtureMaker.Write(spec, tmp, FixtureFormats.Gguf);
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
            Directory.Move(tmp, dir);
        }
        return path;
    }
}
