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
/// GGUF → <see cref="Model"/>: hyperparameters from the <c>&lt;arch&gt;.*</c> keys (llama, mistral, qwen2, gpt2, and
/// deci: llama.cpp's Llama with per-layer head counts and FFN widths, read as <see cref="Architecture.Llama"/>),
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
            // deci computes exactly as llama (RMSNorm, NORM RoPE on interleaved Q/K rows, SwiGLU) with per-layer widths.
            "llama" or "mistral" or "deci" => Architecture.Llama,
            "qwen2" => Architecture.Qwen2,
            "gpt2" => Architecture.Gpt2,
            _ => throw new BadInputException(
                $"{file.Path}: metadata key '{GgufConstants.ArchitectureKey}' at byte offset {archEntry.Offset}: architecture '{arch}' is not supported (supported: llama, mistral, deci, qwen2, gpt2)"),
        };

        var k = new Keys(file, arch);
        int embd = k.Int("embedding_length");
        int blocks = k.Int("block_count");
        // Per-layer lists are allocated from it; llama.cpp itself stops at LLAMA_MAX_LAYERS (512).
        if (blocks > MaxBlocks) k.Fail("block_count", $"{blocks} layers is more than {MaxBlocks}");
        // llama.cpp reads these three with get_key_or_arr: one value, or one per layer.
        var headList = k.IntOrArray("attention.head_count", blocks)
            ?? throw new BadInputException($"{file.Path}: metadata key '{arch}.attention.head_count' is missing");
        var headKvList = k.IntOrArray("attention.head_count_kv", blocks) ?? headList;
        var ffList = k.IntOrArray("feed_forward_length", blocks)
            ?? throw new BadInputException($"{file.Path}: metadata key '{arch}.feed_forward_length' is missing");
        bool perLayer = !Uniform(headList) || !Uniform(headKvList) || !Uniform(ffList);
        if (perLayer && family != Architecture.Llama)
            k.Fail(!Uniform(headList) ? "attention.head_count" : !Uniform(headKvList) ? "attention.head_count_kv" : "feed_forward_length",
                $"per-layer values that differ are supported for llama/deci only, not {arch}");
        // llama.cpp's default head size and rope dimension come from layer 0's head count.
        int heads = headList[0];
        if (embd % heads != 0 && k.OptionalInt("attention.key_length") is null)
            k.Fail("attention.head_count", $"embedding length {embd} is not a multiple of {heads} heads and attention.key_length is absent");
        for (int l = 0; l < blocks; l++)
        {
            if (headList[l] % headKvList[l] != 0)
                k.Fail("attention.head_count_kv", $"layer {l}: {headList[l]} heads are not a multiple of {headKvList[l]} KV heads");
        }
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
            // Per-layer: the largest of each (ModelConfig's convention), with the lists; uniform: the value, no lists.
            HeadCount = headList.Max(),
            HeadCountKv = headKvList.Max(),
            FeedForwardLength = ffList.Max(),
            LayerHeadCounts = perLayer ? headList : null,
            LayerHeadCountsKv = perLayer ? headKvList : null,
            LayerFeedForwardLengths = perLayer ? ffList : null,
            ContextLength = k.OptionalInt("context_length") ?? 2048,
            HeadDim = headDim,
            RopeTheta = (float)(k.OptionalDouble("rope.freq_base") ?? 10000.0),
            NormEpsilon = eps,
            TiedEmbeddings = file.FindTensor("output.weight") is null,
            AttentionBias = file.FindTensor("blk.0.attn_q.bias") is not null,
        };
    }

    private const int MaxBlocks = 1 << 16;

    private static bool Uniform(int[] values) => values.All(v => v == values[0]);

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

        /// <summary>
        /// llama.cpp's get_key_or_arr: a scalar (repeated for every layer) or an integer array of exactly
        /// <paramref name="layers"/> entries, each in 1..int.MaxValue. Null when the key is absent.
        /// </summary>
        public int[]? IntOrArray(string suffix, int layers)
        {
            string key = $"{arch}.{suffix}";
            if (file.FindEntry(key) is not { } e) return null;
            if (!e.Value.IsArray) return Enumerable.Repeat(OptionalInt(suffix)!.Value, layers).ToArray();
            var all = e.Value.AsInt64Array()
                ?? throw new FileFormatException(file.Path, $"metadata key '{key}'", e.Offset, "must be an integer or an array of integers");
            if (all.Length != layers)
                throw new FileFormatException(file.Path, $"metadata key '{key}'", e.Offset, $"has {all.Length} per-layer values for {layers} layers");
            var result = new int[layers];
            for (int l = 0; l < layers; l++)
            {
                // deci's 0 (attention-free, linear-attention or FFN-free layers of the Nemotron models) has no engine path.
                if (all[l] is <= 0 or > int.MaxValue)
                    throw new FileFormatException(file.Path, $"metadata key '{key}'", e.Offset, $"layer {l}: value {all[l]} is out of range (1 to {int.MaxValue}; layers without attention or FFN are not supported)");
                result[l] = (int)all[l];
            }
            return result;
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
