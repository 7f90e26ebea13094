using System.Text.Json;
using EdgeQuant.Core.Errors;

namespace EdgeQuant.Formats.Safetensors;

/// <summary>One tensor of a (possibly sharded) checkpoint and the shard holding it.</summary>
public sealed record SafetensorsEntry(SafetensorsFile File, SafetensorsTensorInfo Info)
{
    public string Name => Info.Name;
    public ReadOnlySpan<byte> Bytes => File.GetBytes(Info);
}

/// <summary>
/// The safetensors weights of a Hugging Face folder: one <c>model.safetensors</c>, or shards listed by
/// <c>model.safetensors.index.json</c> (its <c>weight_map</c> says which shard holds each tensor).
/// </summary>
public sealed class SafetensorsCheckpoint : IDisposable
{
    private readonly List<SafetensorsFile> _shards;
    private readonly Dictionary<string, SafetensorsEntry> _byName;

    private SafetensorsCheckpoint(List<SafetensorsFile> shards, List<SafetensorsEntry> entries, string? indexPath)
    {
        _shards = shards;
        Entries = entries;
        IndexPath = indexPath;
        _byName = entries.ToDictionary(e => e.Name, StringComparer.Ordinal);
    }

    public IReadOnlyList<SafetensorsFile> Shards => _shards;

    /// <summary>Every tensor, shard by shard in header order.</summary>
    public IReadOnlyList<SafetensorsEntry> Entries { get; }

    /// <summary>The index file when the checkpoint is sharded.</summary>
    public string? IndexPath { get; }

    public SafetensorsEntry? Find(string name) => _byName.GetValueOrDefault(name);

    /// <summary>Opens the weights of <paramref name="folderOrFile"/>: a folder (index or single file) or one .safetensors / index file.</summary>
    public static SafetensorsCheckpoint Open(string folderOrFile)
    {
        if (File.Exists(folderOrFile))
        {
            if (folderOrFile.EndsWith(".index.json", StringComparison.OrdinalIgnoreCase)) return OpenSharded(folderOrFile);
            return Single(folderOrFile);
        }
        if (!Directory.Exists(folderOrFile)) throw new BadInputException($"{folderOrFile}: no such file or folder");
        var index = Path.Combine(folderOrFile, SafetensorsConstants.IndexFileName);
        if (File.Exists(index)) return OpenSharded(index);
        var single = Path.Combine(folderOrFile, SafetensorsConstants.SingleFileName);
        if (File.Exists(single)) return Single(single);
        var any = Directory.GetFiles(folderOrFile, "*.safetensors");
        if (any.Length == 1) return Single(any[0]);
        if (any.Length > 1)
            throw new BadInputException($"{folderOrFile}: {any.Length} .safetensors files but no {SafetensorsConstants.IndexFileName} saying which tensor is where");
        var torch = File.Exists(Path.Combine(folderOrFile, "pytorch_model.bin")) ? " (pytorch_model.bin is not read: convert it to safetensors)" : "";
        throw new BadInputException($"{folderOrFile}: no {SafetensorsConstants.SingleFileName} or {SafetensorsConstants.IndexFileName}{torch}");
    }

    private static SafetensorsCheckpoint Single(string path)
    {
        var f = SafetensorsReader.Open(path);
        return new SafetensorsCheckpoint([f], f.Tensors.Select(t => new SafetensorsEntry(f, t)).ToList(), null);
    }

    private static SafetensorsCheckpoint OpenSharded(string indexPath)
    {
        var weightMap = SafetensorsIndex.ReadWeightMap(indexPath);
        var dir = Path.GetDirectoryName(Path.GetFullPath(indexPath))!;
        var shards = new List<SafetensorsFile>();
        var byShard = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
        try
        {
            foreach (var shardName in weightMap.Values.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal))
            {
                var shardPath = Path.Combine(dir, shardName);
                if (!File.Exists(shardPath))
                    throw new FileFormatException(indexPath, "weight_map", null, $"shard '{shardName}' does not exist beside the index");
                var f = SafetensorsReader.Open(shardPath);
                shards.Add(f);
                byShard.Add(shardName, f);
            }
            var entries = new List<SafetensorsEntry>();
            foreach (var f in shards)
                foreach (var t in f.Tensors)
                    if (weightMap.TryGetValue(t.Name, out var owner) && byShard[owner] == f)
                        entries.Add(new SafetensorsEntry(f, t));
            if (entries.Count != weightMap.Count)
            {
                var found = entries.Select(e => e.Name).ToHashSet(StringComparer.Ordinal);
                var missing = weightMap.First(p => !found.Contains(p.Key));
                throw new FileFormatException(indexPath, $"weight_map.{SafetensorsReader.Printable(missing.Key)}", null,
                    $"tensor is not in shard '{missing.Value}'");
            }
            return new SafetensorsCheckpoint(shards, entries, indexPath);
        }
        catch
        {
            foreach (var s in shards) s.Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        foreach (var s in _shards) s.Dispose();
    }
}

/// <summary>Reads and writes <c>model.safetensors.index.json</c>: <c>{"metadata": {"total_size": N}, "weight_map": {tensor: shard}}</c>.</summary>
public static class SafetensorsIndex
{
    public static Dictionary<string, string> ReadWeightMap(string indexPath)
    {
        var info = new FileInfo(indexPath);
        if (!info.Exists) throw new BadInputException($"{indexPath}: file not found");
        if (info.Length > SafetensorsConstants.MaxIndexBytes)
            throw new FileFormatException(indexPath, "file size", 0, $"{info.Length} bytes exceeds the {SafetensorsConstants.MaxIndexBytes}-byte limit for an index");
        byte[] bytes = File.ReadAllBytes(indexPath);
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(bytes, new JsonDocumentOptions { MaxDepth = 8 });
        }
        catch (JsonException e)
        {
            throw new FileFormatException(indexPath, "JSON", e.BytePositionInLine is { } b && e.LineNumber == 0 ? b : null,
                $"not valid JSON (line {e.LineNumber + 1}, byte {e.BytePositionInLine + 1} of the line)");
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new FileFormatException(indexPath, "root", 0, "is not a JSON object");
            if (!doc.RootElement.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
                throw new FileFormatException(indexPath, "weight_map", null, "is missing or not an object");
            var result = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var p in map.EnumerateObject())
            {
                if (p.Value.ValueKind != JsonValueKind.String)
                    throw new FileFormatException(indexPath, $"weight_map.{SafetensorsReader.Printable(p.Name)}", null, "is not a string");
                var shard = p.Value.GetString()!;
                // Shard names come from the file: never let one point outside the checkpoint's folder.
                if (shard.Length == 0 || shard != Path.GetFileName(shard) || shard is "." or ".." || shard.Contains('\\') || shard.Contains('\0'))
                    throw new FileFormatException(indexPath, $"weight_map.{SafetensorsReader.Printable(p.Name)}", null, $"'{SafetensorsReader.Printable(shard)}' is not a plain file name");
                if (!result.TryAdd(p.Name, shard))
                    throw new FileFormatException(indexPath, $"weight_map.{SafetensorsReader.Printable(p.Name)}", null, "appears twice");
            }
            if (result.Count == 0) throw new FileFormatException(indexPath, "weight_map", null, "is empty");
            return result;
        }
    }

    public static void Write(string indexPath, IReadOnlyDictionary<string, string> weightMap, long totalSize)
    {
        var tmp = indexPath + $".{Guid.NewGuid():N}.tmp";
        using (var fs = File.Create(tmp))
        using (var json = new Utf8JsonWriter(fs, new JsonWriterOptions { Indented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            json.WriteStartObject();
            json.WriteStartObject("metadata");
            json.WriteNumber("total_size", totalSize);
            json.WriteEndObject();
            json.WriteStartObject("weight_map");
            foreach (var (k, v) in weightMap.OrderBy(p => p.Key, StringComparer.Ordinal)) json.WriteString(k, v);
            json.WriteEndObject();
            json.WriteEndObject();
        }
        File.Move(tmp, indexPath, overwrite: true);
    }
}
