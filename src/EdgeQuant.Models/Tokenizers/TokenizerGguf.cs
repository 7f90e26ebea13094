using EdgeQuant.Core.Errors;
using EdgeQuant.Formats.Gguf;

namespace EdgeQuant.Models.Tokenizers;

/// <summary>GGUF <c>tokenizer.ggml.*</c> key names (llama-arch.cpp's LLM_KV_TOKENIZER_*).</summary>
public static class GgufTokenizerKeys
{
    public const string Model = "tokenizer.ggml.model";
    public const string Pre = "tokenizer.ggml.pre";
    public const string Tokens = "tokenizer.ggml.tokens";
    public const string TokenType = "tokenizer.ggml.token_type";
    public const string Scores = "tokenizer.ggml.scores";
    public const string Merges = "tokenizer.ggml.merges";
    public const string BosId = "tokenizer.ggml.bos_token_id";
    public const string EosId = "tokenizer.ggml.eos_token_id";
    public const string UnknownId = "tokenizer.ggml.unknown_token_id";
    public const string PaddingId = "tokenizer.ggml.padding_token_id";
    public const string AddBos = "tokenizer.ggml.add_bos_token";
    public const string AddEos = "tokenizer.ggml.add_eos_token";
    public const string AddSpacePrefix = "tokenizer.ggml.add_space_prefix";
    public const string ChatTemplate = "tokenizer.chat_template";
    public const string GeneralName = "general.name";
}

public sealed partial class Tokenizer
{
    /// <summary>Reads a GGUF file (full model or vocab-only) and builds its tokenizer.</summary>
    public static Tokenizer FromGguf(string path)
    {
        using var file = GgufReader.Read(path);
        return FromGguf(file);
    }

    public static Tokenizer FromGguf(GgufFile file) => FromSpec(SpecFromGguf(file.Path, k => file.FindEntry(k) is { } e ? (e.Value, e.Offset) : null));

    /// <summary>
    /// The tokenizer of a loaded model: from the GGUF key/values when the model came from GGUF (so general.name and
    /// add_space_prefix count, as in llama.cpp), from its tokenizer.json when it came from an HF folder (added-token
    /// flags count), from <see cref="Model.Tokenizer"/> otherwise.
    /// </summary>
    public static Tokenizer FromModel(Model model)
    {
        var data = model.Tokenizer ?? throw new BadInputException($"{model.Provenance.SourcePath}: the model has no tokenizer");
        if (model.Metadata.TryGetValue(GgufTokenizerKeys.Model, out var m) && m is GgufValue)
            return FromSpec(SpecFromGguf(model.Provenance.SourcePath,
                k => model.Metadata.TryGetValue(k, out var v) && v is GgufValue g ? (g, (long?)null) : null));
        if (data.SourcePath.EndsWith(".json", StringComparison.OrdinalIgnoreCase) && File.Exists(data.SourcePath))
            return FromHuggingFace(data.SourcePath);
        return FromData(data);
    }

    /// <summary>
    /// A tokenizer spec from GGUF key/values; <paramref name="find"/> returns a key's value and its byte offset (for
    /// messages), or null when absent. Wrong value types are reported naming the key and offset.
    /// </summary>
    public static TokenizerSpec SpecFromGguf(string source, Func<string, (GgufValue Value, long? Offset)?> find)
    {
        string model = RequireString(GgufTokenizerKeys.Model);
        var kind = ParseKind(model, source);
        var tokens = find(GgufTokenizerKeys.Tokens) is { } tv
            ? tv.Value.AsArray<string>() ?? throw Wrong(GgufTokenizerKeys.Tokens, tv.Offset, "an array of strings")
            : throw new FileFormatException(source, GgufTokenizerKeys.Tokens, null, "missing: no tokenizer vocabulary in this file");

        float[]? scores = null;
        if (find(GgufTokenizerKeys.Scores) is { } sv)
        {
            scores = sv.Value.AsSingleArray()
                ?? sv.Value.AsArray<int>()?.Select(i => (float)i).ToArray()
                ?? throw Wrong(GgufTokenizerKeys.Scores, sv.Offset, "an array of float32 or int32");
            if (scores.Length < tokens.Length) throw new FileFormatException(source, GgufTokenizerKeys.Scores, sv.Offset, $"{scores.Length} scores for {tokens.Length} tokens");
        }
        int[]? types = null;
        if (find(GgufTokenizerKeys.TokenType) is { } ttv)
        {
            types = ttv.Value.AsArray<int>() ?? throw Wrong(GgufTokenizerKeys.TokenType, ttv.Offset, "an array of int32");
            if (types.Length < tokens.Length) throw new FileFormatException(source, GgufTokenizerKeys.TokenType, ttv.Offset, $"{types.Length} types for {tokens.Length} tokens");
        }
        string[]? merges = null;
        if (find(GgufTokenizerKeys.Merges) is { } mv)
            merges = mv.Value.AsArray<string>() ?? throw Wrong(GgufTokenizerKeys.Merges, mv.Offset, "an array of strings");
        if (kind == TokenizerKind.ByteLevelBpe && merges is null)
            throw new FileFormatException(source, GgufTokenizerKeys.Merges, null, "missing: a gpt2 tokenizer needs merges");

        return new TokenizerSpec
        {
            Kind = kind,
            Pre = OptString(GgufTokenizerKeys.Pre),
            Tokens = tokens,
            Scores = scores,
            TokenTypes = types,
            Merges = merges,
            BosId = OptId(GgufTokenizerKeys.BosId),
            EosId = OptId(GgufTokenizerKeys.EosId),
            UnknownId = OptId(GgufTokenizerKeys.UnknownId),
            PaddingId = OptId(GgufTokenizerKeys.PaddingId),
            AddBos = OptBool(GgufTokenizerKeys.AddBos),
            AddEos = OptBool(GgufTokenizerKeys.AddEos),
            AddSpacePrefix = OptBool(GgufTokenizerKeys.AddSpacePrefix),
            ChatTemplate = OptString(GgufTokenizerKeys.ChatTemplate),
            ModelName = OptString(GgufTokenizerKeys.GeneralName),
            SourcePath = source,
        };

        FileFormatException Wrong(string key, long? offset, string expected) =>
            new(source, key, offset, $"has the wrong type (expected {expected})");

        string RequireString(string key) => find(key) is { } v
            ? v.Value.AsString() ?? throw Wrong(key, v.Offset, "a string")
            : throw new FileFormatException(source, key, null, "missing: no tokenizer in this file");

        string? OptString(string key) => find(key) is { } v ? v.Value.AsString() ?? throw Wrong(key, v.Offset, "a string") : null;

        bool? OptBool(string key) => find(key) is { } v ? v.Value.Value as bool? ?? throw Wrong(key, v.Offset, "a bool") : null;

        int? OptId(string key)
        {
            if (find(key) is not { } v) return null;
            if (!v.Value.TryGetInt64(out long id) || v.Value.IsArray) throw Wrong(key, v.Offset, "an integer");
            return id is >= 0 and <= int.MaxValue ? (int)id : null;
        }
    }

    /// <summary>
    /// The tokenizer as GGUF metadata, in the order llama.cpp's converter writes it, for the GGUF writer: model, pre,
    /// tokens, scores, token types, merges, special ids and flags, chat template.
    /// </summary>
    public IReadOnlyList<KeyValuePair<string, GgufValue>> ToGgufMetadata()
    {
        var kv = new List<KeyValuePair<string, GgufValue>>();
        void Add(string k, GgufValue v) => kv.Add(new(k, v));
        Add(GgufTokenizerKeys.Model, KindName(Kind));
        if (PreTokenizer is { } pre)
        {
            if (!PreTokenizer.KnownNames.Contains(pre.Name))
                throw new BadInputException($"{SourcePath}: pre-tokenizer '{pre.Name}' ({string.Join(" | ", pre.Patterns)}) has no llama.cpp name, so it cannot be written as tokenizer.ggml.pre");
            Add(GgufTokenizerKeys.Pre, pre.Name);
        }
        Add(GgufTokenizerKeys.Tokens, GgufValue.Array(_tokens));
        if (Kind == TokenizerKind.SentencePiece) Add(GgufTokenizerKeys.Scores, GgufValue.Array((float[])_scores.Clone()));
        Add(GgufTokenizerKeys.TokenType, GgufValue.Array(_attrs.Select(a => (int)TokenTypeMapping.ToGguf(a)).ToArray()));
        if (_merges is not null) Add(GgufTokenizerKeys.Merges, GgufValue.Array(_merges));
        if (BosId is { } b) Add(GgufTokenizerKeys.BosId, (uint)b);
        if (EosId is { } e) Add(GgufTokenizerKeys.EosId, (uint)e);
        if (UnknownId is { } u) Add(GgufTokenizerKeys.UnknownId, (uint)u);
        if (PaddingId is { } p) Add(GgufTokenizerKeys.PaddingId, (uint)p);
        Add(GgufTokenizerKeys.AddBos, AddBos);
        Add(GgufTokenizerKeys.AddEos, AddEos);
        if (AddSpacePrefix != (Kind == TokenizerKind.SentencePiece)) Add(GgufTokenizerKeys.AddSpacePrefix, AddSpacePrefix);
        if (ChatTemplate is not null) Add(GgufTokenizerKeys.ChatTemplate, ChatTemplate);
        return kv;
    }
}
