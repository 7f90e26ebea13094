using System.Text.Json;
using System.Text.RegularExpressions;
using EdgeQuant.Core.Errors;

namespace EdgeQuant.Formats.HuggingFace;

/// <summary>
/// A tokenizer as tokenizer.json (+ tokenizer_config.json) describe it, in GGUF's terms: tokens by id, their types
/// (GGUF <c>tokenizer.ggml.token_type</c> values), merges as "a b" strings, special ids. A light read: no
/// normalizer/pre-tokenizer objects are built here.
/// </summary>
public sealed record HfTokenizerInfo
{
    /// <summary>"llama" (SentencePiece-style BPE with byte fallback / Metaspace) or "gpt2" (byte-level BPE).</summary>
    public required string Kind { get; init; }
    public string? Pre { get; init; }
    public required string[] Tokens { get; init; }
    public required int[] TokenTypes { get; init; }
    public required string[] Merges { get; init; }
    public int? BosId { get; init; }
    public int? EosId { get; init; }
    public int? UnknownId { get; init; }
    public int? PaddingId { get; init; }
    public bool? AddBos { get; init; }
    public bool? AddEos { get; init; }
    public string? ChatTemplate { get; init; }
    public required string SourcePath { get; init; }
}

/// <summary>GGUF's token type values (llama.cpp <c>llama_token_type</c>).</summary>
public static class GgufTokenType
{
    public const int Normal = 1;
    public const int Unknown = 2;
    public const int Control = 3;
    public const int UserDefined = 4;
    public const int Unused = 5;
    public const int Byte = 6;
}

public static partial class HfTokenizerReader
{
    public const string TokenizerFileName = "tokenizer.json";
    public const string TokenizerConfigFileName = "tokenizer_config.json";

    /// <summary>Real tokenizer.json files are at most tens of MB (Llama 3: 9 MB).</summary>
    public const long MaxTokenizerBytes = 256L << 20;

    /// <summary>Above any real vocabulary (Gemma: 256k); ids beyond it would drive a huge token table.</summary>
    public const int MaxVocab = 1 << 22;

    [GeneratedRegex("^<0x[0-9A-Fa-f]{2}>$")]
    private static partial Regex ByteToken();

    /// <summary>
    /// Reads the tokenizer of an HF folder. Returns null with a reason when the folder has no tokenizer.json or the
    /// tokenizer is of a kind EdgeQuant does not read (WordPiece, Unigram, …); malformed files throw.
    /// </summary>
    public static HfTokenizerInfo? Read(string folder, HfConfig? config, out string? unsupportedReason)
    {
        unsupportedReason = null;
        var path = Path.Combine(folder, TokenizerFileName);
        if (!File.Exists(path))
        {
            unsupportedReason = $"no {TokenizerFileName}";
            return null;
        }
        using var doc = ParseJson(path);
        var root = doc.RootElement;
        if (root.ValueKind != JsonValueKind.Object) throw new FileFormatException(path, "root", 0, "is not a JSON object");
        if (!root.TryGetProperty("model", out var model) || model.ValueKind != JsonValueKind.Object)
            throw new FileFormatException(path, "model", null, "is missing or not an object");
        var type = model.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : null;
        if (type is null && model.TryGetProperty("merges", out _)) type = "BPE";
        if (type != "BPE")
        {
            unsupportedReason = $"tokenizer model type '{type ?? "(none)"}' is not read (only BPE)";
            return null;
        }

        bool byteLevel = Mentions(root, "pre_tokenizer", "ByteLevel") || Mentions(root, "decoder", "ByteLevel");
        bool byteFallback = model.TryGetProperty("byte_fallback", out var bf) && bf.ValueKind == JsonValueKind.True;
        bool metaspace = Mentions(root, "pre_tokenizer", "Metaspace") || Mentions(root, "decoder", "Metaspace")
                         || Mentions(root, "normalizer", "Prepend") || Mentions(root, "decoder", "ByteFallback");
        string kind;
        if (byteLevel) kind = "gpt2";
        else if (byteFallback || metaspace) kind = "llama";
        else
        {
            unsupportedReason = "BPE tokenizer without ByteLevel or byte fallback/Metaspace is not read";
            return null;
        }

        if (!model.TryGetProperty("vocab", out var vocab) || vocab.ValueKind != JsonValueKind.Object)
            throw new FileFormatException(path, "model.vocab", null, "is missing or not an object");
        var byId = new Dictionary<int, string>();
        int maxId = -1;
        foreach (var p in vocab.EnumerateObject())
        {
            int id = Id(p.Value, path, $"model.vocab[{Short(p.Name)}]");
            if (!byId.TryAdd(id, p.Name))
                throw new FileFormatException(path, $"model.vocab[{Short(p.Name)}]", null, $"id {id} is also '{Short(byId[id])}'");
            maxId = Math.Max(maxId, id);
        }
        var special = new HashSet<int>();
        var userDefined = new HashSet<int>();
        if (root.TryGetProperty("added_tokens", out var added) && added.ValueKind == JsonValueKind.Array)
        {
            int i = 0;
            foreach (var a in added.EnumerateArray())
            {
                string field = $"added_tokens[{i++}]";
                if (a.ValueKind != JsonValueKind.Object || !a.TryGetProperty("id", out var idEl) || !a.TryGetProperty("content", out var c) || c.ValueKind != JsonValueKind.String)
                    throw new FileFormatException(path, field, null, "needs an integer id and a string content");
                int id = Id(idEl, path, field);
                byId[id] = c.GetString()!;
                maxId = Math.Max(maxId, id);
                bool isSpecial = a.TryGetProperty("special", out var s) && s.ValueKind == JsonValueKind.True;
                (isSpecial ? special : userDefined).Add(id);
            }
        }
        if (maxId < 0) throw new FileFormatException(path, "model.vocab", null, "is empty");

        var tokens = new string[maxId + 1];
        var types = new int[maxId + 1];
        var tokenIds = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int id = 0; id <= maxId; id++)
        {
            if (byId.TryGetValue(id, out var tok))
            {
                tokens[id] = tok;
                types[id] = special.Contains(id) ? GgufTokenType.Control
                    : userDefined.Contains(id) ? GgufTokenType.UserDefined
                    : kind == "llama" && ByteToken().IsMatch(tok) ? GgufTokenType.Byte
                    : GgufTokenType.Normal;
                tokenIds.TryAdd(tok, id);
            }
            else
            {
                // Ids without a token: llama.cpp's converter fills them the same way.
                tokens[id] = $"[PAD{id}]";
                types[id] = GgufTokenType.Unused;
            }
        }

        int? unk = null;
        if (model.TryGetProperty("unk_token", out var unkEl) && unkEl.ValueKind == JsonValueKind.String && tokenIds.TryGetValue(unkEl.GetString()!, out int u))
        {
            unk = u;
            types[u] = GgufTokenType.Unknown;
        }

        var merges = ReadMerges(model, path);

        // tokenizer_config.json: special tokens by content, add_bos/add_eos, chat template.
        int? bos = config?.BosTokenId, eos = config?.EosTokenId, pad = null;
        bool? addBos = null, addEos = null;
        string? chatTemplate = null;
        var tcPath = Path.Combine(folder, TokenizerConfigFileName);
        if (File.Exists(tcPath))
        {
            using var tc = ParseJson(tcPath);
            var r = tc.RootElement;
            if (r.ValueKind == JsonValueKind.Object)
            {
                bos = SpecialId(r, "bos_token", tokenIds) ?? bos;
                eos = SpecialId(r, "eos_token", tokenIds) ?? eos;
                pad = SpecialId(r, "pad_token", tokenIds);
                unk = SpecialId(r, "unk_token", tokenIds) ?? unk;
                addBos = Bool(r, "add_bos_token");
                addEos = Bool(r, "add_eos_token");
                chatTemplate = ChatTemplate(r);
            }
        }
        if (bos is { } b && (b < 0 || b > maxId)) bos = null;
        if (eos is { } e && (e < 0 || e > maxId)) eos = null;

        string? pre = kind == "gpt2"
            ? config?.Family switch
            {
                HfModelFamily.Gpt2 => "gpt-2",
                HfModelFamily.Qwen2 => "qwen2",
                _ => PreTokenizerIsPlainByteLevel(root) ? "gpt-2" : null,
            }
            : null;

        return new HfTokenizerInfo
        {
            Kind = kind,
            Pre = pre,
            Tokens = tokens,
            TokenTypes = types,
            Merges = merges,
            BosId = bos,
            EosId = eos,
            UnknownId = unk,
            PaddingId = pad,
            AddBos = addBos,
            AddEos = addEos,
            ChatTemplate = chatTemplate,
            SourcePath = path,
        };
    }

    private static JsonDocument ParseJson(string path)
    {
        var info = new FileInfo(path);
        if (info.Length > MaxTokenizerBytes)
            throw new FileFormatException(path, "file size", 0, $"{info.Length} bytes exceeds the {MaxTokenizerBytes}-byte limit");
        try
        {
            return JsonDocument.Parse(File.ReadAllBytes(path), new JsonDocumentOptions { MaxDepth = 64, AllowTrailingCommas = true });
        }
        catch (JsonException e)
        {
            throw new FileFormatException(path, "JSON", e.LineNumber == 0 ? e.BytePositionInLine : null,
                $"not valid JSON (line {e.LineNumber + 1}, byte {e.BytePositionInLine + 1} of the line)");
        }
    }

    private static string[] ReadMerges(JsonElement model, string path)
    {
        if (!model.TryGetProperty("merges", out var merges) || merges.ValueKind == JsonValueKind.Null) return [];
        if (merges.ValueKind != JsonValueKind.Array) throw new FileFormatException(path, "model.merges", null, "is not an array");
        var list = new List<string>(merges.GetArrayLength());
        int i = 0;
        foreach (var m in merges.EnumerateArray())
        {
            // Two spellings exist: "a b" (older) and ["a", "b"] (tokenizers >= 0.20, which allows spaces inside pieces).
            if (m.ValueKind == JsonValueKind.String) list.Add(m.GetString()!);
            else if (m.ValueKind == JsonValueKind.Array && m.GetArrayLength() == 2 && m[0].ValueKind == JsonValueKind.String && m[1].ValueKind == JsonValueKind.String)
                list.Add($"{m[0].GetString()} {m[1].GetString()}");
            else throw new FileFormatException(path, $"model.merges[{i}]", null, "is neither \"a b\" nor [\"a\", \"b\"]");
            i++;
        }
        return list.ToArray();
    }

    private static int Id(JsonElement e, string path, string field)
    {
        if (e.ValueKind != JsonValueKind.Number || !e.TryGetInt64(out long id) || id < 0 || id >= MaxVocab)
            throw new FileFormatException(path, field, null, $"id {Short(e.GetRawText())} is not an integer in 0..{MaxVocab - 1}");
        return (int)id;
    }

    private static bool Mentions(JsonElement root, string component, string typeName)
    {
        if (!root.TryGetProperty(component, out var c)) return false;
        return MentionsType(c, typeName, 0);
    }

    private static bool MentionsType(JsonElement e, string typeName, int depth)
    {
        if (depth > 8) return false;
        if (e.ValueKind == JsonValueKind.Object)
        {
            if (e.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String && t.GetString() == typeName) return true;
            foreach (var key in (ReadOnlySpan<string>)["pretokenizers", "decoders", "normalizers"])
                if (e.TryGetProperty(key, out var inner) && MentionsType(inner, typeName, depth + 1)) return true;
        }
        else if (e.ValueKind == JsonValueKind.Array)
        {
            foreach (var x in e.EnumerateArray())
                if (MentionsType(x, typeName, depth + 1)) return true;
        }
        return false;
    }

    private static bool PreTokenizerIsPlainByteLevel(JsonElement root) =>
        root.TryGetProperty("pre_tokenizer", out var p) && p.ValueKind == JsonValueKind.Object
        && p.TryGetProperty("type", out var t) && t.GetString() == "ByteLevel"
        && (!p.TryGetProperty("use_regex", out var r) || r.ValueKind == JsonValueKind.True);

    private static int? SpecialId(JsonElement r, string name, Dictionary<string, int> ids)
    {
        if (!r.TryGetProperty(name, out var v)) return null;
        string? content = v.ValueKind switch
        {
            JsonValueKind.String => v.GetString(),
            JsonValueKind.Object when v.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String => c.GetString(),
            _ => null,
        };
        return content is not null && ids.TryGetValue(content, out int id) ? id : null;
    }

    private static bool? Bool(JsonElement r, string name) =>
        r.TryGetProperty(name, out var v) && v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean() : null;

    private static string? ChatTemplate(JsonElement r)
    {
        if (!r.TryGetProperty("chat_template", out var v)) return null;
        if (v.ValueKind == JsonValueKind.String) return v.GetString();
        if (v.ValueKind == JsonValueKind.Array)
        {
            string? first = null;
            foreach (var x in v.EnumerateArray())
            {
                if (x.ValueKind != JsonValueKind.Object || !x.TryGetProperty("template", out var tt) || tt.ValueKind != JsonValueKind.String) continue;
                first ??= tt.GetString();
                if (x.TryGetProperty("name", out var n) && n.GetString() == "default") return tt.GetString();
            }
            return first;
        }
        return null;
    }

    private static string Short(string s) => s.Length > 40 ? s[..40] + "…" : s;
}
