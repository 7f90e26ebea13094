using EdgeQuant.Export.Onnx;
using EdgeQuant.Fixtures;
using EdgeQuant.Formats.Onnx;
using EdgeQuant.Formats.Onnx.Proto;
using EdgeQuant.Models;
using EdgeQuant.Models.Engine;
using EdgeQuant.Runtimes.OnnxRuntime;
using EdgeQuant.Testing;
using Google.Protobuf;

namespace EdgeQuant.Export.Tests.Onnx;

public sealed class OnnxGraphBuilderTests
{
    [Theory]
    [InlineData(17, 8)]
    [InlineData(18, 8)]
    [InlineData(19, 9)]
    [InlineData(20, 9)]
    [InlineData(21, 10)]
    public void Ir_version_follows_the_opset(int opset, long ir)
    {
        using var b = new OnnxGraphBuilder("g", opset);
        b.Input("x", TensorProto.Types.DataType.Float, "n");
        b.Node("Identity", ["x"], ["y"]);
        b.Output("y", TensorProto.Types.DataType.Float, "n");
        var m = b.Build("test", "0");
        Assert.Equal(ir, m.IrVersion);
        Assert.Equal(opset, Assert.Single(m.OpsetImport).Version);
    }

    [Fact]
    public void Initializers_round_trip_through_the_project_reader_and_names_are_unique()
    {
        using var b = new OnnxGraphBuilder("g");
        float[] w = [1.5f, -2f, 3.25f, 0f, float.Epsilon, -0f];
        b.Initializer("w", w, 2, 3);
        Assert.Same(b.Int64s([1, 2]), b.Int64s([1, 2]));
        Assert.Throws<EdgeQuant.Core.Errors.InternalFailureException>(() => b.Initializer("w", w, 6));
        Assert.Throws<EdgeQuant.Core.Errors.InternalFailureException>(() => b.Initializer("bad", w, 4, 2));
        var m = ModelProto.Parser.ParseFrom(b.Build("test", "0").ToByteArray());
        var t = m.Graph.Initializer.Single(i => i.Name == "w");
        Assert.Equal([2L, 3L], t.Dims);
        Assert.Equal(w, OnnxTensorData.GetElements<float>(t, "test"));
    }

    [Fact]
    public void The_checker_rejects_a_broken_graph()
    {
        // Guards the checker helper itself: a graph reading an undefined value must fail it.
        using var temp = new TempDir("eq-onnx");
        using var b = new OnnxGraphBuilder("g");
        b.Input("x", TensorProto.Types.DataType.Float, "n");
        b.Node("Add", ["x", "nowhere"], ["y"]);
        b.Output("y", TensorProto.Types.DataType.Float, "n");
        var path = temp.File("broken.onnx");
        OnnxGraphBuilder.Save(b.Build("test", "0"), path);
        if (!OnnxChecker.Available) return;
        Assert.ThrowsAny<Xunit.Sdk.XunitException>(() => OnnxChecker.Check(path));
    }

    [OnnxExportTheory]
    [InlineData(18)]
    [InlineData(21)]
    public void Later_opsets_run_in_ort_and_agree_with_the_engine(int opset)
    {
        // Opset 18 moved ReduceMean's axes to an input; onnx 1.12's checker cannot judge these, ORT can run them.
        using var temp = new TempDir("eq-onnx");
        var spec = new FixtureSpec { Layers = 1, Embd = 32, Heads = 4, KvHeads = 2, Ffn = 48, Vocab = 300, Seed = 51 };
        using var model = ModelLoader.Load(FixtureMaker.Write(spec, temp.Path, FixtureFormats.Gguf).GgufPath!);
        var r = OnnxExporter.Export(model, temp.File("onnx"), new OnnxExportOptions { Opset = opset });
        var tokens = Numbers.RandomTokens(10, spec.Vocab, 5);
        var expected = ReferenceEngine.Load(model, new EngineOptions { Threads = 1 }).CreateSession(tokens.Length).DecodeAll(tokens);
        using var runner = OrtLogitsRunner.Open(r.ModelPath);
        var logits = new float[expected.Length];
        runner.Evaluate(tokens, 0, Enumerable.Range(0, tokens.Length).ToArray(), logits);
        Assert.InRange(Numbers.RelativeL2(logits, expected), 0, 1e-4);
    }
}
