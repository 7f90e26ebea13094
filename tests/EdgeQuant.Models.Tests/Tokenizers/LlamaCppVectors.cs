using System.Diagnostics;
using System.Text;
using EdgeQuant.Testing;
using Xunit;

namespace EdgeQuant.Models.Tests.Tokenizers;

/// <summary>
/// llama.cpp's own tokenizer test vectors: models/ggml-vocab-*.gguf with *.inp / *.out in the llama.cpp source bundle
/// of npm node-llama-cpp@3.22.1, which tools/fetch-runtimes.sh clones into .cache/llama.cpp-src (never committed).
/// The .out ids were produced by the model's Hugging Face tokenizer and are what llama.cpp's test-tokenizer-0 checks.
/// </summary>
public static class LlamaCppVectors
{
    private static readonly object FetchLock = new();

    public static string ModelsDir => Path.Combine(SharedData.RepoRoot, ".cache", "llama.cpp-src", "models");

    public static bool Present => File.Exists(Path.Combine(ModelsDir, "ggml-vocab-llama-spm.gguf.inp"));

    /// <summary>The vocab file's path, running tools/fetch-runtimes.sh once when the bundle is missing.</summary>
    public static string Vocab(string name)
    {
        lock (FetchLock)
        {
            if (!Present)
            {
                var psi = new ProcessStartInfo("bash", [Path.Combine(SharedData.RepoRoot, "tools", "fetch-runtimes.sh")])
                {
                    WorkingDirectory = SharedData.RepoRoot,
                    RedirectStandardOutput = true,
                    RedirectStandardError = true,
                };
                using var p = Process.Start(psi)!;
                p.StandardOutput.ReadToEnd();
                var err = p.StandardError.ReadToEnd();
                p.WaitForExit();
                if (!Present) throw new FileNotFoundException($"llama.cpp test vectors missing under {ModelsDir}; tools/fetch-runtimes.sh exited {p.ExitCode}: {err}");
            }
        }
        var path = Path.Combine(ModelsDir, $"ggml-vocab-{name}.gguf");
        if (!File.Exists(path)) throw new FileNotFoundException($"no vocab file {path}");
        return path;
    }

    /// <summary>The cases of one vocab, split exactly as test-tokenizer-0.cpp does (a map: repeated inputs collapse).</summary>
    public static IReadOnlyList<(string Text, int[] Ids)> Cases(string vocabPath)
    {
        var raw = File.ReadAllText(vocabPath + ".inp", new UTF8Encoding(false, true));
        var outLines = File.ReadAllLines(vocabPath + ".out");
        const string sep = "\n__ggml_vocab_test__\n";
        var inputs = new List<string>();
        int pos = 0;
        while (pos < raw.Length)
        {
            int next = raw.IndexOf(sep, pos, StringComparison.Ordinal);
            if (next < 0) { inputs.Add(raw[pos..]); break; }
            inputs.Add(raw[pos..next]);
            pos = next + sep.Length;
        }
        Assert.Equal(inputs.Count, outLines.Length);
        var map = new Dictionary<string, int[]>(StringComparer.Ordinal);
        var order = new List<string>();
        for (int i = 0; i < inputs.Count; i++)
        {
            var ids = outLines[i].Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToArray();
            if (!map.ContainsKey(inputs[i])) order.Add(inputs[i]);
            map[inputs[i]] = ids;
        }
        return order.Select(s => (s, map[s])).ToList();
    }
}

/// <summary>A theory needing the llama.cpp vectors: skipped when absent outside CI, run (and fetching) under CI=true.</summary>
public sealed class LlamaCppVectorsTheoryAttribute : TheoryAttribute
{
    public LlamaCppVectorsTheoryAttribute()
    {
        if (!SharedData.IsCi && !LlamaCppVectors.Present)
            Skip = $"llama.cpp test vectors not found under {LlamaCppVectors.ModelsDir} (run tools/fetch-runtimes.sh; under CI=true this fails instead)";
    }
}

/// <summary>A fact needing the llama.cpp vectors (see <see cref="LlamaCppVectorsTheoryAttribute"/>).</summary>
public sealed class LlamaCppVectorsFactAttribute : FactAttribute
{
    public LlamaCppVectorsFactAttribute()
    {
        if (!SharedData.IsCi && !LlamaCppVectors.Present)
            Skip = $"llama.cpp test vectors not found under {LlamaCppVectors.ModelsDir} (run tools/fetch-runtimes.sh; under CI=true this fails instead)";
    }
}
