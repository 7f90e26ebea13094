using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using EdgeQuant.Core.Errors;
using EdgeQuant.Models;

namespace EdgeQuant.Compression.Pruning;

/// <summary>What a sensitivity unit removes.</summary>
public enum SensitivityUnitKind
{
    /// <summary>A whole transformer block (its attention and FFN contributions to the residual stream).</summary>
    Layer,

    /// <summary>One KV-head group of a block: key/value head <c>Index</c> and the query heads that read it.</summary>
    Heads,

    /// <summary>The lowest-importance FFN channels of a block; <c>Index</c> is the level (0 = fewest channels).</summary>
    Channels,
}

/// <summary>
/// One measured unit: the model with this unit alone removed, compared with the dense model on the calibration
/// sequences. <see cref="Kld"/> is the mean KL(dense ‖ pruned) over every position, <see cref="Ppl"/> the pruned model's
/// perplexity on the calibration tokens, <see cref="Params"/> the parameters its removal saves.
/// </summary>
public sealed record SensitivityUnit
{
    public required int Rank { get; init; }
    public required SensitivityUnitKind Kind { get; init; }
    public required int Layer { get; init; }

    /// <summary>Layer: 0; heads: the KV head; channels: the level (its channel count is <see cref="Channels"/>).</summary>
    public required int Index { get; init; }

    /// <summary>Heads: the query heads of the group.</summary>
    public int[]? QueryHeads { get; init; }

    /// <summary>Channels: how many of the layer's lowest-importance channels (<see cref="SensitivityReport.ChannelOrder"/>) are removed.</summary>
    public int? Channels { get; init; }

    public required long Params { get; init; }
    public required double Kld { get; init; }
    public required double Ppl { get; init; }

    /// <summary>KLD per million parameters saved: the order units are ranked in and the auto planner removes them in.</summary>
    public double KldPerMParams => Params > 0 ? Math.Max(0, Kld) / Params * 1e6 : double.PositiveInfinity;

    public string Describe() => Kind switch
    {
        SensitivityUnitKind.Layer => $"layer {Layer}",
        SensitivityUnitKind.Heads => $"layer {Layer} kv head {Index} (q {string.Join(",", QueryHeads ?? [])})",
        _ => $"layer {Layer} ffn {Channels} ch",
    };
}

/// <summary>Which model a report was measured on: enough to refuse it for any other.</summary>
public sealed record SensitivityModelInfo
{
    public required string Path { get; init; }
    public string? Name { get; init; }
    public required string Architecture { get; init; }
    public required long Parameters { get; init; }
    public required int Layers { get; init; }
    public required int HeadDim { get; init; }
    public required int[] Heads { get; init; }
    public required int[] KvHeads { get; init; }
    public required int[] Ffn { get; init; }

    /// <summary>SHA-256 over every tensor's name and shape, in model order.</summary>
    public required string StructureSha256 { get; init; }

    /// <summary>SHA-256 over every tensor's name, type, shape and canonical bytes.</summary>
    public required string WeightsSha256 { get; init; }

    /// <summary>Tensor names and shapes ("name [a, b]"), to name the first difference when a report is used on another model.</summary>
    public required string[] Tensors { get; init; }
}

/// <summary>The calibration sequences a report was measured on.</summary>
public sealed record SensitivityCalibration(string? Sha256, int Sequences, int SequenceLength, long Tokens);

/// <summary>
/// The ranked result of <see cref="StructuredSensitivity.Measure"/>, written as JSON (<see cref="Write"/>) and read back
/// by <c>edgequant prune --plan auto --sensitivity-report</c> (<see cref="Read"/>).
/// </summary>
public sealed record SensitivityReport
{
    public const string SchemaName = "edgequant.sensitivity";
    public const int CurrentSchemaVersion = 1;

    public string Schema { get; init; } = SchemaName;
    public int SchemaVersion { get; init; } = CurrentSchemaVersion;
    public required SensitivityModelInfo Model { get; init; }
    public required SensitivityCalibration Calibration { get; init; }

    /// <summary>The dense model's perplexity on the calibration tokens (same positions as each unit's).</summary>
    public required double DensePpl { get; init; }

    /// <summary>The channel fractions the levels were made from.</summary>
    public required double[] ChannelFractions { get; init; }

    /// <summary>Per layer, FFN channel indices from least to most important (‖X_j‖₂ · ‖W_down[:, j]‖₂ on the calibration tokens).</summary>
    public required int[][] ChannelOrder { get; init; }

    /// <summary>Units from least to most harmful per parameter saved (<see cref="SensitivityUnit.KldPerMParams"/>).</summary>
    public required IReadOnlyList<SensitivityUnit> Units { get; init; }

    public double Seconds { get; init; }

    /// <summary>Ranks units by KLD per parameter saved (ties: kind, layer, index) and numbers them from 1.</summary>
    public static IReadOnlyList<SensitivityUnit> RankUnits(IEnumerable<SensitivityUnit> units) =>
        units.OrderBy(u => u.KldPerMParams).ThenBy(u => u.Kind).ThenBy(u => u.Layer).ThenBy(u => u.Index)
            .Select((u, i) => u with { Rank = i + 1 }).ToList();

    /// <summary>A Markdown table of the first <paramref name="top"/> units (all when null).</summary>
    public string ToMarkdown(int? top = null)
    {
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.AppendLine(inv, $"Sensitivity of {Model.Name ?? System.IO.Path.GetFileName(Model.Path)} ({Model.Parameters:N0} parameters) on {Calibration.Sequences} × {Calibration.SequenceLength} calibration tokens; dense PPL {DensePpl:F4}");
        sb.AppendLine();
        sb.AppendLine("| rank | unit | params | KLD | PPL | KLD / M params |");
        sb.AppendLine("|---:|---|---:|---:|---:|---:|");
        foreach (var u in Units.Take(top ?? int.MaxValue))
            sb.AppendLine(inv, $"| {u.Rank} | {u.Describe()} | {u.Params:N0} | {u.Kld:F6} | {u.Ppl:F4} | {u.KldPerMParams:G4} |");
        if (top is { } t && Units.Count > t) sb.AppendLine(inv, $"| … | {Units.Count - t} more | | | | |");
        return sb.ToString();
    }

    /// <summary>Writes the report as indented JSON (snake_case) to a temporary file renamed over <paramref name="path"/>.</summary>
    public void Write(string path)
    {
        var full = System.IO.Path.GetFullPath(path);
        var dir = System.IO.Path.GetDirectoryName(full);
        if (dir is not null && !Directory.Exists(dir)) throw new BadInputException($"{path}: the folder {dir} does not exist");
        var temp = full + ".tmp-" + Environment.ProcessId;
        try
        {
            File.WriteAllText(temp, ToJson());
            File.Move(temp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    /// <summary>Reads and checks a report written by <see cref="Write"/>.</summary>
    public static SensitivityReport Read(string path)
    {
        if (!File.Exists(path)) throw new BadInputException($"{path}: no such sensitivity report");
        var length = new FileInfo(path).Length;
        if (length > 256L << 20) throw new FileFormatException(path, "(file)", null, $"{length:N0} bytes is too large for a sensitivity report");
        return Parse(File.ReadAllText(path), path);
    }

    public static SensitivityReport Parse(string json, string source)
    {
        SensitivityReport? r;
        try { r = JsonSerializer.Deserialize<SensitivityReport>(json, Json); }
        catch (JsonException e) { throw new FileFormatException(source, e.Path ?? "(json)", e.BytePositionInLine, $"not a sensitivity report: {e.Message}", e); }
        if (r is null) throw new FileFormatException(source, "(json)", 0, "empty sensitivity report");
        if (r.Schema != SchemaName) throw new FileFormatException(source, "schema", null, $"'{r.Schema}' is not '{SchemaName}'");
        if (r.SchemaVersion is < 1 or > CurrentSchemaVersion)
            throw new FileFormatException(source, "schema_version", null, $"version {r.SchemaVersion} is not supported (this edgequant reads 1..{CurrentSchemaVersion})");
        var m = r.Model;
        if (m.Layers < 1 || m.Heads.Length != m.Layers || m.KvHeads.Length != m.Layers || m.Ffn.Length != m.Layers || r.ChannelOrder.Length != m.Layers)
            throw new FileFormatException(source, "model", null, $"per-layer lists do not all have {m.Layers} entries");
        for (int l = 0; l < m.Layers; l++)
        {
            var order = r.ChannelOrder[l] ?? throw new FileFormatException(source, $"channel_order[{l}]", null, "missing");
            if (order.Length != m.Ffn[l] || !IsPermutation(order))
                throw new FileFormatException(source, $"channel_order[{l}]", null, $"not a permutation of 0..{m.Ffn[l] - 1}");
        }
        var seen = new HashSet<(SensitivityUnitKind, int, int)>();
        for (int i = 0; i < r.Units.Count; i++)
        {
            var u = r.Units[i] ?? throw new FileFormatException(source, $"units[{i}]", null, "missing");
            string field = $"units[{i}]";
            // A unit listed twice would be removed (and charged) twice by the planner.
            if (!seen.Add((u.Kind, u.Layer, u.Index))) throw new FileFormatException(source, field, null, $"{u.Kind} unit {u.Index} of layer {u.Layer} is listed twice");
            if (u.Layer < 0 || u.Layer >= m.Layers) throw new FileFormatException(source, field + ".layer", null, $"{u.Layer} is outside 0..{m.Layers - 1}");
            if (u.Params <= 0 || !double.IsFinite(u.Kld) || !(u.Ppl > 0))
                throw new FileFormatException(source, field, null, "params must be positive and kld/ppl finite");
            bool ok = u.Kind switch
            {
                SensitivityUnitKind.Heads => u.Index >= 0 && u.Index < m.KvHeads[u.Layer],
                SensitivityUnitKind.Channels => u.Channels is { } c && c >= 1 && c < m.Ffn[u.Layer],
                _ => true,
            };
            if (!ok) throw new FileFormatException(source, field, null, $"{u.Kind} unit {u.Index} does not fit layer {u.Layer}");
        }
        return r;
    }

    /// <summary>
    /// Refuses the report for a model other than the one it was measured on: the first tensor whose name or shape
    /// differs is named; equal shapes with different weights are refused by the weights hash.
    /// </summary>
    public void CheckModel(Models.Model model, string reportPath)
    {
        var info = Describe(model);
        var mine = Model.Tensors;
        for (int i = 0; i < Math.Max(mine.Length, info.Tensors.Length); i++)
        {
            string? a = i < mine.Length ? mine[i] : null, b = i < info.Tensors.Length ? info.Tensors[i] : null;
            if (a != b)
                throw new BadInputException($"{reportPath}: the sensitivity report was measured on another model ({Model.Path}): tensor {i} is '{a ?? "(none)"}' there, '{b ?? "(none)"}' in {model.Provenance.SourcePath}");
        }
        if (info.WeightsSha256 != Model.WeightsSha256)
            throw new BadInputException($"{reportPath}: the sensitivity report was measured on another model ({Model.Path}, weights sha256 {Model.WeightsSha256[..12]}…); {model.Provenance.SourcePath} has the same shapes but different weights ({info.WeightsSha256[..12]}…)");
    }

    /// <summary>Identity and widths of <paramref name="model"/> (hashes its weights: one pass over every tensor).</summary>
    public static SensitivityModelInfo Describe(Models.Model model)
    {
        var c = model.Config;
        using var structure = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        using var weights = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var names = new List<string>();
        foreach (var t in model.Tensors)
        {
            string line = $"{t.Name} [{string.Join(", ", t.Shape)}]";
            names.Add(line);
            var bytes = Encoding.UTF8.GetBytes(line + "\n");
            structure.AppendData(bytes);
            weights.AppendData(bytes);
            weights.AppendData(Encoding.UTF8.GetBytes(t.Type + "\n"));
            weights.AppendData(t.RawBytes());
        }
        return new SensitivityModelInfo
        {
            Path = model.Provenance.SourcePath,
            Name = model.Provenance.Name,
            Architecture = c.Architecture.ToString().ToLowerInvariant(),
            Parameters = model.ParameterCount,
            Layers = c.BlockCount,
            HeadDim = c.HeadDim,
            Heads = Enumerable.Range(0, c.BlockCount).Select(c.HeadsIn).ToArray(),
            KvHeads = Enumerable.Range(0, c.BlockCount).Select(c.KvHeadsIn).ToArray(),
            Ffn = Enumerable.Range(0, c.BlockCount).Select(c.FeedForwardIn).ToArray(),
            StructureSha256 = Convert.ToHexStringLower(structure.GetHashAndReset()),
            WeightsSha256 = Convert.ToHexStringLower(weights.GetHashAndReset()),
            Tensors = names.ToArray(),
        };
    }

    private static bool IsPermutation(int[] order)
    {
        var seen = new bool[order.Length];
        foreach (int i in order)
        {
            if (i < 0 || i >= order.Length || seen[i]) return false;
            seen[i] = true;
        }
        return true;
    }

    private static readonly JsonSerializerOptions Json = CreateOptions();

    private static JsonSerializerOptions CreateOptions()
    {
        var o = new JsonSerializerOptions
        {
            PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
            WriteIndented = true,
            DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
            RespectRequiredConstructorParameters = true,
            RespectNullableAnnotations = true,
            // KLD per parameter of a unit saving nothing is infinite; it must survive the round trip.
            NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        };
        o.Converters.Add(new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower));
        o.MakeReadOnly(populateMissingResolver: true);
        return o;
    }
}
