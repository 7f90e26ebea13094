using System.Text.Json;
using System.Text.Json.Serialization;

namespace EdgeQuant.Cli.Framework;

/// <summary>
/// The one way a command writes <c>--json</c>: a record serialized with snake_case names (later reports use
/// <c>ppl_unc</c>, <c>n_scored</c>, …), enums as snake_case strings, nulls omitted, and NaN/Infinity as the strings
/// "NaN"/"Infinity" rather than a serializer error. Nothing else may go to stdout in JSON mode.
/// </summary>
public static class JsonOutput
{
    public static JsonSerializerOptions Options { get; } = CreateOptions();

    public static void Write<T>(TextWriter writer, T report)
    {
        writer.Write(JsonSerializer.Serialize(report, Options));
        writer.WriteLine();
        writer.Flush();
    }

    public static string Serialize<T>(T report) => JsonSerializer.Serialize(report, Options);

    private static JsonSerializerOptions CreateOptions()
    {
        var o = new JsonSerializerOptions
        {
            PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
            DictionaryKeyPolicy = null,
            WriteIndented = true,
            DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
            NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
            Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        };
        o.Converters.Add(new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower));
        o.MakeReadOnly(populateMissingResolver: true);
        return o;
    }
}

/// <summary>
/// Writes a short list of integers on one line (<c>[512, 64]</c>) inside indented JSON: shapes and id lists read
/// better that way, and a 48-tensor report stays a screenful. Reads any JSON array of integers.
/// </summary>
public sealed class CompactInt64ListConverter : JsonConverter<IReadOnlyList<long>>
{
    public override IReadOnlyList<long> Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        JsonSerializer.Deserialize<long[]>(ref reader) ?? [];

    public override void Write(Utf8JsonWriter writer, IReadOnlyList<long> value, JsonSerializerOptions options) =>
        writer.WriteRawValue("[" + string.Join(", ", value.Select(v => v.ToString(System.Globalization.CultureInfo.InvariantCulture))) + "]", skipInputValidation: true);
}
