using System.Text.Json;
using EdgeQuant.Core.Errors;

namespace EdgeQuant.Formats.HuggingFace;

/// <summary>
/// Reads config.json for LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM and GPT2LMHeadModel. Defaults are
/// transformers' (LlamaConfig, MistralConfig, Qwen2Config, GPT2Config) for optional fields; the fields that fix
/// tensor shapes are required, because a default there would only fail later against the weights.
/// </summary>
public static class HfConfigReader
{
    /// <summary>A config.json is a few KB; anything this big is not one.</summary>
    public const long MaxConfigBytes = 16 << 20;

    /// <summary>Upper bound for any size field: far above any real model, far below anything that overflows products.</summary>
    public const int MaxDimension = 1 << 24;

    public static HfConfig Read(string path)
    {
        var info = new FileInfo(path);
        if (!info.Exists) throw new BadInputException($"{path}: file not found");
        if (info.Length > MaxConfigBytes)
            throw new FileFormatException(path, "file size", 0, $"{info.Length} bytes is too large for a config.json (limit {MaxConfigBytes})");
        return Parse(File.ReadAllBytes(path), path);
    }

    public static HfConfig Parse(ReadOnlySpan<byte> json, string path)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json.ToArray(), new JsonDocumentOptions { MaxDepth = 32, AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
        }
        catch (JsonException e)
        {
            throw new FileFormatException(path, "JSON", e.LineNumber == 0 ? e.BytePositionInLine : null,
                $"not valid JSON (line {e.LineNumber + 1}, byte {e.BytePositionInLine + 1} of the line)");
        }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw new FileFormatException(path, "root", 0, "config.json is not a JSON object");
            var f = new Fields(root, path);
            var family = DetectFamily(f, out string archName, out string modelType);
            return family == HfModelFamily.Gpt2 ? ReadGpt2(f, archName, modelType) : ReadLlamaFamily(f, family, archName, modelType);
        }
    }

    private static HfModelFamily DetectFamily(Fields f, out string archName, out string modelType)
    {
        modelType = f.String("model_type") ?? "";
        archName = "";
        if (f.Root.TryGetProperty("architectures", out var archs) && archs.ValueKind == JsonValueKind.Array && archs.GetArrayLength() > 0)
        {
            if (archs[0].ValueKind != JsonValueKind.String) f.Fail("architectures[0]", "is not a string");
            archName = archs[0].GetString()!;
        }
        HfModelFamily? family = archName switch
        {
            "LlamaForCausalLM" => HfModelFamily.Llama,
            "MistralForCausalLM" => HfModelFamily.Mistral,
            "Qwen2ForCausalLM" => HfModelFamily.Qwen2,
            "GPT2LMHeadModel" => HfModelFamily.Gpt2,
            "" => modelType switch
            {
                "llama" => HfModelFamily.Llama,
                "mistral" => HfModelFamily.Mistral,
                "qwen2" => HfModelFamily.Qwen2,
                "gpt2" => HfModelFamily.Gpt2,
                _ => null,
            },
            _ => null,
        };
        if (family is null)
            f.Fail(archName.Length > 0 ? "architectures[0]" : "model_type",
                $"'{(archName.Length > 0 ? archName : modelType)}' is not supported (supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, GPT2LMHeadModel)");
        if (archName.Length == 0) archName = HfConfig.ClassName(family.Value);
        if (modelType.Length == 0) modelType = HfConfig.ModelTypeOf(family.Value);
        return family.Value;
    }

    private static HfConfig ReadLlamaFamily(Fields f, HfModelFamily family, string archName, string modelType)
    {
        int hidden = f.RequiredInt("hidden_size");
        int heads = f.RequiredInt("num_attention_heads");
        int kvHeads = f.OptionalInt("num_key_value_heads") ?? heads;
        int? headDimField = f.OptionalInt("head_dim");
        if (headDimField is null && hidden % heads != 0)
            f.Fail("num_attention_heads", $"{heads} does not divide hidden_size {hidden} and there is no head_dim");
        if (heads % kvHeads != 0)
            f.Fail("num_key_value_heads", $"{kvHeads} does not divide num_attention_heads {heads}");
        int defaultPositions = family switch { HfModelFamily.Mistral => 4096 * 32, HfModelFamily.Qwen2 => 32768, _ => 2048 };
        return new HfConfig
        {
            ArchitectureName = archName,
            Family = family,
            ModelType = modelType,
            VocabSize = f.RequiredInt("vocab_size"),
            HiddenSize = hidden,
            NumLayers = f.RequiredInt("num_hidden_layers"),
            NumHeads = heads,
            NumKvHeads = kvHeads,
            IntermediateSize = f.RequiredInt("intermediate_size"),
            MaxPositions = f.OptionalInt("max_position_embeddings") ?? defaultPositions,
            HeadDim = headDimField ?? hidden / heads,
            // The three config classes share these defaults: rope_theta 10000, rms_norm_eps 1e-6.
            RopeTheta = f.OptionalPositiveDouble("rope_theta") ?? 10000,
            NormEpsilon = f.OptionalPositiveDouble("rms_norm_eps") ?? 1e-6,
            // LlamaConfig, MistralConfig and Qwen2Config all default to untied output weights.
            TieWordEmbeddings = f.OptionalBool("tie_word_embeddings") ?? false,
            // Qwen2's attention always has q/k/v biases; its config has no field for them.
            AttentionBias = family == HfModelFamily.Qwen2 || (f.OptionalBool("attention_bias") ?? false),
            MlpBias = f.OptionalBool("mlp_bias") ?? false,
            HiddenAct = f.String("hidden_act") ?? "silu",
            TorchDtype = f.String("torch_dtype") ?? f.String("dtype"),
            BosTokenId = f.OptionalTokenId("bos_token_id"),
            EosTokenId = f.OptionalTokenId("eos_token_id"),
            RopeScalingJson = f.RawObject("rope_scaling"),
            UseSlidingWindow = f.OptionalBool("use_sliding_window") ?? false,
            Raw = f.RawFields(),
        };
    }

    private static HfConfig ReadGpt2(Fields f, string archName, string modelType)
    {
        int embd = f.RequiredInt("n_embd");
        int heads = f.RequiredInt("n_head");
        if (embd % heads != 0) f.Fail("n_head", $"{heads} does not divide n_embd {embd}");
        return new HfConfig
        {
            ArchitectureName = archName,
            Family = HfModelFamily.Gpt2,
            ModelType = modelType,
            VocabSize = f.RequiredInt("vocab_size"),
            HiddenSize = embd,
            NumLayers = f.RequiredInt("n_layer"),
            NumHeads = heads,
            NumKvHeads = heads,
            // n_inner: null means 4 * n_embd (GPT2MLP).
            IntermediateSize = f.OptionalInt("n_inner") ?? checked(4 * embd),
            MaxPositions = f.OptionalInt("n_positions") ?? f.OptionalInt("n_ctx") ?? 1024,
            HeadDim = embd / heads,
            RopeTheta = 0,
            NormEpsilon = f.OptionalPositiveDouble("layer_norm_epsilon") ?? 1e-5,
            // GPT2Config inherits PretrainedConfig's default: tied.
            TieWordEmbeddings = f.OptionalBool("tie_word_embeddings") ?? true,
            AttentionBias = true,
            MlpBias = true,
            HiddenAct = f.String("activation_function") ?? "gelu_new",
            TorchDtype = f.String("torch_dtype") ?? f.String("dtype"),
            BosTokenId = f.OptionalTokenId("bos_token_id"),
            EosTokenId = f.OptionalTokenId("eos_token_id"),
            Raw = f.RawFields(),
        };
    }

    /// <summary>Typed access to config.json fields; every failure names the file and the field.</summary>
    private readonly struct Fields(JsonElement root, string path)
    {
        public JsonElement Root => root;

        [System.Diagnostics.CodeAnalysis.DoesNotReturn]
        public void Fail(string field, string problem) => throw new FileFormatException(path, field, null, problem);

        private JsonElement? Get(string name) =>
            root.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null ? v : null;

        public int RequiredInt(string name) =>
            OptionalInt(name) ?? throw new FileFormatException(path, name, null, "is missing (config.json must give it)");

        public int? OptionalInt(string name)
        {
            if (Get(name) is not { } v) return null;
            long n = 0;
            if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt64(out n)) Fail(name, $"{Show(v)} is not an integer");
            if (n < 1 || n > MaxDimension) Fail(name, $"{n} is outside 1..{MaxDimension}");
            return (int)n;
        }

        public int? OptionalTokenId(string name)
        {
            if (Get(name) is not { } v) return null;
            // Some configs give a list of EOS ids; the first is the one generation stops on by default.
            if (v.ValueKind == JsonValueKind.Array) v = v.GetArrayLength() > 0 ? v[0] : default;
            if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt64(out long n) || n < 0 || n > int.MaxValue) return null;
            return (int)n;
        }

        public double? OptionalPositiveDouble(string name)
        {
            if (Get(name) is not { } v) return null;
            double d = 0;
            if (v.ValueKind != JsonValueKind.Number || !v.TryGetDouble(out d) || !double.IsFinite(d) || d <= 0)
                Fail(name, $"{Show(v)} is not a positive number");
            return d;
        }

        public bool? OptionalBool(string name)
        {
            if (Get(name) is not { } v) return null;
            if (v.ValueKind is not (JsonValueKind.True or JsonValueKind.False)) Fail(name, $"{Show(v)} is not true or false");
            return v.GetBoolean();
        }

        public string? String(string name)
        {
            if (Get(name) is not { } v) return null;
            if (v.ValueKind != JsonValueKind.String) Fail(name, $"{Show(v)} is not a string");
            return v.GetString();
        }

        public string? RawObject(string name) => Get(name) is { } v ? v.GetRawText() : null;

        public Dictionary<string, object> RawFields()
        {
            var d = new Dictionary<string, object>(StringComparer.Ordinal);
            foreach (var p in root.EnumerateObject())
            {
                object? value = p.Value.ValueKind switch
                {
                    JsonValueKind.String => p.Value.GetString(),
                    JsonValueKind.Number => p.Value.TryGetInt64(out long l) ? (object)l : p.Value.GetDouble(),
                    JsonValueKind.True => true,
                    JsonValueKind.False => false,
                    JsonValueKind.Null => null,
                    _ => p.Value.GetRawText(),
                };
                if (value is not null) d[p.Name] = value;
            }
            return d;
        }

        private static string Show(JsonElement v)
        {
            var s = v.GetRawText();
            return s.Length > 40 ? s[..40] + "…" : s;
        }
    }
}
