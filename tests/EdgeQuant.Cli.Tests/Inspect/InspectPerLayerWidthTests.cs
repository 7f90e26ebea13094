using System.Runtime.InteropServices;
using System.Text.Json;
using EdgeQuant.Cli.Tests.Infrastructure;
using EdgeQuant.Core.Tensors;
using EdgeQuant.Export;
using EdgeQuant.Fixtures;
using EdgeQuant.Models;
using EdgeQuant.Testing;

namespace EdgeQuant.Cli.Tests.Inspect;

/// <summary><c>inspect</c> of a GGUF whose layers differ in FFN width (written as llama.cpp's deci): per-layer widths shown.</summary>
public class InspectPerLayerWidthTests
{
    [Fact]
    public void Per_layer_widths_are_listed_in_json_and_text()
    {
        using var dir = new TempDir();
        var spec = FixtureSpec.Preset(FixtureArch.Llama, "tiny") with { Layers = 2, Seed = 12 };
        var gguf = FixtureMaker.Write(spec, dir.Path, FixtureFormats.Gguf).GgufPath!;
        var pruned = Path.Combine(dir.Path, "pruned.gguf");
        using (var source = ModelLoader.Load(gguf))
        {
            // Layer 1 keeps its first 10 FFN channels: rows of gate/up, columns of down.
            int d = spec.Embd, keep = 10;
            var tensors = source.Tensors.Select(t =>
            {
                var v = t.ToFloat32();
                (long[] shape, float[] data) = t.Name switch
                {
                    "blk.1.ffn_gate.weight" or "blk.1.ffn_up.weight" => (new long[] { keep, d }, v[..(keep * d)]),
                    "blk.1.ffn_down.weight" => (new long[] { d, keep }, Enumerable.Range(0, d * keep).Select(i => v[i / keep * spec.Ffn + i % keep]).ToArray()),
                    _ => (t.Shape, v),
                };
                return new ModelTensor
                {
                    Name = t.Name, SourceName = t.Name, Shape = shape, Type = TensorType.F32,
                    Storage = new ArrayTensorStorage(MemoryMarshal.AsBytes(data.AsSpan()).ToArray()),
                };
            }).ToList();
            var config = source.Config with { LayerFeedForwardLengths = [spec.Ffn, keep] };
            using var model = new Model(config, tensors, source.Tokenizer, source.Provenance);
            GgufExporter.Export(model, pruned);
        }

        var json = CliRunner.Run("inspect", pruned, "--json");
        Assert.True(json.ExitCode == 0, json.ToString());
        var hp = JsonDocument.Parse(json.StdOut).RootElement.GetProperty("hyperparameters");
        Assert.Equal(spec.Ffn, hp.GetProperty("feed_forward_length").GetInt32());
        Assert.Equal([spec.Ffn, 10], hp.GetProperty("layer_feed_forward_lengths").EnumerateArray().Select(e => e.GetInt32()));
        Assert.Equal([spec.Heads, spec.Heads], hp.GetProperty("layer_head_counts").EnumerateArray().Select(e => e.GetInt32()));

        var text = CliRunner.Run("inspect", pruned);
        Assert.True(text.ExitCode == 0, text.ToString());
        Assert.Contains("feed_forward_length per layer", text.StdOut);
        Assert.Contains($"{spec.Ffn}, 10", text.StdOut);

        // A uniform model has no per-layer fields.
        var plain = CliRunner.Run("inspect", gguf, "--json");
        Assert.False(JsonDocument.Parse(plain.StdOut).RootElement.GetProperty("hyperparameters").TryGetProperty("layer_head_counts", out _));
    }
}
