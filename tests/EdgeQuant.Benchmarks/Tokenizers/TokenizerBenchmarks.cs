using EdgeQuant.Models.Tokenizers;
using EdgeQuant.Runtimes;
using EdgeQuant.Runtimes.LlamaCpp;

namespace EdgeQuant.Benchmarks.Tokenizers;

/// <summary>
/// Encoding speed in MB of UTF-8 text per second, on WikiText-2 (../shared/data/corpus, 1.3 MB), for a
/// SentencePiece vocabulary (llama-spm) and byte-level BPE ones (gpt-2, llama-bpe) from llama.cpp's vocab files
/// (.cache/llama.cpp-src/models, fetched by tools/fetch-runtimes.sh). Ours is measured with its word cache warm (the
/// steady state of repeated use) and cold (a fresh tokenizer's first pass); llama.cpp's llama_tokenize on the same
/// vocab file is measured round-robin with the warm run when libllama is available.
/// </summary>
public static class TokenizerBenchmarks
{
    public static void Run()
    {
        string root = RepoRoot();
        string corpus = Path.Combine(Environment.GetEnvironmentVariable("EDGEQUANT_SHARED_DATA") is { Length: > 0 } d ? d : Path.Combine(root, "..", "shared", "data"), "corpus", "wikitext-2-raw-test.txt");
        string models = Path.Combine(root, ".cache", "llama.cpp-src", "models");
        if (!File.Exists(corpus) || !Directory.Exists(models))
        {
            Console.WriteLine($"skipped: needs {corpus} and {models} (tools/fetch-runtimes.sh)");
            return;
        }
        var bytes = File.ReadAllBytes(corpus);
        double mb = bytes.Length / 1e6;
        bool haveLlama = true;
        try { LlamaLibrary.EnsureInitialized(); }
        catch (RuntimeNotFoundException e) { haveLlama = false; Console.WriteLine($"llama.cpp not available ({e.Message.Split('\n')[0]}): ours only"); }

        foreach (var vocab in new[] { "llama-spm", "gpt-2", "llama-bpe" })
        {
            var path = Path.Combine(models, $"ggml-vocab-{vocab}.gguf");
            var fresh = new List<double>();
            for (int i = 0; i < 3; i++)
            {
                var t = Tokenizer.FromGguf(path);
                fresh.Add(Measure.MedianSeconds(() => t.Encode(bytes), warmup: 0, minRuns: 1, budgetSeconds: 0));
            }
            fresh.Sort();
            var ours = Tokenizer.FromGguf(path);
            if (haveLlama)
            {
                using var real = LlamaModel.Load(path, new LlamaModelOptions { VocabOnly = true });
                var s = Measure.InterleavedMedianSeconds([() => ours.Encode(bytes), () => real.Tokenize(bytes, addSpecial: true, parseSpecial: false)],
                    warmup: 1, minRounds: 3, budgetSeconds: 10);
                Console.WriteLine($"{vocab,-10} ours {mb / s[0],7:F2} MB/s warm, {mb / fresh[1],7:F2} MB/s cold   llama.cpp {mb / s[1],7:F2} MB/s   ours/llama.cpp {s[1] / s[0]:F2}x");
            }
            else
            {
                var s = Measure.MedianSeconds(() => ours.Encode(bytes), warmup: 1, minRuns: 3, budgetSeconds: 5);
                Console.WriteLine($"{vocab,-10} ours {mb / s,7:F2} MB/s warm, {mb / fresh[1],7:F2} MB/s cold");
            }
        }
    }

    private static string RepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "EdgeQuant.sln"))) dir = dir.Parent;
        return dir?.FullName ?? Directory.GetCurrentDirectory();
    }
}
