using System.Text;
using System.Text.Json;
using EdgeQuant.Core.Errors;

namespace EdgeQuant.Models.Tokenizers;

/// <summary>
/// Hugging Face tokenizer.json (+ tokenizer_config.json) in and out. Reading translates the HF pipeline into the
/// llama.cpp model of a tokenizer, the way llama.cpp's convert_hf_to_gguf.py does: added tokens become control
/// (special) or user-defined tokens, a known pre-tokenizer regex becomes its <c>tokenizer.ggml.pre</c> name, and a
/// SentencePiece-style BPE gets scores from its merge ranks (earlier merge = higher score).
/// </summary>
public sealed partial class Tokenizer
{
    /// <summary>Largest tokenizer.json read (the biggest real ones are ~20 MB).</summary>
    public const long MaxTokenizerJsonBytes = 512L << 20;

    // Scores for SentencePiece tokens that no merge produces: below every merge, so they are only formed last.
    private const float UnmergedScore = -1e9f;

    /// <summary>Loads a tokenizer.json file, or the tokenizer.json of an HF folder; tokenizer_config.json beside it is used when present.</summary>
    public static Tokenizer FromHuggingFace(string path)
    {
        string json = Directory.Exists(path) ? System.IO.Path.Combine(path, "tokenizer.json") : path;
        if (!File.Exists(json)) throw new BadInputException($"{path}: no tokenizer.json");
        var config = System.IO.Path.Combine(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(json))!, "tokenizer_config.json");
        return FromSpec(SpecFromHuggingFace(json, File.Exists(config) ? config : null));
    }

    private static JsonDocument ParseJson(string path)
    {
        var info = new FileInfo(path);
        if (info.Length > MaxTokenizerJsonBytes) throw new BadInputException($"{path}: {info.Length} bytes is larger than the {MaxTokenizerJsonBytes} bytes a tokenizer.json may have");
        try
        {
            return JsonDocument.Parse(File.ReadAllBytes(path), new JsonDocumentOptions { MaxDepth = 256 });
        }
        catch (JsonException e)
        {
            throw new FileFormatException(path, "json", e.BytePositionInLine, $"not valid JSON (line {e.LineNumber + 1}): {e.Message}", e);
        }
    }

    public static TokenizerSpec SpecFromHuggingFace(string jsonPath, string? configPath)
    {
        using var doc = ParseJson(jsonPath);
        var root = doc.RootElement;
        BadInputException Bad(string field, string problem) => new FileFormatException(jsonPath, field, null, problem);
        if (root.ValueKind != JsonValueKind.Object) throw Bad("(root)", "not a JSON object");
        if (!root.TryGetProperty("model", out var model) || model.ValueKind != JsonValueKind.Object)
            throw Bad("model", "missing: a tokenizer.json needs a model section");
        var modelType = Str(model, "type");
        if (modelType is not null && modelType != "BPE")
            throw Bad("model.type", $"'{modelType}' is not supported (supported: BPE)");
        if (!model.TryGetProperty("vocab", out var vocab) || vocab.ValueKind != JsonValueKind.Object)
            throw Bad("model.vocab", "missing or not an object");

        // Ids: vocab entries and added tokens; gaps become unused [PADn] tokens as in llama.cpp's converter.
        var byId = new Dictionary<int, string>();
        int count = 0;
        foreach (var p in vocab.EnumerateObject())
        {
            if (p.Value.ValueKind != JsonValueKind.Number || !p.Value.TryGetInt32(out int id) || id < 0)
                throw Bad($"model.vocab[\"{p.Name}\"]", "the id is not a non-negative integer");
            byId[id] = p.Name;
            count++;
        }
        var added = new List<(int Id, string Content, bool Special, bool LStrip, bool RStrip)>();
        if (root.TryGetProperty("added_tokens", out var at) && at.ValueKind == JsonValueKind.Array)
        {
            int i = 0;
            foreach (var a in at.EnumerateArray())
            {
                if (!a.TryGetProperty("id", out var idEl) || !idEl.TryGetInt32(out int id) || id < 0)
                    throw Bad($"added_tokens[{i}].id", "missing or not a non-negative integer");
                var content = Str(a, "content") ?? throw Bad($"added_tokens[{i}].content", "missing");
                added.Add((id, content, Bool(a, "special") ?? false, Bool(a, "lstrip") ?? false, Bool(a, "rstrip") ?? false));
                count++;
                i++;
            }
        }
        int maxId = byId.Keys.Concat(added.Select(a => a.Id)).DefaultIfEmpty(-1).Max();
        if (maxId < 0) throw Bad("model.vocab", "the vocabulary is empty");
        // An id far past the number of entries would make us allocate for nothing but padding.
        if (maxId > 2 * count + 1024) throw Bad("model.vocab", $"token id {maxId} is far beyond the {count} tokens given");

        bool byteFallback = Bool(model, "byte_fallback") ?? false;
        var normalizer = root.TryGetProperty("normalizer", out var nz) ? nz : default;
        var preTok = root.TryGetProperty("pre_tokenizer", out var pt) ? pt : default;
        var decoder = root.TryGetProperty("decoder", out var dc) ? dc : default;

        bool metaspace = HasType(preTok, "Metaspace") || HasType(decoder, "Metaspace") || HasReplaceSpace(normalizer);
        bool byteLevel = HasType(preTok, "ByteLevel") || HasType(decoder, "ByteLevel");
        TokenizerKind kind = byteFallback || metaspace ? TokenizerKind.SentencePiece
            : byteLevel ? TokenizerKind.ByteLevelBpe
            : throw Bad("pre_tokenizer", "neither byte-level (ByteLevel) nor SentencePiece-style (Metaspace, Replace ' ' with '▁', byte_fallback): not supported");

        int n = maxId + 1;
        var tokens = new string[n];
        var types = new int[n];
        for (int i = 0; i < n; i++)
        {
            if (byId.TryGetValue(i, out var t))
            {
                tokens[i] = t;
                types[i] = (int)(kind == TokenizerKind.SentencePiece && IsByteToken(t) ? GgufTokenType.Byte : GgufTokenType.Normal);
            }
            else
            {
                tokens[i] = $"[PAD{i}]";
                types[i] = (int)GgufTokenType.Unused;
            }
        }
        var extra = new Dictionary<int, TokenAttributes>();
        foreach (var a in added)
        {
            bool special = a.Special || LooksSpecial(a.Content);
            var content = a.Content;
            if (!special && kind == TokenizerKind.SentencePiece) content = content.Replace(Escape, ' ');
            tokens[a.Id] = content;
            types[a.Id] = (int)(special ? GgufTokenType.Control : GgufTokenType.UserDefined);
            var flags = (a.LStrip ? Tokenizers.TokenAttributes.LStrip : 0) | (a.RStrip ? Tokenizers.TokenAttributes.RStrip : 0);
            if (flags != 0) extra[a.Id] = flags;
        }
        int? unk = Str(model, "unk_token") is { } unkText ? Lookup(unkText) : null;
        if (unk is { } u && types[u] != (int)GgufTokenType.Control) types[u] = (int)GgufTokenType.Unknown;

        // Merges: "a b" strings or ["a", "b"] pairs; both parts and their concatenation must be tokens.
        var merges = new List<string>();
        var vocabSet = new HashSet<string>(byId.Values, StringComparer.Ordinal);
        if (model.TryGetProperty("merges", out var mg) && mg.ValueKind == JsonValueKind.Array)
        {
            int r = 0;
            foreach (var m in mg.EnumerateArray())
            {
                string a, b;
                if (m.ValueKind == JsonValueKind.String)
                {
                    var s = m.GetString()!;
                    int sp = s.Length > 1 ? s.IndexOf(' ', 1) : -1;
                    if (sp < 0) throw Bad($"model.merges[{r}]", $"'{s}' is not two tokens separated by a space");
                    a = s[..sp]; b = s[(sp + 1)..];
                }
                else if (m.ValueKind == JsonValueKind.Array && m.GetArrayLength() == 2 && m[0].ValueKind == JsonValueKind.String && m[1].ValueKind == JsonValueKind.String)
                {
                    a = m[0].GetString()!; b = m[1].GetString()!;
                }
                else throw Bad($"model.merges[{r}]", "neither \"a b\" nor [\"a\", \"b\"]");
                foreach (var part in (string[])[a, b, a + b])
                    if (!vocabSet.Contains(part)) throw Bad($"model.merges[{r}]", $"'{a} {b}' names '{part}', which is not in model.vocab");
                merges.Add(a + " " + b);
                r++;
            }
        }
        else if (kind == TokenizerKind.ByteLevelBpe) throw Bad("model.merges", "missing");

        var spec = new TokenizerSpec
        {
            Kind = kind,
            Tokens = tokens,
            TokenTypes = types,
            ExtraAttributes = extra,
            UnknownId = unk,
            IgnoreMerges = Bool(model, "ignore_merges") ?? false,
            SourcePath = jsonPath,
        };

        if (kind == TokenizerKind.SentencePiece)
        {
            var scores = new float[n];
            Array.Fill(scores, UnmergedScore);
            for (int i = 0; i < n; i++)
                if (tokens[i].Length == 1 || types[i] == (int)GgufTokenType.Byte) scores[i] = 0;
            var idOf = new Dictionary<string, int>(StringComparer.Ordinal);
            foreach (var (id, t) in byId) idOf[t] = id;
            for (int r = merges.Count - 1; r >= 0; r--)
            {
                var m = merges[r];
                int sp = m.IndexOf(' ', 1);
                scores[idOf[string.Concat(m.AsSpan(0, sp), m.AsSpan(sp + 1))]] = -r;
            }
            spec.Scores = scores;
            spec.AddSpacePrefix = SpacePrefix(normalizer, preTok, jsonPath);
            CheckNormalizer(normalizer, jsonPath, kind);
        }
        else
        {
            spec.Merges = merges;
            var (pre, patterns) = ByteLevelPreTokenizer(preTok, jsonPath);
            spec.Pre = pre;
            spec.PrePatterns = pre == "custom" ? patterns : null;
            CheckNormalizer(normalizer, jsonPath, kind);
        }

        ApplyTemplate(root, spec, Lookup);
        if (configPath is not null) ApplyConfig(configPath, spec, Lookup);
        return spec;

        int? Lookup(string text)
        {
            foreach (var a in added) if (a.Content == text) return a.Id;
            foreach (var (id, t) in byId) if (t == text) return id;
            return null;
        }
    }

    private static string? Str(JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    private static bool? Bool(JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean() : null;

    private static IEnumerable<JsonElement> Flatten(JsonElement e, string listName)
    {
        if (e.ValueKind != JsonValueKind.Object) yield break;
        if (Str(e, "type") == "Sequence" && e.TryGetProperty(listName, out var list) && list.ValueKind == JsonValueKind.Array)
        {
            foreach (var x in list.EnumerateArray())
                foreach (var y in Flatten(x, listName)) yield return y;
        }
        else yield return e;
    }

    private static bool HasType(JsonElement e, string type) =>
        Flatten(e, "pretokenizers").Concat(Flatten(e, "decoders")).Any(x => Str(x, "type") == type);

    private static bool HasReplaceSpace(JsonElement normalizer) =>
        Flatten(normalizer, "normalizers").Any(x => Str(x, "type") == "Replace" && Str(x, "content") == "\u2581");

    // convert_hf_to_gguf's does_token_look_special.
    private static bool LooksSpecial(string t) =>
        t is "<pad>" or "<mask>" or "<2mass>" or "[@BOS@]"
        || (t.StartsWith("<|", StringComparison.Ordinal) && t.EndsWith("|>", StringComparison.Ordinal))
        || (t.StartsWith("<｜", StringComparison.Ordinal) && t.EndsWith("｜>", StringComparison.Ordinal))
        || (t.StartsWith("<unused", StringComparison.Ordinal) && t.EndsWith('>'));

    private static bool SpacePrefix(JsonElement normalizer, JsonElement preTok, string path)
    {
        if (Flatten(normalizer, "normalizers").Any(x => Str(x, "type") == "Prepend" && Str(x, "prepend") == "\u2581")) return true;
        foreach (var m in Flatten(preTok, "pretokenizers").Where(x => Str(x, "type") == "Metaspace"))
        {
            var scheme = Str(m, "prepend_scheme");
            if (scheme is not null) return scheme != "never";
            return Bool(m, "add_prefix_space") ?? true;
        }
        return false;
    }

    private static void CheckNormalizer(JsonElement normalizer, string path, TokenizerKind kind)
    {
        int i = 0;
        foreach (var x in Flatten(normalizer, "normalizers"))
        {
            var type = Str(x, "type");
            bool ok = type switch
            {
                "Prepend" => Str(x, "prepend") == "\u2581",
                "Replace" => Str(x, "content") == "\u2581" && x.TryGetProperty("pattern", out var p) && Str(p, "String") == " ",
                // llama.cpp applies no Unicode normalization either: NFC is accepted and ignored, like its converter does.
                "NFC" => true,
                _ => false,
            };
            if (!ok) throw new FileFormatException(path, $"normalizer[{i}].type", null, $"'{type}' is not supported for a {KindName(kind)} tokenizer");
            i++;
        }
    }

    /// <summary>Maps an HF byte-level pre-tokenizer to a llama.cpp name, or "custom" with its regexes.</summary>
    private static (string Name, List<string> Patterns) ByteLevelPreTokenizer(JsonElement preTok, string path)
    {
        var patterns = new List<string>();
        int i = 0;
        foreach (var x in Flatten(preTok, "pretokenizers"))
        {
            var type = Str(x, "type");
            switch (type)
            {
                case "ByteLevel":
                    if (Bool(x, "use_regex") ?? true) patterns.Add(PreTokenizer.Gpt2Regex);
                    break;
                case "Split":
                    var pattern = x.TryGetProperty("pattern", out var p) ? Str(p, "Regex") ?? (Str(p, "String") is { } lit ? System.Text.RegularExpressions.Regex.Escape(lit) : null) : null;
                    if (pattern is null) throw new FileFormatException(path, $"pre_tokenizer[{i}].pattern", null, "missing");
                    var behavior = Str(x, "behavior") ?? "Isolated";
                    if (behavior != "Isolated" || Bool(x, "invert") is true)
                        throw new FileFormatException(path, $"pre_tokenizer[{i}].behavior", null, $"'{behavior}' splits are not supported (only Isolated, not inverted)");
                    patterns.Add(pattern);
                    break;
                case "Digits":
                    patterns.Add(Bool(x, "individual_digits") is true ? "\\p{N}" : "\\p{N}+");
                    break;
                default:
                    throw new FileFormatException(path, $"pre_tokenizer[{i}].type", null, $"unknown pre-tokenizer type '{type}'");
            }
            i++;
        }
        if (patterns.Count == 0) throw new FileFormatException(path, "pre_tokenizer", null, "missing: a byte-level tokenizer needs a pre-tokenizer");
        var canon = patterns.Select(p => p switch
        {
            PreTokenizer.Llama3RegexOriginal => PreTokenizer.Llama3Regex,
            PreTokenizer.Qwen2RegexOriginal => PreTokenizer.Qwen2Regex,
            _ => p,
        }).ToList();
        foreach (var name in PreTokenizer.KnownNames)
            if (PreTokenizer.PatternsFor(name)!.SequenceEqual(canon)) return (name, patterns);
        return ("custom", patterns);
    }

    private static void ApplyTemplate(JsonElement root, TokenizerSpec spec, Func<string, int?> lookup)
    {
        if (!root.TryGetProperty("post_processor", out var pp) || Str(pp, "type") != "TemplateProcessing") return;
        if (!pp.TryGetProperty("single", out var single) || single.ValueKind != JsonValueKind.Array || single.GetArrayLength() == 0) return;
        int? Special(JsonElement e) => e.TryGetProperty("SpecialToken", out var st) && Str(st, "id") is { } t ? lookup(t) : null;
        if (Special(single[0]) is { } b) { spec.AddBos = true; spec.BosId ??= b; }
        else spec.AddBos = false;
        if (Special(single[single.GetArrayLength() - 1]) is { } e) { spec.AddEos = true; spec.EosId ??= e; }
        else spec.AddEos = false;
    }

    private static void ApplyConfig(string configPath, TokenizerSpec spec, Func<string, int?> lookup)
    {
        using var doc = ParseJson(configPath);
        var c = doc.RootElement;
        if (c.ValueKind != JsonValueKind.Object) throw new FileFormatException(configPath, "(root)", null, "not a JSON object");
        string? TokenText(string name) =>
            c.TryGetProperty(name, out var v) ? v.ValueKind == JsonValueKind.String ? v.GetString() : Str(v, "content") : null;
        if (TokenText("bos_token") is { } bos && lookup(bos) is { } bid) spec.BosId = bid;
        if (TokenText("eos_token") is { } eos && lookup(eos) is { } eid) spec.EosId = eid;
        if (TokenText("unk_token") is { } unk && lookup(unk) is { } uid) spec.UnknownId = uid;
        if (TokenText("pad_token") is { } pad && lookup(pad) is { } pid) spec.PaddingId = pid;
        if (Bool(c, "add_bos_token") is { } ab) spec.AddBos = ab;
        if (Bool(c, "add_eos_token") is { } ae) spec.AddEos = ae;
        if (Str(c, "chat_template") is { } tpl) spec.ChatTemplate = tpl;
    }

    /// <summary>
    /// The tokenizer as a Hugging Face tokenizer.json: BPE model (merges by rank; for SentencePiece vocabularies the
    /// merges are every split of a token into two tokens, ordered by the token's score as HF's own converter does),
    /// added tokens for control/user-defined tokens, and the matching normalizer, pre-tokenizer and decoder.
    /// </summary>
    public string ToHuggingFaceJson()
    {
        var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            bool spm = Kind == TokenizerKind.SentencePiece;
            w.WriteStartObject();
            w.WriteString("version", "1.0");
            w.WriteNull("truncation");
            w.WriteNull("padding");
            w.WriteStartArray("added_tokens");
            for (int i = 0; i < _tokens.Length; i++)
            {
                var a = _attrs[i];
                if ((a & (Tokenizers.TokenAttributes.Control | Tokenizers.TokenAttributes.UserDefined | Tokenizers.TokenAttributes.Unknown)) == 0) continue;
                w.WriteStartObject();
                w.WriteNumber("id", i);
                w.WriteString("content", _tokens[i]);
                w.WriteBoolean("single_word", false);
                w.WriteBoolean("lstrip", (a & Tokenizers.TokenAttributes.LStrip) != 0);
                w.WriteBoolean("rstrip", (a & Tokenizers.TokenAttributes.RStrip) != 0);
                w.WriteBoolean("normalized", (a & Tokenizers.TokenAttributes.UserDefined) != 0);
                w.WriteBoolean("special", (a & Tokenizers.TokenAttributes.UserDefined) == 0);
                w.WriteEndObject();
            }
            w.WriteEndArray();

            if (spm && AddSpacePrefix)
            {
                w.WriteStartObject("normalizer");
                w.WriteString("type", "Sequence");
                w.WriteStartArray("normalizers");
                w.WriteStartObject(); w.WriteString("type", "Prepend"); w.WriteString("prepend", "\u2581"); w.WriteEndObject();
                WriteReplace(w, " ", "\u2581");
                w.WriteEndArray();
                w.WriteEndObject();
            }
            else if (spm)
            {
                w.WriteStartObject("normalizer");
                w.WriteString("type", "Sequence");
                w.WriteStartArray("normalizers");
                WriteReplace(w, " ", "\u2581");
                w.WriteEndArray();
                w.WriteEndObject();
            }
            else w.WriteNull("normalizer");

            if (spm) w.WriteNull("pre_tokenizer");
            else
            {
                w.WriteStartObject("pre_tokenizer");
                w.WriteString("type", "Sequence");
                w.WriteStartArray("pretokenizers");
                foreach (var p in PreTokenizer!.Patterns)
                {
                    w.WriteStartObject();
                    w.WriteString("type", "Split");
                    w.WriteStartObject("pattern"); w.WriteString("Regex", p); w.WriteEndObject();
                    w.WriteString("behavior", "Isolated");
                    w.WriteBoolean("invert", false);
                    w.WriteEndObject();
                }
                w.WriteStartObject();
                w.WriteString("type", "ByteLevel");
                w.WriteBoolean("add_prefix_space", false);
                w.WriteBoolean("trim_offsets", true);
                w.WriteBoolean("use_regex", false);
                w.WriteEndObject();
                w.WriteEndArray();
                w.WriteEndObject();
            }

            w.WriteStartObject("post_processor");
            w.WriteString("type", "TemplateProcessing");
            w.WriteStartArray("single");
            if (AddBos && BosId is { } b) WriteSpecialRef(w, _tokens[b]);
            w.WriteStartObject(); w.WriteStartObject("Sequence"); w.WriteString("id", "A"); w.WriteNumber("type_id", 0); w.WriteEndObject(); w.WriteEndObject();
            if (AddEos && EosId is { } e) WriteSpecialRef(w, _tokens[e]);
            w.WriteEndArray();
            w.WriteStartArray("pair");
            w.WriteEndArray();
            w.WriteStartObject("special_tokens");
            foreach (var id in new[] { AddBos ? BosId : null, AddEos ? EosId : null }.OfType<int>().Distinct())
            {
                w.WriteStartObject(_tokens[id]);
                w.WriteString("id", _tokens[id]);
                w.WriteStartArray("ids"); w.WriteNumberValue(id); w.WriteEndArray();
                w.WriteStartArray("tokens"); w.WriteStringValue(_tokens[id]); w.WriteEndArray();
                w.WriteEndObject();
            }
            w.WriteEndObject();
            w.WriteEndObject();

            w.WriteStartObject("decoder");
            if (spm)
            {
                w.WriteString("type", "Sequence");
                w.WriteStartArray("decoders");
                WriteReplace(w, "\u2581", " ");
                w.WriteStartObject(); w.WriteString("type", "ByteFallback"); w.WriteEndObject();
                w.WriteStartObject(); w.WriteString("type", "Fuse"); w.WriteEndObject();
                if (AddSpacePrefix)
                {
                    w.WriteStartObject(); w.WriteString("type", "Strip"); w.WriteString("content", " ");
                    w.WriteNumber("start", 1); w.WriteNumber("stop", 0); w.WriteEndObject();
                }
                w.WriteEndArray();
            }
            else
            {
                w.WriteString("type", "ByteLevel");
                w.WriteBoolean("add_prefix_space", false);
                w.WriteBoolean("trim_offsets", true);
                w.WriteBoolean("use_regex", true);
            }
            w.WriteEndObject();

            w.WriteStartObject("model");
            w.WriteString("type", "BPE");
            w.WriteNull("dropout");
            if (spm && UnknownId is { } u) w.WriteString("unk_token", _tokens[u]); else w.WriteNull("unk_token");
            w.WriteNull("continuing_subword_prefix");
            w.WriteNull("end_of_word_suffix");
            w.WriteBoolean("fuse_unk", spm);
            w.WriteBoolean("byte_fallback", spm);
            w.WriteBoolean("ignore_merges", IgnoreMerges);
            w.WriteStartObject("vocab");
            var written = new HashSet<string>(StringComparer.Ordinal);
            for (int i = 0; i < _tokens.Length; i++)
                if (written.Add(_tokens[i])) w.WriteNumber(_tokens[i], i);
            w.WriteEndObject();
            w.WriteStartArray("merges");
            foreach (var m in spm ? SentencePieceMerges() : (IEnumerable<string>)_merges!) w.WriteStringValue(m);
            w.WriteEndArray();
            w.WriteEndObject();
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(ms.ToArray());
    }

    /// <summary>tokenizer_config.json for <see cref="ToHuggingFaceJson"/>: special tokens, add_bos/add_eos, chat template.</summary>
    public string ToHuggingFaceConfigJson()
    {
        var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            w.WriteBoolean("add_bos_token", AddBos);
            w.WriteBoolean("add_eos_token", AddEos);
            if (BosId is { } b) w.WriteString("bos_token", _tokens[b]);
            if (EosId is { } e) w.WriteString("eos_token", _tokens[e]);
            if (UnknownId is { } u) w.WriteString("unk_token", _tokens[u]);
            if (PaddingId is { } p) w.WriteString("pad_token", _tokens[p]);
            if (ChatTemplate is not null) w.WriteString("chat_template", ChatTemplate);
            w.WriteBoolean("clean_up_tokenization_spaces", false);
            w.WriteString("tokenizer_class", Kind == TokenizerKind.SentencePiece ? "LlamaTokenizerFast" : "PreTrainedTokenizerFast");
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(ms.ToArray());
    }

    /// <summary>Writes tokenizer.json and tokenizer_config.json into a folder (each to a temp file, then renamed).</summary>
    public void WriteHuggingFace(string folder)
    {
        Directory.CreateDirectory(folder);
        WriteAtomically(System.IO.Path.Combine(folder, "tokenizer.json"), ToHuggingFaceJson());
        WriteAtomically(System.IO.Path.Combine(folder, "tokenizer_config.json"), ToHuggingFaceConfigJson());
    }

    private static void WriteAtomically(string path, string content)
    {
        var tmp = path + ".tmp-" + Environment.ProcessId;
        File.WriteAllText(tmp, content, new UTF8Encoding(false));
        File.Move(tmp, path, overwrite: true);
    }

    private static void WriteReplace(Utf8JsonWriter w, string from, string to)
    {
        w.WriteStartObject();
        w.WriteString("type", "Replace");
        w.WriteStartObject("pattern"); w.WriteString("String", from); w.WriteEndObject();
        w.WriteString("content", to);
        w.WriteEndObject();
    }

    private static void WriteSpecialRef(Utf8JsonWriter w, string token)
    {
        w.WriteStartObject();
        w.WriteStartObject("SpecialToken"); w.WriteString("id", token); w.WriteNumber("type_id", 0); w.WriteEndObject();
        w.WriteEndObject();
    }

    /// <summary>Every split of a normal token into two tokens, best-scored token first (HF's SentencePiece extractor order).</summary>
    private List<string> SentencePieceMerges()
    {
        var list = new List<(float Score, int Id, int Left, int Right, string Merge)>();
        for (int id = 0; id < _tokens.Length; id++)
        {
            if ((_attrs[id] & Tokenizers.TokenAttributes.Normal) == 0) continue;
            var t = _tokens[id];
            for (int k = 1; k < t.Length; k++)
            {
                if (char.IsLowSurrogate(t[k])) continue;
                if (_toId.TryGetValue(t[..k], out int l) && _toId.TryGetValue(t[k..], out int r)
                    && (_attrs[l] & Tokenizers.TokenAttributes.Normal) != 0 && (_attrs[r] & Tokenizers.TokenAttributes.Normal) != 0)
                    list.Add((_scores[id], id, l, r, t[..k] + " " + t[k..]));
            }
        }
        return list.OrderByDescending(x => x.Score).ThenBy(x => x.Id).ThenBy(x => x.Left).Select(x => x.Merge).ToList();
    }
}
