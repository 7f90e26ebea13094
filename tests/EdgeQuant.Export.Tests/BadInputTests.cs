using System.Runtime.InteropServices;
using EdgeQuant.Core.Errors;
using EdgeQuant.Core.Tensors;
using EdgeQuant.Fixtures;
using EdgeQuant.Formats.Gguf;
using EdgeQuant.Models;
using EdgeQuant.Testing;

namespace EdgeQuant.Export.Tests;

/// <summary>Models the exporters must refuse (exit-2 errors naming the tensor) without leaving a file behind.</summary>
public sealed class BadInputTests : IDisposable
{
    private readonly TempDir _dir = new("eq-export-bad");

    public void Dispose() => _dir.Dispose();

    private static readonly FixtureSpec Spec = new() { Layers = 1, Embd = 32, Heads = 4, KvHeads = 2, Ffn = 48, Vocab = 300, Seed = 61 };

    /// <summary>The fixture with one tensor's values replaced (and optionally its shape).</summary>
    private Model WithTensor(string name, Func<float[], float[]> edit, long[]? shape = null)
    {
        var src = FixtureMaker.Write(Spec, _dir.File("src"), FixtureFormats.Gguf).GgufPath!;
        var model = ModelLoader.Load(src);
        var tensors = model.Tensors.Select(t => t.Name != name ? t : new ModelTensor
        {
            Name = t.Name,
            Shape = shape ?? t.Shape,
            Type = TensorType.F32,
            SourceName = t.SourceName,
            Storage = new ArrayTensorStorage(MemoryMarshal.AsBytes(edit(t.ToFloat32()).AsSpan()).ToArray()),
        }).ToList();
        return new Model(model.Config, tensors, model.Tokenizer, model.Provenance, model.Metadata, [model]);
    }

    private string Out() => Path.Combine(Directory.CreateDirectory(_dir.File("out")).FullName, "model.gguf");

    private void AssertOutEmpty() => Assert.Empty(Directory.EnumerateFileSystemEntries(_dir.File("out")));

    [Theory]
    [InlineData(float.NaN)]
    [InlineData(float.PositiveInfinity)]
    public void Nonfinite_weight_is_refused_naming_the_tensor_unless_allowed(float bad)
    {
        using var model = WithTensor("blk.0.ffn_up.weight", v => { v[17] = bad; return v; });
        var output = Out();
        var e = Assert.Throws<BadInputException>(() => GgufExporter.Export(model, output));
        Assert.Contains("blk.0.ffn_up.weight", e.Message);
        Assert.Contains("element 17", e.Message);
        AssertOutEmpty();
        Assert.Throws<BadInputException>(() => HfExporter.Export(model, _dir.File("out/hf")));
        AssertOutEmpty();

        GgufExporter.Export(model, output, new GgufExportOptions { AllowNonFinite = true });
        using var g = GgufReader.Read(output);
        var written = MemoryMarshal.Cast<byte, float>(g.TensorData(g.FindTensor("blk.0.ffn_up.weight")!));
        Assert.Equal(BitConverter.SingleToInt32Bits(bad), BitConverter.SingleToInt32Bits(written[17]));
    }

    /// <summary>A finite F32 value beyond F16's range (65504) would become Inf in an F16 export: refused too.</summary>
    [Fact]
    public void F16_overflow_is_refused()
    {
        using var model = WithTensor("token_embd.weight", v => { v[5] = 1e6f; return v; });
        var output = Out();
        var e = Assert.Throws<BadInputException>(() => GgufExporter.Export(model, output, new GgufExportOptions { OutType = TensorType.F16 }));
        Assert.Contains("token_embd.weight", e.Message);
        AssertOutEmpty();
        // BF16 has F32's range: the same model exports, and the value is F32's rounded to BF16.
        GgufExporter.Export(model, output, new GgufExportOptions { OutType = TensorType.BF16 });
        using var g = GgufReader.Read(output);
        var t = g.FindTensor("token_embd.weight")!;
        Assert.Equal(TensorType.BF16, t.Type);
        Assert.Equal(32u, g.Find("general.file_type")!.Value);
        Assert.Equal(HalfConversions.F32ToBF16(1e6f), BitConverter.ToUInt16(g.TensorData(t).Slice(5 * 2, 2)));
    }

    [Fact]
    public void Tensor_whose_shape_contradicts_the_config_is_refused()
    {
        using var model = WithTensor("blk.0.attn_k.weight", v => v, shape: [32, 8]);
        var e = Assert.Throws<BadInputException>(() => GgufExporter.Export(model, Out()));
        Assert.Contains("blk.0.attn_k.weight", e.Message);
        Assert.Contains("[16, 32]", e.Message);
        AssertOutEmpty();
    }

    [Fact]
    public void Output_inside_the_input_folder_is_refused()
    {
        var hf = FixtureMaker.Write(Spec, _dir.File("srchf"), FixtureFormats.HuggingFace).HuggingFaceDir!;
        using var model = ModelLoader.Load(hf);
        var e = Assert.Throws<BadInputException>(() => HfExporter.Export(model, Path.Combine(hf, "nested")));
        Assert.Contains("inside the input folder", e.Message);
        Assert.False(Directory.Exists(Path.Combine(hf, "nested")));
    }

    [Fact]
    public void Output_of_the_wrong_kind_is_refused_even_with_overwrite()
    {
        using var model = WithTensor("token_embd.weight", v => v);
        var folder = Directory.CreateDirectory(_dir.File("a-folder")).FullName;
        var e = Assert.Throws<BadInputException>(() => GgufExporter.Export(model, folder, new GgufExportOptions { Overwrite = true }));
        Assert.Contains("is a folder", e.Message);
        Assert.True(Directory.Exists(folder));
        var file = _dir.File("a-file");
        File.WriteAllText(file, "x");
        var f = Assert.Throws<BadInputException>(() => HfExporter.Export(model, file, new HfExportOptions { Overwrite = true }));
        Assert.Contains("is a file", f.Message);
        Assert.Equal("x", File.ReadAllText(file));
    }

    [Fact]
    public void Cancellation_leaves_no_temporary_file()
    {
        using var model = WithTensor("token_embd.weight", v => v);
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        Assert.ThrowsAny<OperationCanceledException>(() => GgufExporter.Export(model, Out(), cancellationToken: cts.Token));
        AssertOutEmpty();
        Assert.ThrowsAny<OperationCanceledException>(() => HfExporter.Export(model, _dir.File("out/hf"), cancellationToken: cts.Token));
        AssertOutEmpty();
    }
}
