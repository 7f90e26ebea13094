using EdgeQuant.Core.Errors;
using EdgeQuant.Formats.Gguf;
using EdgeQuant.Formats.IO;

namespace EdgeQuant.Models.Loading;

/// <summary>A tensor's bytes as a slice of a memory-mapped file: no copy, valid while the file is mapped.</summary>
public sealed class MappedFileTensorStorage(MappedFile file, long offset, int length, string what) : ITensorStorage
{
    public ReadOnlySpan<byte> Bytes => file.Span(offset, length, what);
}

/// <summary>
/// GGUF → <see cref="Model"/>: hyperparameters from the <c>&lt;arch&gt;.*</c> keys (llama, mistral, qwen2, gpt2),
/// tokenizer from <c>tokenizer.ggml.*</c>, tensors under their GGUF names as spans over the mapping. The model
/// owns the mapping; its <see cref="Model.Metadata"/> holds every key with its <see cref="GgufValue"/>.
/// </summary>
public static class GgufModelLoader
{
    public static Model Load(string path)
    {
        var file = GgufReader.Read(path);
        try
        {
            return Load(file);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>Builds a model over an already parsed file; the model takes ownership of <paramref name="file"/>.</summary>
    public static Model Load(GgufFile file)
    {
        var config = ReadConfig(file);
        var tokenizer = ReadTokenizer(file);
        var tensors = new List<ModelTensor>(file.Tensors.Count);
        foreach (var t in file.Tensors)
        {
            if (t.ByteLength > int.MaxValue)
                throw new BadInputException($"{file.Path}: tensor '{t.Name}' at byte offset {t.AbsoluteOffset}: {t.ByteLength} bytes is more than one tensor may hold here (2 GiB)");
            tensors.Add(new ModelTensor
            {
                Name = t.Name,
                SourceName = t.Name,
                Shape = t.Shape,
                Type = t.Type,
                Storage = new MappedFileTensorStorage(file.File, t.AbsoluteOffset, (int)t.ByteLength, $"tensor '{t.Name}' data"),
            });
        }
        var metadata = new Dictionary<string, object>(StringComparer.Ordinal);
        foreach (var kv in file.Metadata) metadata[kv.Key] = kv.Value;
        var name = file.Find("general.name")?.AsString();
        return new Model(config, tensors, tokenizer, new Provenance(file.Path, ModelFormat.Gguf, name), metadata, [file]);
    }

    public static ModelConfig ReadConfig(GgufFile file)
    {
        var archEntry = file.FindEntry(GgufConstants.ArchitectureKey)
            ?? throw new BadInputException($"{file.Path}: metadata key '{GgufConstants.ArchitectureKey}' is missing");
        string arch = archEntry.Value.AsString()
            ?? throw new FileFormatException(file.Path, $"metadata key '{GgufConstants.ArchitectureKey}'", archEntry.Offset, $"must be a string, found {archEntry.Value.Type}");
        var family = arch switch
        {
            "llama" or "mistral" => Architecture.Llama,
            "qwen2" => Architecture.Qwen2,
            "gpt2" => Architecture.Gpt2,
            _ => throw new BadInputException(
                $"{file.Path}: metadata key '{GgufConstants.ArchitectureKey}' at byte offset {archEntry.Offset}: architecture '{arch}' is not supported (supported: llama, mistral, qwen2, gpt2)"),
        };

        var k = new Keys(file, arch);
        int embd = k.Int("embedding_length");
        int blocks = k.Int("block_count");
        int heads = k.Int("attention.head_count");
        int headsKv = k.OptionalInt("attention.head_count_kv") ?? heads;
        if (embd % heads != 0 && k.OptionalInt("attention.key_length") is null)
            k.Fail("attention.head_count", $"embedding length {embd} is not a multiple of {heads} heads and attention.key_length is absent");
        if (heads % headsKv != 0)
            k.Fail("attention.head_count_kv", $"{heads} heads are not a multiple of {headsKv} KV heads");
        int headDim = k.OptionalInt("attention.key_length")
            ?? (family != Architecture.Gpt2 ? k.OptionalInt("rope.dimension_count") : null)
            ?? embd / heads;

        var epsKey = family == Architecture.Gpt2 ? "attention.layer_norm_epsilon" : "attention.layer_norm_rms_epsilon";
        float eps = (float)(k.OptionalDouble(epsKey) ?? 1e-5);

        return new ModelConfig
        {
            Architecture = family,
            SourceArchitecture = arch,
            VocabSize = VocabSize(file, k),
            EmbeddingLength = embd,
            BlockCount = blocks,
            HeadCount = heads,
            HeadCountKv = headsKv,
            FeedForwardLength = k.Int("feed_forward_length"),
            ContextLength = k.OptionalInt("context_length") ?? 2048,
            HeadDim = headDim,
            RopeTheta = (float)(k.OptionalDouble("rope.freq_base") ?? 10000.0),
            NormEpsilon = eps,
            TiedEmbeddings = file.FindTensor("output.weight") is null,
            AttentionBias = file.FindTensor("blk.0.attn_q.bias") is not null,
        };
    }

    private static int VocabSize(GgufFile file, Keys k)
    {
        if (k.OptionalInt("vocab_size") is { } v) return v;
        if (file.Find("tokenizer.ggml.tokens") is { IsArray: true } tokens) return tokens.ArrayLength;
        if (file.FindTensor("token_embd.weight") is { } emb)
        {
            long rows = emb.Ne.Count >= 2 ? emb.Ne[1] : 0;
            if (rows is > 0 and <= int.MaxValue) return (int)rows;
        }
        throw new BadInputException($"{file.Path}: cannot tell the vocabulary size: no {k.Arch}.vocab_size, no tokenizer.ggml.tokens and no 2-D token_embd.weight");
    }

    public static TokenizerData? ReadTokenizer(GgufFile file)
    {
        var modelEntry = file.FindEntry("tokenizer.ggml.model");
        if (modelEntry is null) return null;
        string kind = modelEntry.Value.AsString()
            ?? throw new FileFormatException(file.Path, "metadata key 'tokenizer.ggml.model'", modelEntry.Offset, $"must be a string, found {modelEntry.Value.Type}");

        var tokensEntry = file.FindEntry("tokenizer.ggml.tokens")
            ?? throw new BadInputException($"{file.Path}: metadata key 'tokenizer.ggml.tokens' is missing (tokenizer.ggml.model is '{kind}')");
        var tokens = tokensEntry.Value.AsArray<string>()
            ?? throw new FileFormatException(file.Path, "metadata key 'tokenizer.ggml.tokens'", tokensEntry.Offset, "must be an array of strings");
        int n = tokens.Length;

        float[]? scores = null;
        if (file.FindEntry("tokenizer.ggml.scores") is { } s)
        {
            scores = s.Value.AsSingleArray() ?? throw new FileFormatException(file.Path, "metadata key 'tokenizer.ggml.scores'", s.Offset, "must be an array of numbers");
            if (scores.Length != n) throw new FileFormatException(file.Path, "metadata key 'tokenizer.ggml.scores'", s.Offset, $"{scores.Length} scores for {n} tokens");
        }
        int[]? types = null;
        if (file.FindEntry("tokenizer.ggml.token_type") is { } tt)
        {
            var l = tt.Value.AsInt64Array() ?? throw new FileFormatException(file.Path, "metadata key 'tokenizer.ggml.token_type'", tt.Offset, "must be an array of integers");
            if (l.Length != n) throw new FileFormatException(file.Path, "metadata key 'tokenizer.ggml.token_type'", tt.Offset, $"{l.Length} token types for {n} tokens");
            types = new int[n];
            for (int i = 0; i < n; i++)
            {
                if (l[i] is < int.MinValue or > int.MaxValue) throw new FileFormatException(file.Path, "metadata key 'tokenizer.ggml.token_type'", tt.Offset, $"token type {l[i]} at index {i} is out of range");
                types[i] = (int)l[i];
            }
        }
        string[]? merges = null;
        if (file.FindEntry("tokenizer.ggml.merges") is { } m)
            merges = m.Value.AsArray<string>() ?? throw new FileFormatException(file.Path, "metadata key 'tokenizer.ggml.merges'", m.Offset, "must be an array of strings");

        return new TokenizerData
        {
            Kind = kind,
            Pre = StringKey(file, "tokenizer.ggml.pre"),
            Tokens = tokens,
            Scores = scores,
            TokenTypes = types,
            Merges = merges,
            BosId = TokenId(file, "tokenizer.ggml.bos_token_id", n),
            EosId = TokenId(file, "tokenizer.ggml.eos_token_id", n),
            UnknownId = TokenId(file, "tokenizer.ggml.unknown_token_id", n),
            PaddingId = TokenId(file, "tokenizer.ggml.padding_token_id", n),
            AddBos = BoolKey(file, "tokenizer.ggml.add_bos_token"),
            AddEos = BoolKey(file, "tokenizer.ggml.add_eos_token"),
            ChatTemplate = StringKey(file, "tokenizer.chat_template"),
            SourcePath = file.Path,
        };
    }

    private static string? StringKey(GgufFile file, string key)
    {
        if (file.FindEntry(key) is not { } e) return null;
        return e.Value.AsString() ?? throw new FileFormatException(file.Path, $"metadata key '{key}'", e.Offset, $"must be a string, found {e.Value.Type}");
    }

    private static bool? BoolKey(GgufFile file, string key)
    {
        if (file.FindEntry(key) is not { } e) return null;
        return e.Value.Value is bool b ? b : throw new FileFormatException(file.Path, $"metadata key '{key}'", e.Offset, $"must be a bool, found {e.Value.Type}");
    }

    /// <summary>
    /// A special token id, or null when absent. Converters write u32 0xFFFFFFFF (or -1) for "no such token"
    /// (stories260K does for its padding id), so any id outside the vocabulary reads as absent, not as an error.
    /// </summary>
    private static int? TokenId(GgufFile file, string key, int vocab)
    {
        if (file.FindEntry(key) is not { } e) return null;
        if (!e.Value.TryGetInt64(out long id))
            throw new FileFormatException(file.Path, $"metadata key '{key}'", e.Offset, $"must be an integer, found {e.Value.Type}");
        return id >= 0 && id < vocab ? (int)id : null;
    }

    /// <summary>Reads <c>&lt;arch&gt;.*</c> hyperparameters with errors that name the key and its offset.</summary>
    private sealed class Keys(GgufFile file, string arch)
    {
        public string Arch => arch;

        public int Int(string suffix) =>
            OptionalInt(suffix) ?? throw new BadInputException($"{file.Path}: metadata key '{arch}.{suffix}' is missing");

        public int? OptionalInt(string suffix)
        {
            string key = $"{arch}.{suffix}";
            if (file.FindEntry(key) is not { } e) return null;
            long v;
            if (e.Value.IsArray)
            {
                // Some converters store per-layer values (e.g. head counts) as arrays; accept them when uniform.
                var all = e.Value.AsInt64Array();
                if (all is null || all.Length == 0 || all.Any(x => x != all[0]))
                    throw new FileFormatException(file.Path, $"metadata key '{key}'", e.Offset, "per-layer values that differ are not supported");
                v = all[0];
            }
            else if (!e.Value.TryGetInt64(out v))
                throw new FileFormatException(file.Path, $"metadata key '{key}'", e.Offset, $"must be an integer, found {e.Value.Type}");
            if (v is <= 0 or > int.MaxValue)
                throw new FileFormatException(file.Path, $"metadata key '{key}'", e.Offset, $"value {v} is out of range (1 to {int.MaxValue})");
            return (int)v;
        }

        public double? OptionalDouble(string suffix)
        {
            string key = $"{arch}.{suffix}";
            if (file.FindEntry(key) is not { } e) return null;
            if (!e.Value.TryGetDouble(out double d) || !double.IsFinite(d) || d <= 0)
                throw new FileFormatException(file.Path, $"metadata key '{key}'", e.Offset, $"must be a positive number, found {e.Value}");
            return d;
        }

        public void Fail(string suffix, string problem)
        {
            string key = $"{arch}.{suffix}";
            long offset = file.FindEntry(key)?.Offset ?? 0;
            throw new FileFormatException(file.Path, $"metadata key '{key}'", offset, problem);
        }
    }
}
