using System.Globalization;
using System.Text.Json;
using EdgeQuant.Core.Errors;

namespace EdgeQuant.Compression.OnnxQuant;

/// <summary>One linear layer input's calibration result.</summary>
/// <param name="Min">Smallest activation seen.</param>
/// <param name="Max">Largest activation seen.</param>
/// <param name="RangeMin">The chosen lower end of the quantization range (≥ Min).</param>
/// <param name="RangeMax">The chosen upper end (≤ Max).</param>
/// <param name="Samples">Activation values the range was computed from.</param>
public sealed record LayerRange(float Min, float Max, float RangeMin, float RangeMax, long Samples);

/// <summary>
/// Calibrated activation ranges per linear layer input, keyed by the engine's hook names (<c>blk.0.attn_q</c>, GPT-2's
/// <c>blk.0.attn_qkv</c>, <c>output</c>). Saved as JSON so a range can be reviewed, edited and reused:
/// <code>
/// { "schema_version": 1, "model": { "name": …, "source_file": …, "sha256": … }, "method": "entropy",
///   "percentile": 99.99, "bins": 2048, "symmetric": false, "sequences": 16, "tokens": 2048, "calibration_sha256": …,
///   "layers": { "blk.0.attn_q": { "min": …, "max": …, "rmin": …, "rmax": …, "samples": … }, … } }
/// </code>
/// </summary>
public sealed class ActivationRanges
{
    public const int CurrentSchemaVersion = 1;

    public ActivationRanges(CalibrationMethod method, IReadOnlyDictionary<string, LayerRange> layers)
    {
        Method = method;
        Layers = new Dictionary<string, LayerRange>(layers, StringComparer.Ordinal);
    }

    public CalibrationMethod Method { get; }

    public IReadOnlyDictionary<string, LayerRange> Layers { get; }

    public string? ModelName { get; init; }

    public string? ModelFile { get; init; }

    /// <summary>Hex SHA-256 of the model's weights when known (e.g. edgequant.source_sha256).</summary>
    public string? ModelSha256 { get; init; }

    /// <summary>Percentile method's kept share.</summary>
    public double? Percentile { get; init; }

    /// <summary>Entropy histogram bins.</summary>
    public int? Bins { get; init; }

    /// <summary>Ranges were chosen for symmetric INT8 activations.</summary>
    public bool Symmetric { get; init; }

    public int Sequences { get; init; }

    public long Tokens { get; init; }

    /// <summary>SHA-256 of the calibration data (<see cref="CalibrationSet.Sha256"/>) when the caller knows it.</summary>
    public string? CalibrationSha256 { get; init; }

    /// <summary>Where these ranges were read from (for error messages); null when computed.</summary>
    public string? SourcePath { get; init; }

    /// <summary>The range of <paramref name="layer"/>; a missing layer is bad input naming the file.</summary>
    public LayerRange Get(string layer) =>
        Layers.TryGetValue(layer, out var r) ? r
            : throw new BadInputException($"{SourcePath ?? "activation ranges"}: field 'layers.{layer}' is missing (the ranges were calibrated for {Layers.Count} other layers{(ModelName is null ? "" : $" of {ModelName}")})");

    public static string MethodName(CalibrationMethod m) => m switch
    {
        CalibrationMethod.MinMax => "minmax",
        CalibrationMethod.Percentile => "percentile",
        CalibrationMethod.Entropy => "entropy",
        CalibrationMethod.Mse => "mse",
        _ => throw new ArgumentOutOfRangeException(nameof(m), m, null),
    };

    public static CalibrationMethod? ParseMethod(string text) => text.ToLowerInvariant() switch
    {
        "minmax" => CalibrationMethod.MinMax,
        "percentile" => CalibrationMethod.Percentile,
        "entropy" => CalibrationMethod.Entropy,
        "mse" => CalibrationMethod.Mse,
        _ => null,
    };

    /// <summary>Writes the JSON to a temporary sibling and renames it over <paramref name="path"/>.</summary>
    public void Write(string path)
    {
        string full = Path.GetFullPath(path);
        string dir = Path.GetDirectoryName(full) ?? ".";
        Directory.CreateDirectory(dir);
        string temp = Path.Combine(dir, $".{Path.GetFileName(full)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = File.Create(temp))
            using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
            {
                w.WriteStartObject();
                w.WriteNumber("schema_version", CurrentSchemaVersion);
                w.WriteStartObject("model");
                WriteStringOrNull(w, "name", ModelName);
                WriteStringOrNull(w, "source_file", ModelFile);
                WriteStringOrNull(w, "sha256", ModelSha256);
                w.WriteEndObject();
                w.WriteString("method", MethodName(Method));
                if (Percentile is { } p) w.WriteNumber("percentile", p);
                if (Bins is { } b) w.WriteNumber("bins", b);
                w.WriteBoolean("symmetric", Symmetric);
                w.WriteNumber("sequences", Sequences);
                w.WriteNumber("tokens", Tokens);
                WriteStringOrNull(w, "calibration_sha256", CalibrationSha256);
                w.WriteStartObject("layers");
                foreach (var (name, r) in Layers.OrderBy(l => l.Key, LayerOrder.Instance))
                {
                    w.WriteStartObject(name);
                    w.WriteNumber("min", r.Min);
                    w.WriteNumber("max", r.Max);
                    w.WriteNumber("rmin", r.RangeMin);
                    w.WriteNumber("rmax", r.RangeMax);
                    w.WriteNumber("samples", r.Samples);
                    w.WriteEndObject();
                }
                w.WriteEndObject();
                w.WriteEndObject();
            }
            File.Move(temp, full, overwrite: true);
        }
        catch
        {
            try { File.Delete(temp); } catch (IOException) { }
            throw;
        }
    }

    private static void WriteStringOrNull(Utf8JsonWriter w, string name, string? value)
    {
        if (value is null) w.WriteNull(name);
        else w.WriteString(name, value);
    }

    /// <summary>Reads ranges written by <see cref="Write"/> (or by hand); every malformed field is bad input naming file and field.</summary>
    public static ActivationRanges Read(string path)
    {
        if (!File.Exists(path)) throw new BadInputException($"{path}: activation ranges file not found");
        var info = new FileInfo(path);
        // A ranges file holds a few numbers per layer; anything this large is not one.
        if (info.Length > 64L << 20) throw new BadInputException($"{path}: {info.Length} bytes is too large for an activation ranges file");
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(File.ReadAllBytes(path), new JsonDocumentOptions { MaxDepth = 8 });
        }
        catch (JsonException e)
        {
            throw new BadInputException($"{path}: not valid JSON at line {e.LineNumber + 1}, byte {e.BytePositionInLine}: {e.Message}");
        }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw Bad(path, "(root)", "is not a JSON object");
            int version = Int(path, root, "schema_version");
            if (version != CurrentSchemaVersion)
                throw Bad(path, "schema_version", $"is {version}; this EdgeQuant reads version {CurrentSchemaVersion}");
            string methodText = Str(path, root, "method")!;
            var method = ParseMethod(methodText) ?? throw Bad(path, "method", $"'{methodText}' is not minmax, percentile, entropy or mse");
            string? name = null, file = null, sha = null;
            if (root.TryGetProperty("model", out var model) && model.ValueKind != JsonValueKind.Null)
            {
                if (model.ValueKind != JsonValueKind.Object) throw Bad(path, "model", "is not an object");
                name = Str(path, model, "name", "model.", optional: true);
                file = Str(path, model, "source_file", "model.", optional: true);
                sha = Str(path, model, "sha256", "model.", optional: true);
            }
            if (!root.TryGetProperty("layers", out var layersElement)) throw Bad(path, "layers", "is missing");
            if (layersElement.ValueKind != JsonValueKind.Object) throw Bad(path, "layers", "is not an object");
            var layers = new Dictionary<string, LayerRange>(StringComparer.Ordinal);
            foreach (var layer in layersElement.EnumerateObject())
            {
                string prefix = $"layers.{layer.Name}.";
                if (layer.Value.ValueKind != JsonValueKind.Object) throw Bad(path, $"layers.{layer.Name}", "is not an object");
                float min = Float(path, layer.Value, "min", prefix), max = Float(path, layer.Value, "max", prefix);
                float rmin = Float(path, layer.Value, "rmin", prefix), rmax = Float(path, layer.Value, "rmax", prefix);
                long samples = Long(path, layer.Value, "samples", prefix);
                if (rmin > rmax) throw Bad(path, prefix + "rmin", $"{rmin} is above rmax {rmax}");
                if (min > max) throw Bad(path, prefix + "min", $"{min} is above max {max}");
                if (samples < 0) throw Bad(path, prefix + "samples", $"{samples} is negative");
                if (!layers.TryAdd(layer.Name, new LayerRange(min, max, rmin, rmax, samples)))
                    throw Bad(path, $"layers.{layer.Name}", "appears twice");
            }
            if (layers.Count == 0) throw Bad(path, "layers", "is empty");
            return new ActivationRanges(method, layers)
            {
                ModelName = name,
                ModelFile = file,
                ModelSha256 = sha,
                Percentile = root.TryGetProperty("percentile", out _) ? Double(path, root, "percentile") : null,
                Bins = root.TryGetProperty("bins", out _) ? Int(path, root, "bins") : null,
                Symmetric = root.TryGetProperty("symmetric", out var sym) && (sym.ValueKind is JsonValueKind.True or JsonValueKind.False
                    ? sym.GetBoolean() : throw Bad(path, "symmetric", "is not true or false")),
                Sequences = root.TryGetProperty("sequences", out _) ? Int(path, root, "sequences") : 0,
                Tokens = root.TryGetProperty("tokens", out _) ? Long(path, root, "tokens") : 0,
                CalibrationSha256 = Str(path, root, "calibration_sha256", optional: true),
                SourcePath = path,
            };
        }
    }

    private static BadInputException Bad(string path, string field, string what) => new($"{path}: field '{field}' {what}");

    private static JsonElement Field(string path, JsonElement o, string name, string prefix)
    {
        if (!o.TryGetProperty(name, out var v)) throw Bad(path, prefix + name, "is missing");
        return v;
    }

    private static string? Str(string path, JsonElement o, string name, string prefix = "", bool optional = false)
    {
        if (optional && !o.TryGetProperty(name, out _)) return null;
        var v = Field(path, o, name, prefix);
        if (optional && v.ValueKind == JsonValueKind.Null) return null;
        if (v.ValueKind != JsonValueKind.String) throw Bad(path, prefix + name, $"is {v.ValueKind}, not a string");
        return v.GetString();
    }

    private static double Double(string path, JsonElement o, string name, string prefix = "")
    {
        var v = Field(path, o, name, prefix);
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetDouble(out double d) || !double.IsFinite(d))
            throw Bad(path, prefix + name, $"is {Show(v)}, not a finite number");
        return d;
    }

    private static float Float(string path, JsonElement o, string name, string prefix)
    {
        double d = Double(path, o, name, prefix);
        if (Math.Abs(d) > float.MaxValue) throw Bad(path, prefix + name, $"{d} is outside the float range");
        // Parsed as float directly: the writer's shortest float text read as double and then rounded could (rarely) land on a neighbour.
        return o.GetProperty(name).TryGetSingle(out float f) && float.IsFinite(f) ? f : (float)d;
    }

    private static long Long(string path, JsonElement o, string name, string prefix = "")
    {
        var v = Field(path, o, name, prefix);
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt64(out long l)) throw Bad(path, prefix + name, $"is {Show(v)}, not an integer");
        return l;
    }

    private static int Int(string path, JsonElement o, string name, string prefix = "")
    {
        long l = Long(path, o, name, prefix);
        if (l is < int.MinValue or > int.MaxValue) throw Bad(path, prefix + name, $"{l} is out of range");
        return (int)l;
    }

    private static string Show(JsonElement v)
    {
        string raw = v.GetRawText();
        return raw.Length > 40 ? raw[..40] + "…" : raw;
    }

    /// <summary>blk.2 before blk.10, then by name.</summary>
    private sealed class LayerOrder : IComparer<string>
    {
        public static readonly LayerOrder Instance = new();

        public int Compare(string? a, string? b)
        {
            int ba = Block(a!), bb = Block(b!);
            return ba != bb ? ba.CompareTo(bb) : string.CompareOrdinal(a, b);
        }

        private static int Block(string name)
        {
            if (!name.StartsWith("blk.", StringComparison.Ordinal)) return int.MaxValue;
            int dot = name.IndexOf('.', 4);
            return dot > 4 && int.TryParse(name.AsSpan(4, dot - 4), NumberStyles.None, CultureInfo.InvariantCulture, out int n) ? n : int.MaxValue;
        }
    }
}
