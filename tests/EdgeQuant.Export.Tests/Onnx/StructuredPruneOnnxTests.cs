using EdgeQuant.Compression.Pruning;
using EdgeQuant.Export.Onnx;
using EdgeQuant.Models;
using EdgeQuant.Models.Engine;
using EdgeQuant.Models.Tokenizers;
using EdgeQuant.Runtimes.Evaluation;
using EdgeQuant.Runtimes.OnnxRuntime;
using EdgeQuant.Testing;
using Xunit.Abstractions;

namespace EdgeQuant.Export.Tests.Onnx;

/// <summary>A structurally pruned stories260K exported to ONNX runs in the real ONNX Runtime with the engine's logits.</summary>
public sealed class StructuredPruneOnnxTests(ITestOutputHelper output)
{
    private const string Stories = "models/stories260K/stories260K.gguf";
    private const string Text = "corpus/tinystories-sample.txt";

    [OnnxExportFact(Stories, Text)]
    public void Pruned_stories260K_in_onnx_runtime_gives_the_engines_logits()
    {
        using var model = ModelLoader.Load(SharedData.Require(Stories));
        var tokens = Tokenizer.FromModel(model).Encode(Perplexity.PrepareText(File.ReadAllText(SharedData.Require(Text))));
        var imp = StructuredImportance.Collect(model, tokens[..(128 * 4)], new CalibrationOptions { SequenceLength = 128, Samples = 4, Threads = 1 });
        var c = model.Config;
        var plans = new (string Name, StructuredPlan Plan)[]
        {
            ("heads 50% + channels 25%", StructuredPlanner.Combine(c, imp, [2, 2, 2, 2, 2], [43, 43, 43, 43, 43], 0)),
            ("1 of 5 layers", StructuredPlanner.Uniform(c, imp, StructuredMethod.Layers, 0.2)),
        };
        using var temp = new TempDir("eq-struct-onnx");
        var chunk = tokens[(128 * 10)..(128 * 11)];
        chunk[0] = 1;
        int i = 0;
        foreach (var (name, plan) in plans)
        {
            var pruned = StructuredPruner.Apply(model, plan);
            var r = OnnxExporter.Export(pruned, temp.File($"onnx{i++}"));
            var expected = ReferenceEngine.Load(pruned, new EngineOptions { Threads = 1 }).CreateSession(chunk.Length).DecodeAll(chunk);
            using var runner = OrtLogitsRunner.Open(r.ModelPath, new OrtLogitsRunnerOptions { Session = new OrtSessionSettings { IntraOpThreads = 1, InterOpThreads = 1 } });
            var actual = new float[expected.Length];
            runner.Evaluate(chunk, 0, Enumerable.Range(0, chunk.Length).ToArray(), actual);
            double rel = Numbers.RelativeL2(actual, expected);
            output.WriteLine($"{name}: {pruned.ParameterCount:N0} parameters, ORT vs engine rel L2 {rel:E2}");
            Assert.InRange(rel, 0, 1e-4);
        }
    }
}
