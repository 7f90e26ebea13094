using System.Text.Json;
using System.Text.Json.Serialization;
using EdgeQuant.Cli.Framework;
using EdgeQuant.Models;

namespace EdgeQuant.Cli.Tests.Framework;

public class JsonOutputTests
{
    private sealed record Sample(
        double PplUnc,
        int NScored,
        string? Missing,
        ModelFormat Format,
        float NotANumber,
        [property: JsonConverter(typeof(CompactInt64ListConverter))] IReadOnlyList<long> Shape);

    [Fact]
    public void Records_serialize_with_snake_case_names_enums_as_strings_nulls_omitted_and_nan_as_a_string()
    {
        var writer = new StringWriter();
        JsonOutput.Write(writer, new Sample(0.07, 49911, null, ModelFormat.HuggingFace, float.NaN, [512, 64]));
        var text = writer.ToString();
        using var doc = JsonDocument.Parse(text);
        var root = doc.RootElement;
        Assert.Equal(0.07, root.GetProperty("ppl_unc").GetDouble());
        Assert.Equal(49911, root.GetProperty("n_scored").GetInt32());
        Assert.False(root.TryGetProperty("missing", out _));
        Assert.Equal("hugging_face", root.GetProperty("format").GetString());
        Assert.Equal("NaN", root.GetProperty("not_a_number").GetString());
        Assert.Equal([512L, 64L], root.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()));
        Assert.Contains("\"shape\": [512, 64]", text);
        Assert.EndsWith("\n", text);
    }

    [Fact]
    public void Compact_list_round_trips()
    {
        var json = JsonOutput.Serialize(new Sample(1, 2, null, ModelFormat.Gguf, 0, [3, 4, 5]));
        var back = JsonSerializer.Deserialize<Sample>(json, JsonOutput.Options)!;
        Assert.Equal([3L, 4L, 5L], back.Shape);
        Assert.Equal(ModelFormat.Gguf, back.Format);
    }
}
