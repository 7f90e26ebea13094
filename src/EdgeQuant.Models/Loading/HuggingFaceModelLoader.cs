using EdgeQuant.Core.Errors;
using EdgeQuant.Core.Tensors;
using EdgeQuant.Formats.HuggingFace;
using EdgeQuant.Formats.Safetensors;

namespace EdgeQuant.Models.Loading;

/// <summary>
/// Loads a Hugging Face folder (config.json, model.safetensors or a sharded index, tokenizer.json): tensors stay
/// memory-mapped and get canonical names and layout (Q/K permutation, Conv1D transpose) through
/// <see cref="TensorTransform"/>s applied when read.
/// </summary>
public static class HuggingFaceModelLoader
{
    public const string ConfigFileName = "config.json";

    public static Model Load(string path)
    {
        var folder = Directory.Exists(path) ? path : Path.GetDirectoryName(Path.GetFullPath(path))!;
        var configPath = Path.Combine(folder, ConfigFileName);
        if (!File.Exists(configPath)) throw new BadInputException($"{folder}: no {ConfigFileName} (not a Hugging Face checkpoint folder)");
        var hf = HfConfigReader.Read(configPath);
        var checkpoint = SafetensorsCheckpoint.Open(folder);
        try
        {
            bool hasLmHead = checkpoint.Find("lm_head.weight") is not null;
            var config = ToModelConfig(hf, tied: hf.TieWordEmbeddings || !hasLmHead);
            var tensors = new List<ModelTensor>();
            foreach (var entry in checkpoint.Entries)
            {
                var t = MapTensor(hf, config, entry);
                if (t is not null) tensors.Add(t);
            }
            CheckComplete(config, tensors, folder);

            var metadata = new Dictionary<string, object>(StringComparer.Ordinal);
            foreach (var (k, v) in hf.Raw) metadata[$"config.{k}"] = v;
            foreach (var shard in checkpoint.Shards)
                foreach (var (k, v) in shard.Metadata) metadata.TryAdd($"safetensors.{k}", v);
            var tokenizer = ReadTokenizer(folder, hf, metadata);
            return new Model(config, tensors, tokenizer, new Provenance(path, ModelFormat.HuggingFace, Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(folder)))),
                metadata, [checkpoint]);
        }
        catch
        {
            checkpoint.Dispose();
            throw;
        }
    }

    public static ModelConfig ToModelConfig(HfConfig hf, bool tied)
    {
        var config = new ModelConfig
        {
            Architecture = hf.Family switch
            {
                HfModelFamily.Qwen2 => Architecture.Qwen2,
                HfModelFamily.Gpt2 => Architecture.Gpt2,
                _ => Architecture.Llama,
            },
            SourceArchitecture = hf.ArchitectureName,
            VocabSize = hf.VocabSize,
            EmbeddingLength = hf.HiddenSize,
            BlockCount = hf.NumLayers,
            HeadCount = hf.NumHeads,
            HeadCountKv = hf.NumKvHeads,
            FeedForwardLength = hf.IntermediateSize,
            ContextLength = hf.MaxPositions,
            HeadDim = hf.HeadDim,
            NormEpsilon = (float)hf.NormEpsilon,
            TiedEmbeddings = tied,
            // GPT-2 has biases everywhere by construction; the flag describes the Llama family's optional q/k/v
            // biases, as the GGUF loader reads it.
            AttentionBias = hf.Family != HfModelFamily.Gpt2 && hf.AttentionBias,
        };
        // GPT-2 has no RoPE: it keeps ModelConfig's default theta, as a GGUF of it does.
        return hf.Family == HfModelFamily.Gpt2 ? config : config with { RopeTheta = (float)hf.RopeTheta };
    }

    private static ModelTensor? MapTensor(HfConfig hf, ModelConfig config, SafetensorsEntry entry)
    {
        var info = entry.Info;
        var file = entry.File.Path;
        if (HfTensorNames.IsIgnorable(hf.Family, info.Name)) return null;
        if (!HfTensorNames.TryToCanonical(hf.Family, info.Name, out var name, out var layout))
            throw new FileFormatException(file, $"tensor '{info.Name}'", info.HeaderOffset, $"is not a tensor {hf.ArchitectureName} has");
        // A tied model's lm_head (when a checkpoint carries one anyway) is the embedding; the canonical model has none.
        if (name == "output.weight" && config.TiedEmbeddings) return null;
        var expected = CanonicalTensors.ExpectedShape(config, name)
            ?? throw new FileFormatException(file, $"tensor '{info.Name}'", info.HeaderOffset, $"is not a tensor of this {hf.ArchitectureName} (config.json has {config.BlockCount} layers)");

        TensorTransform? transform = layout switch
        {
            HfLayout.RopeQ => new RopeInterleaveTransform(config.HeadCount),
            HfLayout.RopeK => new RopeInterleaveTransform(config.HeadCountKv),
            HfLayout.Transposed => TransposeTransform.Instance,
            _ => null,
        };
        var storedExpected = transform?.StoredShape(expected) ?? expected;
        if (!info.Shape.SequenceEqual(storedExpected))
            throw new FileFormatException(file, $"tensor '{info.Name}' shape", info.HeaderOffset,
                $"is [{string.Join(", ", info.Shape)}] but config.json implies [{string.Join(", ", storedExpected)}]");
        if (transform is not null && TensorTypes.Get(info.Type).IsQuantized)
            throw new FileFormatException(file, $"tensor '{info.Name}' dtype", info.HeaderOffset, $"{info.Dtype} cannot be re-laid out");
        if (info.ByteLength > int.MaxValue)
            throw new FileFormatException(file, $"tensor '{info.Name}'", info.HeaderOffset, $"{info.ByteLength} bytes is above the 2 GiB per-tensor limit");
        return new ModelTensor
        {
            Name = name,
            Shape = expected,
            Type = info.Type,
            SourceName = info.Name,
            Storage = new MappedFileTensorStorage(entry.File.File, info.FileOffset, (int)info.ByteLength, $"tensor '{info.Name}' data"),
            Transform = transform,
        };
    }

    private static void CheckComplete(ModelConfig config, List<ModelTensor> tensors, string folder)
    {
        var have = tensors.Select(t => t.Name).ToHashSet(StringComparer.Ordinal);
        foreach (var (name, _) in CanonicalTensors.Enumerate(config, includeOutput: !config.TiedEmbeddings))
        {
            if (have.Contains(name)) continue;
            // Biases are optional in the Llama family (attention_bias may cover o_proj or not): only weights are required.
            if (config.Architecture != Architecture.Gpt2 && name.EndsWith(".bias", StringComparison.Ordinal)) continue;
            HfTensorNames.TryToHf(config.Architecture == Architecture.Gpt2 ? HfModelFamily.Gpt2 : HfModelFamily.Llama, name, out var hfName, out _);
            throw new BadInputException($"{folder}: tensor '{hfName}' ({name}) is missing from the checkpoint");
        }
    }

    private static TokenizerData? ReadTokenizer(string folder, HfConfig hf, Dictionary<string, object> metadata)
    {
        var info = HfTokenizerReader.Read(folder, hf, out var reason);
        if (info is null)
        {
            metadata["tokenizer.warning"] = reason ?? "no tokenizer";
            return null;
        }
        return new TokenizerData
        {
            Kind = info.Kind,
            Pre = info.Pre,
            Tokens = info.Tokens,
            TokenTypes = info.TokenTypes,
            Merges = info.Merges,
            BosId = info.BosId,
            EosId = info.EosId,
            UnknownId = info.UnknownId,
            PaddingId = info.PaddingId,
            AddBos = info.AddBos,
            AddEos = info.AddEos,
            ChatTemplate = info.ChatTemplate,
            SourcePath = info.SourcePath,
        };
    }
}
