using System.Text.Json;
using EdgeQuant.Cli.Tests.Infrastructure;
using EdgeQuant.Testing;

namespace EdgeQuant.Cli.Tests.Tokenize;

/// <summary>
/// <c>edgequant tokenize</c> for every kind of MODEL. Expected ids come from llama.cpp: REFERENCE.md's prompt tokens
/// for stories260K, and llama.cpp's test vectors for the vocab-only GGUF.
/// </summary>
public sealed class TokenizeCommandTests : IDisposable
{
    private const string Gguf = "models/stories260K/stories260K.gguf";
    private const string Bin = "models/stories260K/stories260K.bin";
    private const string Tok = "models/stories260K/tok512.bin";
    private const string Gpt2Folder = "onnx/tiny-random-gpt2";
    private const string Phi3Json = "tokenizers/phi3/tokenizer.json";

    private readonly TempDir _dir = new("eqtok");

    public void Dispose() => _dir.Dispose();

    private string TextFile(string text)
    {
        var p = _dir.File($"t{Guid.NewGuid():N}.txt");
        File.WriteAllText(p, text);
        return p;
    }

    private static int[] Ids(CliRunner.Result r) =>
        r.StdOut.Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToArray();

    /// <summary>REFERENCE.md: llama.cpp tokenizes "Once upon a time" for stories260K as 1 403 407 261 378.</summary>
    [SharedDataTheory(Gguf, Bin, Tok)]
    [InlineData(Gguf)]
    [InlineData(Bin)]
    [InlineData(Tok)]
    public void Stories260K_prompt_gives_llama_cpp_ids_from_every_source(string model)
    {
        var r = CliRunner.Run("tokenize", SharedData.Require(model), "--text", TextFile("Once upon a time"));
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Equal([1, 403, 407, 261, 378], Ids(r));
    }

    [SharedDataFact(Gguf)]
    public void No_bos_drops_the_bos_token()
    {
        var r = CliRunner.Run("tokenize", SharedData.Require(Gguf), "--text", TextFile("Once upon a time"), "--no-bos");
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Equal([403, 407, 261, 378], Ids(r));
    }

    [SharedDataFact(Gguf)]
    public void Json_prints_an_ids_object()
    {
        var r = CliRunner.Run("tokenize", SharedData.Require(Gguf), "--text", TextFile("Once upon a time"), "--json");
        Assert.True(r.ExitCode == 0, r.ToString());
        using var doc = JsonDocument.Parse(r.StdOut);
        Assert.Equal(["ids"], doc.RootElement.EnumerateObject().Select(p => p.Name));
        Assert.Equal([1, 403, 407, 261, 378], doc.RootElement.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()));
    }

    [SharedDataFact(Gguf)]
    public void Show_prints_each_token_with_its_piece()
    {
        var r = CliRunner.Run("tokenize", SharedData.Require(Gguf), "--text", TextFile("Once upon a time"), "--show");
        Assert.True(r.ExitCode == 0, r.ToString());
        var lines = r.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(5, lines.Length);
        Assert.Equal("'<s>'", lines[0].Trim().Split(' ', 2)[1]);
        // The pieces put back together are the text with SentencePiece's leading space.
        Assert.Equal(" Once upon a time", string.Concat(lines.Skip(1).Select(l => l.Trim().Split(' ', 2)[1].Trim('\''))));
    }

    /// <summary>llama.cpp's test vector for "Hello world" with the GPT-2 vocab is 15496 995 (no BOS for GPT-2).</summary>
    [SharedDataTheory(Gpt2Folder)]
    [InlineData(Gpt2Folder)]
    [InlineData(Gpt2Folder + "/tokenizer.json")]
    public void Hugging_face_folder_and_tokenizer_json_print_ids(string model)
    {
        var r = CliRunner.Run("tokenize", SharedData.Require(model), "--text", TextFile("Hello world"));
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Equal([15496, 995], Ids(r));
    }

    /// <summary>llama.cpp's test vector for "Hello world" with the Phi-3 vocab is 15043 3186; the json adds BOS 1.</summary>
    [SharedDataFact(Phi3Json)]
    public void Phi3_tokenizer_json_adds_bos_as_its_config_says()
    {
        var r = CliRunner.Run("tokenize", SharedData.Require(Phi3Json), "--text", TextFile("Hello world"));
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Equal([1, 15043, 3186], Ids(r));
    }

    [Fact]
    public void Vocab_only_gguf_prints_the_test_vector_ids()
    {
        var vocab = Path.Combine(SharedData.RepoRoot, ".cache", "llama.cpp-src", "models", "ggml-vocab-llama-spm.gguf");
        if (!File.Exists(vocab))
        {
            Assert.False(SharedData.IsCi, $"{vocab} missing: run tools/fetch-runtimes.sh");
            return;
        }
        var r = CliRunner.Run("tokenize", vocab, "--text", TextFile("Hello world"));
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Equal([1, 15043, 3186], Ids(r));
    }

    [SharedDataFact(Gguf)]
    public void Invalid_utf8_text_is_exit_2_naming_the_file_and_offset()
    {
        var p = _dir.File("bad.txt");
        File.WriteAllBytes(p, [(byte)'a', (byte)'b', 0xFF, (byte)'c']);
        var r = CliRunner.Run("tokenize", SharedData.Require(Gguf), "--text", p);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("bad.txt", r.StdErr);
        Assert.Contains("invalid UTF-8 at byte offset 2", r.StdErr);
    }

    [Fact]
    public void Tokenizer_json_without_model_is_exit_2_naming_the_field()
    {
        var p = _dir.File("tokenizer.json");
        File.WriteAllText(p, """{"version": "1.0", "added_tokens": []}""");
        var r = CliRunner.Run("tokenize", p, "--text", TextFile("x"));
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("model", r.StdErr);
        Assert.Single(r.ErrorLines);
    }

    [Fact]
    public void Missing_text_file_is_exit_2()
    {
        var r = CliRunner.Run("tokenize", _dir.Path, "--text", _dir.File("absent.txt"));
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("absent.txt", r.StdErr);
    }
}
