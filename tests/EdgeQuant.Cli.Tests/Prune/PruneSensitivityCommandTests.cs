using System.Text.Json;
using EdgeQuant.Cli.Tests.Infrastructure;
using EdgeQuant.Compression.OnnxQuant;
using EdgeQuant.Compression.Pruning;
using EdgeQuant.Models;
using EdgeQuant.Models.Tokenizers;
using EdgeQuant.Testing;

namespace EdgeQuant.Cli.Tests.Prune;

/// <summary><c>edgequant prune --sensitivity</c> and <c>--plan auto</c>: the library's report and plan through the CLI, refusals.</summary>
public sealed class PruneSensitivityCommandTests : IDisposable
{
    private const string Stories = "models/stories260K/stories260K.gguf";
    private const string Text = "corpus/tinystories-sample.txt";
    private readonly TempDir _dir = new("eqsens");

    public void Dispose() => _dir.Dispose();

    private static readonly string[] Calib = ["--calib-samples", "4", "--calib-seq-len", "64", "--threads", "2"];

    private string Report()
    {
        string report = _dir.File("sens.json");
        if (File.Exists(report)) return report;
        var r = CliRunner.Run(["prune", SharedData.Require(Stories), "--sensitivity", "--calib", SharedData.Require(Text), "-o", report, .. Calib]);
        Assert.True(r.ExitCode == 0, r.ToString());
        return report;
    }

    [SharedDataFact(Stories, Text)]
    public void Sensitivity_writes_the_librarys_ranked_report_and_prints_its_top()
    {
        string stories = SharedData.Require(Stories), text = SharedData.Require(Text), report = _dir.File("sens.json");
        var r = CliRunner.Run(["prune", stories, "--sensitivity", "--calib", text, "-o", report, .. Calib]);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("| rank | unit | params | KLD | PPL | KLD / M params |", r.StdOut);
        Assert.Equal(20, r.StdOut.Split('\n').Count(l => System.Text.RegularExpressions.Regex.IsMatch(l, @"^\| \d+ \| layer ")));
        Assert.Contains("| … | 20 more |", r.StdOut);

        // The same measurement through the library: the same calibration windows and figures.
        using var model = ModelLoader.Load(stories);
        var calib = CalibrationData.Load([text], Tokenizer.FromModel(model), new CalibrationDataOptions { Samples = 4, SequenceLength = 64 });
        var lib = StructuredSensitivity.Measure(model, calib.Sequences, new SensitivityOptions { Threads = 2, CalibrationSha256 = calib.Sha256 });
        var written = SensitivityReport.Read(report);
        Assert.Equal(40, written.Units.Count); // 5 layers + 5 × 4 KV groups + 5 × 3 channel levels
        Assert.Equal(calib.Sha256, written.Calibration.Sha256);
        Assert.Equal(lib.Units.Select(u => (u.Kind, u.Layer, u.Index, u.Params, u.Kld, u.Ppl)), written.Units.Select(u => (u.Kind, u.Layer, u.Index, u.Params, u.Kld, u.Ppl)));
        Assert.Equal(lib.ChannelOrder, written.ChannelOrder);
        written.CheckModel(model, report);
    }

    [SharedDataFact(Stories, Text)]
    public void Auto_plan_from_a_report_writes_the_librarys_pruned_model()
    {
        string stories = SharedData.Require(Stories), report = Report(), output = _dir.File("auto.gguf");
        var r = CliRunner.Run("prune", stories, "--plan", "auto", "--uniform", "--target-params", "25%", "--sensitivity-report", report, "-o", output, "--json");
        Assert.True(r.ExitCode == 0, r.ToString());

        using var model = ModelLoader.Load(stories);
        long target = (long)Math.Round(model.ParameterCount * 0.75);
        var plan = AutoPlanner.Plan(model, SensitivityReport.Read(report), target, new AutoPlanOptions { Uniform = true });
        var lib = StructuredPruner.Apply(model, plan);
        using var written = ModelLoader.Load(output);
        Assert.True(written.ParameterCount <= target, $"{written.ParameterCount} > {target}");
        Assert.Equal(lib.Tensors.Select(t => t.Name).Order(), written.Tensors.Select(t => t.Name).Order());
        foreach (var t in lib.Tensors) Assert.Equal(t.ToFloat32(), written.Get(t.Name).ToFloat32());
        Assert.Equal(lib.Config with { SourceArchitecture = "" }, written.Config with { SourceArchitecture = "" });

        using var doc = JsonDocument.Parse(r.StdOut);
        var root = doc.RootElement;
        Assert.Equal(target, root.GetProperty("target").GetInt64());
        Assert.Equal(written.ParameterCount, root.GetProperty("parameters_after").GetInt64());
        Assert.True(root.GetProperty("estimated_kld").GetDouble() > 0);
        Assert.NotEmpty(root.GetProperty("steps").EnumerateArray());
    }

    [SharedDataFact(Stories, Text)]
    public void Auto_plan_uniform_measures_on_the_way_and_keeps_a_standard_config()
    {
        string stories = SharedData.Require(Stories), output = _dir.File("uniform.gguf");
        var r = CliRunner.Run(["prune", stories, "--plan", "auto", "--uniform", "--target-params", "250000", "--calib", SharedData.Require(Text), "-o", output, .. Calib]);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("parameters: 292,800 -> ", r.StdOut);
        using var written = ModelLoader.Load(output);
        Assert.True(written.ParameterCount <= 250_000);
        Assert.False(written.Config.HasPerLayerWidths);
    }

    [SharedDataTheory(Stories, Text)]
    [InlineData("needs calibration text", "--sensitivity")]
    [InlineData("--method does not apply", "--sensitivity", "--method", "heads", "--calib", "CALIB")]
    [InlineData("is not 'auto'", "--plan", "greedy", "--target-params", "10%", "--calib", "CALIB", "-o", "OUT")]
    [InlineData("needs --target-params", "--plan", "auto", "--calib", "CALIB", "-o", "OUT")]
    [InlineData("needs -o OUT", "--plan", "auto", "--target-params", "10%", "--calib", "CALIB")]
    [InlineData("not both", "--plan", "auto", "--target-params", "10%", "--calib", "CALIB", "--sensitivity-report", "REPORT", "-o", "OUT")]
    [InlineData("needs a sensitivity report", "--plan", "auto", "--target-params", "10%", "-o", "OUT")]
    [InlineData("no such sensitivity report", "--plan", "auto", "--target-params", "10%", "--sensitivity-report", "missing.json", "-o", "OUT")]
    [InlineData("nothing to remove", "--plan", "auto", "--target-params", "292800", "--sensitivity-report", "REPORT", "-o", "OUT")]
    [InlineData("below the minimum this report can reach", "--plan", "auto", "--target-params", "1000", "--sensitivity-report", "REPORT", "-o", "OUT")]
    [InlineData("percentage of parameters to remove", "--plan", "auto", "--target-params", "100%", "--sensitivity-report", "REPORT", "-o", "OUT")]
    [InlineData("-o/--output OUT is required", "--method", "magnitude")]
    [InlineData("--sequential applies to wanda and sparsegpt", "--method", "magnitude", "--sequential", "-o", "OUT")]
    [InlineData("--sequential applies to wanda and sparsegpt, not --method heads", "--method", "heads", "--sparsity", "0.25", "--sequential", "--calib", "CALIB", "-o", "OUT")]
    [InlineData("--sequential does not apply", "--sensitivity", "--sequential", "--calib", "CALIB")]
    public void Bad_input_exits_2_and_writes_nothing(string message, params string[] options)
    {
        string report = options.Contains("REPORT") ? Report() : "";
        string output = _dir.File("out.gguf");
        var args = new List<string> { "prune", SharedData.Require(Stories) };
        args.AddRange(options.Select(o => o switch { "CALIB" => SharedData.Require(Text), "OUT" => output, "REPORT" => report, _ => o }));
        args.AddRange(Calib);
        var r = CliRunner.Run([.. args]);
        Assert.True(r.ExitCode == 2, r.ToString());
        Assert.Single(r.ErrorLines);
        Assert.Contains(message, r.StdErr);
        Assert.False(File.Exists(output));
    }

    [SharedDataFact(Stories, Text)]
    public void A_report_from_another_model_is_refused()
    {
        string stories = SharedData.Require(Stories), report = Report(), output = _dir.File("out.gguf");
        var json = File.ReadAllText(report);
        // Same shapes, other weights (the hash differs) ...
        var info = SensitivityReport.Read(report).Model;
        string other = _dir.File("other-weights.json");
        File.WriteAllText(other, json.Replace(info.WeightsSha256, new string('0', 64)));
        var r = CliRunner.Run("prune", stories, "--plan", "auto", "--target-params", "10%", "--sensitivity-report", other, "-o", output);
        Assert.True(r.ExitCode == 2, r.ToString());
        Assert.Contains("same shapes but different weights", r.StdErr);
        // ... and other shapes: the first differing tensor is named.
        string shapes = _dir.File("other-shapes.json");
        File.WriteAllText(shapes, json.Replace("\"blk.0.attn_q.weight [64, 64]\"", "\"blk.0.attn_q.weight [64, 32]\""));
        r = CliRunner.Run("prune", stories, "--plan", "auto", "--target-params", "10%", "--sensitivity-report", shapes, "-o", output);
        Assert.True(r.ExitCode == 2, r.ToString());
        Assert.Contains("'blk.0.attn_q.weight [64, 32]' there, 'blk.0.attn_q.weight [64, 64]' in", r.StdErr);
        Assert.False(File.Exists(output));
    }
}
