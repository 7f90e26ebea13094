using System.Text.Json;
using EdgeQuant.Cli.Tests.Eval;
using EdgeQuant.Cli.Tests.Infrastructure;
using EdgeQuant.Testing;

namespace EdgeQuant.Cli.Tests.Export;

/// <summary>
/// <c>edgequant export --format onnx</c> end to end through the CLI: the folder it writes runs in ONNX Runtime under
/// <c>edgequant eval</c> with the engine's perplexity on the same text (issue 8's 0.1% bound).
/// </summary>
public sealed class OnnxExportCommandTests : IDisposable
{
    private const string Gguf = "models/stories260K/stories260K.gguf";
    private const string Text = "corpus/tinystories-sample.txt";

    private readonly TempDir _dir = new("eqonnxcli");

    public void Dispose() => _dir.Dispose();

    [OnnxRuntimeFact(Gguf, Text)]
    public void Exported_folder_evaluates_in_onnx_runtime_as_the_engine_does()
    {
        var outDir = _dir.File("stories-onnx");
        var export = CliRunner.Run("export", SharedData.Require(Gguf), "--format", "onnx", "-o", outDir, "--json");
        Assert.True(export.ExitCode == 0, export.ToString());
        foreach (var file in new[] { "model.onnx", "tokenizer.json", "genai_config.json" })
            Assert.True(File.Exists(Path.Combine(outDir, file)), $"{file} missing from {outDir}");

        double Ppl(string model, string runtime)
        {
            var r = CliRunner.Run("eval", model, "--text", SharedData.Require(Text), "--ctx", "128", "--chunks", "6",
                "--runtime", runtime, "--threads", "1", "--json");
            Assert.True(r.ExitCode == 0, r.ToString());
            var json = JsonDocument.Parse(r.StdOut).RootElement;
            Assert.Equal(6 * 63, json.GetProperty("n_scored").GetInt32());
            return json.GetProperty("ppl").GetDouble();
        }
        double engine = Ppl(SharedData.Require(Gguf), "engine");
        double ort = Ppl(Path.Combine(outDir, "model.onnx"), "onnxruntime");
        Assert.True(Math.Abs(ort / engine - 1) <= 1e-3, $"ONNX Runtime PPL {ort} vs engine {engine}");

        // An existing folder is refused without --force, and nothing in it changes.
        var before = File.ReadAllBytes(Path.Combine(outDir, "model.onnx"));
        var again = CliRunner.Run("export", SharedData.Require(Gguf), "--format", "onnx", "-o", outDir);
        Assert.Equal(2, again.ExitCode);
        Assert.Contains("--force", again.StdErr);
        Assert.Equal(before, File.ReadAllBytes(Path.Combine(outDir, "model.onnx")));
    }
}
