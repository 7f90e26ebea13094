using EdgeQuant.Cli.Tests.Infrastructure;
using EdgeQuant.Core.Errors;
using EdgeQuant.Testing;

namespace EdgeQuant.Cli.Tests.Inspect;

/// <summary>
/// Broken model files through the CLI: exit code 2 and exactly one stderr line that names the file and the byte
/// offset, nothing on stdout.
/// </summary>
public class InspectBadInputTests
{
    private const string Gguf = "models/stories260K/stories260K.gguf";

    private static void AssertBadInputLine(CliRunner.Result r, string fileName)
    {
        Assert.True(r.ExitCode == ExitCodes.BadInput, r.ToString());
        var line = Assert.Single(r.ErrorLines);
        Assert.StartsWith("edgequant: error: ", line);
        Assert.Contains(fileName, line);
        Assert.Contains("byte offset", line);
        Assert.Equal("", r.StdOut);
    }

    /// <summary>Offsets in the version, counts, metadata, tensor infos and tensor data of the real file.</summary>
    [SharedDataTheory(Gguf)]
    [InlineData(5)]
    [InlineData(12)]
    [InlineData(20)]
    [InlineData(30)]
    [InlineData(200)]
    [InlineData(4000)]
    [InlineData(12000)]
    [InlineData(-100)] // 100 bytes short of the end: inside the last tensor's data
    public void Truncated_gguf_exits_2_naming_file_and_offset(int cut)
    {
        var bytes = File.ReadAllBytes(SharedData.Require(Gguf));
        using var dir = new TempDir();
        var path = dir.File("truncated.gguf");
        File.WriteAllBytes(path, bytes[..(cut >= 0 ? cut : bytes.Length + cut)]);
        AssertBadInputLine(CliRunner.Run("inspect", path), "truncated.gguf");
    }

    [SharedDataFact(Gguf)]
    public void Truncated_gguf_through_the_real_process_exits_2_with_one_line()
    {
        var bytes = File.ReadAllBytes(SharedData.Require(Gguf));
        using var dir = new TempDir();
        var path = dir.File("cut-short.gguf");
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
        AssertBadInputLine(CliProcess.Run("inspect", path), "cut-short.gguf");
    }

    [Fact]
    public void Safetensors_with_a_header_that_is_not_json_exits_2_naming_file_and_offset()
    {
        using var dir = new TempDir();
        WriteLlamaConfig(dir.File("config.json"));
        var header = "this is not json {"u8.ToArray();
        var file = new byte[8 + header.Length + 16];
        BitConverter.TryWriteBytes(file.AsSpan(0, 8), (ulong)header.Length);
        header.CopyTo(file, 8);
        File.WriteAllBytes(dir.File("model.safetensors"), file);

        AssertBadInputLine(CliRunner.Run("inspect", dir.Path), "model.safetensors");
        AssertBadInputLine(CliProcess.Run("inspect", dir.Path), "model.safetensors");
    }

    [Fact]
    public void Safetensors_with_an_absurd_header_length_exits_2_naming_file_and_offset()
    {
        using var dir = new TempDir();
        WriteLlamaConfig(dir.File("config.json"));
        var file = new byte[64];
        BitConverter.TryWriteBytes(file.AsSpan(0, 8), ulong.MaxValue / 2);
        File.WriteAllBytes(dir.File("model.safetensors"), file);
        AssertBadInputLine(CliRunner.Run("inspect", dir.Path), "model.safetensors");
    }

    [Fact]
    public void Gguf_with_wrong_version_exits_2_naming_file_and_offset()
    {
        using var dir = new TempDir();
        var path = dir.File("future.gguf");
        var bytes = new byte[64];
        "GGUF"u8.CopyTo(bytes);
        BitConverter.TryWriteBytes(bytes.AsSpan(4), 99u);
        File.WriteAllBytes(path, bytes);
        AssertBadInputLine(CliRunner.Run("inspect", path), "future.gguf");
    }

    /// <summary>A small but complete LlamaForCausalLM config.json, as transformers writes it.</summary>
    private static void WriteLlamaConfig(string path) => File.WriteAllText(path, """
        {
          "architectures": ["LlamaForCausalLM"],
          "model_type": "llama",
          "hidden_size": 64,
          "intermediate_size": 172,
          "num_hidden_layers": 2,
          "num_attention_heads": 8,
          "num_key_value_heads": 4,
          "vocab_size": 512,
          "max_position_embeddings": 256,
          "rms_norm_eps": 1e-05,
          "rope_theta": 10000.0,
          "tie_word_embeddings": false,
          "torch_dtype": "float32"
        }
        """);
}
