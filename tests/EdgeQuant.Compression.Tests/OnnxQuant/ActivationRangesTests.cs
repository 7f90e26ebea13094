using EdgeQuant.Compression.OnnxQuant;
using EdgeQuant.Core.Errors;
using EdgeQuant.Testing;

namespace EdgeQuant.Compression.Tests.OnnxQuant;

public sealed class ActivationRangesTests
{
    private static ActivationRanges Sample() => new(CalibrationMethod.Percentile, new Dictionary<string, LayerRange>
    {
        ["blk.10.ffn_down"] = new(-0.25f, 7.125f, -0.25f, 3.0000002f, 4096),
        ["blk.2.attn_q"] = new(-1.1e-7f, 3.4e38f, -1.1e-7f, 1.5f, 123456789012),
        ["output"] = new(-5f, 5f, -4.5f, 4.5f, 10),
    })
    {
        ModelName = "stories260K", ModelFile = "stories260K.gguf", ModelSha256 = "ab12", Percentile = 99.99, Symmetric = true,
        Sequences = 3, Tokens = 384, CalibrationSha256 = "cd34",
    };

    [Fact]
    public void Round_trip_keeps_every_field_bit_for_bit()
    {
        using var temp = new TempDir("eq-ranges");
        var a = Sample();
        string path = temp.File("sub/ranges.json");
        a.Write(path);
        var b = ActivationRanges.Read(path);
        Assert.Equal(a.Method, b.Method);
        Assert.Equal(a.Layers.Count, b.Layers.Count);
        foreach (var (k, v) in a.Layers) Assert.Equal(v, b.Layers[k]);
        Assert.Equal((a.ModelName, a.ModelFile, a.ModelSha256, a.Percentile, a.Bins, a.Symmetric, a.Sequences, a.Tokens, a.CalibrationSha256),
            (b.ModelName, b.ModelFile, b.ModelSha256, b.Percentile, b.Bins, b.Symmetric, b.Sequences, b.Tokens, b.CalibrationSha256));
        Assert.Equal(path, b.SourcePath);
        string text = File.ReadAllText(path);
        Assert.True(text.IndexOf("blk.2.attn_q", StringComparison.Ordinal) < text.IndexOf("blk.10.ffn_down", StringComparison.Ordinal), "layers in block order");
        Assert.Single(Directory.GetFiles(temp.File("sub"))); // no temporary left
        var missing = Assert.Throws<BadInputException>(() => b.Get("blk.0.attn_k"));
        Assert.Contains(path, missing.Message);
        Assert.Contains("layers.blk.0.attn_k", missing.Message);
    }

    [Theory]
    [InlineData("{", "not valid JSON")]
    [InlineData("[]", "'(root)'")]
    [InlineData("{\"method\":\"minmax\",\"layers\":{}}", "'schema_version' is missing")]
    [InlineData("{\"schema_version\":2,\"method\":\"minmax\",\"layers\":{}}", "'schema_version' is 2")]
    [InlineData("{\"schema_version\":1,\"method\":\"kl\",\"layers\":{}}", "'method' 'kl'")]
    [InlineData("{\"schema_version\":1,\"method\":\"mse\"}", "'layers' is missing")]
    [InlineData("{\"schema_version\":1,\"method\":\"mse\",\"layers\":{}}", "'layers' is empty")]
    [InlineData("{\"schema_version\":1,\"method\":\"mse\",\"layers\":{\"blk.0.attn_q\":{\"min\":0,\"max\":1,\"rmin\":0,\"samples\":5}}}", "'layers.blk.0.attn_q.rmax' is missing")]
    [InlineData("{\"schema_version\":1,\"method\":\"mse\",\"layers\":{\"blk.0.attn_q\":{\"min\":0,\"max\":1,\"rmin\":\"a\",\"rmax\":1,\"samples\":5}}}", "'layers.blk.0.attn_q.rmin' is \"a\"")]
    [InlineData("{\"schema_version\":1,\"method\":\"mse\",\"layers\":{\"blk.0.attn_q\":{\"min\":0,\"max\":1,\"rmin\":2,\"rmax\":1,\"samples\":5}}}", "'layers.blk.0.attn_q.rmin' 2 is above rmax 1")]
    [InlineData("{\"schema_version\":1,\"method\":\"mse\",\"layers\":{\"blk.0.attn_q\":{\"min\":0,\"max\":1e39,\"rmin\":0,\"rmax\":1,\"samples\":5}}}", "'layers.blk.0.attn_q.max' 1E+39 is outside")]
    [InlineData("{\"schema_version\":1,\"method\":\"mse\",\"layers\":{\"blk.0.attn_q\":{\"min\":0,\"max\":1,\"rmin\":0,\"rmax\":1,\"samples\":1.5}}}", "'layers.blk.0.attn_q.samples' is 1.5")]
    public void Bad_files_are_refused_naming_file_and_field(string json, string expected)
    {
        using var temp = new TempDir("eq-ranges");
        string path = temp.File("r.json");
        File.WriteAllText(path, json);
        var e = Assert.Throws<BadInputException>(() => ActivationRanges.Read(path));
        Assert.Contains(path, e.Message);
        Assert.Contains(expected, e.Message);
        Assert.Throws<BadInputException>(() => ActivationRanges.Read(temp.File("none.json")));
    }
}
