using EdgeQuant.Formats.Gguf;
using EdgeQuant.Testing;

namespace EdgeQuant.Formats.Tests.Gguf;

/// <summary>
/// GGUF files made by llama.cpp's own tools: the vocab-only models (<c>models/ggml-vocab-*.gguf</c>, written by gguf-py)
/// in the llama.cpp source bundle that <c>make runtimes</c> unpacks into <c>.cache/llama.cpp-src</c>
/// (npm <c>node-llama-cpp@3.22.1</c>, <c>package/llama/gitRelease.bundle</c>).
/// </summary>
public class GgufLlamaCppFilesTests
{
    private static string ModelsDir => Path.Combine(SharedData.RepoRoot, ".cache", "llama.cpp-src", "models");

    public static TheoryData<string> VocabFiles()
    {
        var data = new TheoryData<string>();
        if (Directory.Exists(ModelsDir))
            foreach (var f in Directory.GetFiles(ModelsDir, "ggml-vocab-*.gguf").Order(StringComparer.Ordinal)) data.Add(Path.GetFileName(f));
        else
            data.Add("(missing)");
        return data;
    }

    [Theory]
    [MemberData(nameof(VocabFiles))]
    public void Vocab_file_parses_and_rewrites_byte_for_byte(string name)
    {
        if (name == "(missing)")
        {
            // Without the bundle there is nothing to check, which CI must not accept.
            Assert.False(SharedData.IsCi, $"{ModelsDir} is missing: run `make runtimes`");
            return;
        }
        string path = Path.Combine(ModelsDir, name);
        using var f = GgufReader.Read(path);
        Assert.Contains(f.Version, new uint[] { 2, 3 });
        Assert.NotNull(f.Find("tokenizer.ggml.model")?.AsString());
        Assert.True(f.Find("tokenizer.ggml.tokens")!.ArrayLength > 100);
        using var dir = new TempDir();
        string copy = dir.File(name);
        GgufWriter.Rewrite(f, copy);
        Assert.True(File.ReadAllBytes(path).AsSpan().SequenceEqual(File.ReadAllBytes(copy)), $"{name}: the rewrite differs");
    }
}
