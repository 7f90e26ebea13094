using EdgeQuant.Runtimes;
using EdgeQuant.Runtimes.LlamaCpp;

namespace EdgeQuant.Benchmarks.Runtimes;

/// <summary>
/// Per-call cost of a single-token <c>llama_decode</c> through the binding on stories260K (../shared/data), where the
/// model is so small that the figure is mostly llama.cpp's per-decode bookkeeping (graph build, scheduling) plus the
/// binding. Measured with one thread (ggml's workers spin, so more threads than idle cores only adds noise) and with
/// every core; each call decodes one token at the next position of a 256-token cache, wrapping around with a clear.
/// </summary>
public static class LlamaCppBenchmarks
{
    public static void DecodeOverhead()
    {
        string root = RepoRoot();
        string model = Path.Combine(Environment.GetEnvironmentVariable("EDGEQUANT_SHARED_DATA") is { Length: > 0 } d ? d : Path.Combine(root, "..", "shared", "data"),
            "models", "stories260K", "stories260K.gguf");
        if (!File.Exists(model))
        {
            Console.WriteLine($"skipped: needs {model}");
            return;
        }
        LlamaRuntimeInfo info;
        try { info = LlamaLibrary.EnsureInitialized(); }
        catch (RuntimeNotFoundException e)
        {
            Console.WriteLine($"skipped: {e.Message}");
            return;
        }

        using var m = LlamaModel.Load(model);
        foreach (int threads in new[] { 1, Environment.ProcessorCount }.Distinct())
        {
            using var ctx = m.CreateContext(LlamaContextOptions.FullPrecision(256, threads));
            int pos = 0;
            double native = 0;
            int[] token = [1];
            double perCall = Measure.MedianSeconds(() =>
            {
                if (pos == ctx.ContextSize) { ctx.ClearMemory(); pos = 0; }
                token[0] = 1 + pos % 400;
                ctx.Decode(token, pos++, [0]);
                native = ctx.LastDecodeTime.TotalSeconds;
                _ = ctx.GetLogits(0)[0];
            }, warmup: 5, minRuns: threads == 1 ? 200 : 15, budgetSeconds: 2.0); // few runs when spinning workers may stall on a busy box
            Console.WriteLine($"llama.cpp {info.LlamaVersion} ({info.CpuVariant}), stories260K, {threads} thread(s): " +
                              $"single-token decode median {perCall * 1e6:F1} us per call (last native decode {native * 1e6:F1} us)");
        }
    }

    private static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "EdgeQuant.sln"))) return dir.FullName;
        return Directory.GetCurrentDirectory();
    }
}
