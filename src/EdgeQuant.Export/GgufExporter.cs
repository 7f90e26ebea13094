using System.Security.Cryptography;
using System.Text;
using EdgeQuant.Core.Errors;
using EdgeQuant.Core.Tensors;
using EdgeQuant.Formats.Gguf;
using EdgeQuant.Models;
using EdgeQuant.Models.Loading;
using EdgeQuant.Models.Tokenizers;

namespace EdgeQuant.Export;

public sealed record GgufExportOptions
{
    /// <summary>F32, F16 or BF16 for weights (1-D tensors stay F32); null keeps each tensor's plain source type.</summary>
    public TensorType? OutType { get; init; }

    /// <summary>general.name; null uses the source's name (or its file name).</summary>
    public string? Name { get; init; }

    /// <summary>Replace an existing output.</summary>
    public bool Overwrite { get; init; }

    /// <summary>Write NaN/Inf weights instead of refusing them.</summary>
    public bool AllowNonFinite { get; init; }

    /// <summary>Called after each tensor is written with (tensors written, tensors in all), for progress displays.</summary>
    public Action<int, int>? TensorWritten { get; init; }
}

/// <summary>What was written.</summary>
public sealed record GgufExportResult(string Path, int TensorCount, long FileBytes, uint FileType, string SourceSha256,
    IReadOnlyList<(string Name, TensorType Type)> Tensors);

/// <summary>
/// <see cref="Model"/> → GGUF v3 as llama.cpp's converters write it: <c>general.*</c>, the architecture's keys
/// (<see cref="ArchitectureMetadata"/>), the tokenizer (<c>tokenizer.ggml.*</c> through
/// <see cref="Tokenizer.ToGgufMetadata"/>), then the tensors under their canonical names in canonical layout (a
/// Model's tensors already are: the HF loader interleaved Q/K and transposed GPT-2's Conv1D weights). Tensors are
/// read, converted and written one at a time into a temporary file renamed at the end.
/// </summary>
public static class GgufExporter
{
    /// <summary>llama.cpp's <c>LLAMA_FTYPE_ALL_F32</c>, <c>MOSTLY_F16</c>, <c>MOSTLY_BF16</c>.</summary>
    public static uint FileTypeOf(TensorType predominant) => predominant switch
    {
        TensorType.F32 => 0u,
        TensorType.F16 => 1u,
        TensorType.BF16 => 32u,
        _ => throw new ArgumentOutOfRangeException(nameof(predominant), predominant, "only F32, F16 and BF16 are exported"),
    };

    /// <summary>ggml's GGML_QNT_VERSION, which convert_hf_to_gguf stamps whatever the output type.</summary>
    public const uint QuantizationVersion = 2;

    public const string VersionKey = "edgequant.version";

    /// <summary>
    /// SHA-256 of the source's tensor content, container-independent: for each exported tensor in file order, its
    /// canonical name (UTF-8), a 0 byte, its source type id (int32 LE), its rank and dimensions (int64 LE each), and its
    /// stored bytes in canonical layout (before any type conversion). The same weights loaded from an HF folder and from
    /// an F32 GGUF hash alike; an F16 source hashes differently from its F32 original.
    /// </summary>
    public const string SourceHashKey = "edgequant.source_sha256";

    public const string SourceFormatKey = "edgequant.source_format";
    public const string SourceFileKey = "edgequant.source_file";

    public static string ArchitectureName(Architecture a) => a switch
    {
        // Mistral is llama to llama.cpp (convert_hf_to_gguf writes general.architecture = llama for it).
        Architecture.Llama => "llama",
        Architecture.Qwen2 => "qwen2",
        Architecture.Gpt2 => "gpt2",
        _ => throw new BadInputException($"architecture {a} cannot be exported to GGUF (supported: llama, mistral, qwen2, gpt2)"),
    };

    /// <summary>
    /// llama.cpp's architecture name for a config: <see cref="ArchitectureName(Architecture)"/>, except that a Llama
    /// model whose layers differ in head counts or FFN width is <c>deci</c> (the architecture whose loader reads those
    /// per layer; its graph is llama's). Refuses per-layer widths on other architectures.
    /// </summary>
    public static string ArchitectureName(ModelConfig c)
    {
        CanonicalTensors.CheckLayerWidths(c, "GGUF export");
        return c.HasPerLayerWidths ? DeciArchitecture : ArchitectureName(c.Architecture);
    }

    /// <summary>llama.cpp's LLM_ARCH_DECI: Llama with per-layer <c>attention.head_count(_kv)</c> and <c>feed_forward_length</c> arrays.</summary>
    public const string DeciArchitecture = "deci";

    /// <summary>
    /// The <c>&lt;arch&gt;.*</c> hyperparameter keys llama.cpp reads for the architecture, in convert_hf_to_gguf's order
    /// (without <c>general.architecture</c>). Per-layer widths are written as <c>deci</c> with INT32 arrays (as
    /// convert_hf_to_gguf writes DeciLM), plus key/value length and rope dimension spelled out: llama.cpp derives
    /// their defaults from layer 0's head count, which need not be the model's.
    /// </summary>
    public static List<KeyValuePair<string, GgufValue>> ArchitectureMetadata(ModelConfig c)
    {
        string arch = ArchitectureName(c);
        bool perLayer = c.HasPerLayerWidths;
        GgufValue PerLayer(Func<int, int> of, int uniform) =>
            perLayer ? GgufValue.Array(Enumerable.Range(0, c.BlockCount).Select(of).ToArray()) : (uint)uniform;
        var md = new List<KeyValuePair<string, GgufValue>>
        {
            new($"{arch}.vocab_size", (uint)c.VocabSize),
            new($"{arch}.context_length", (uint)c.ContextLength),
            new($"{arch}.embedding_length", (uint)c.EmbeddingLength),
            new($"{arch}.block_count", (uint)c.BlockCount),
            new($"{arch}.feed_forward_length", PerLayer(c.FeedForwardIn, c.FeedForwardLength)),
            new($"{arch}.attention.head_count", PerLayer(c.HeadsIn, c.HeadCount)),
        };
        if (c.Architecture == Architecture.Gpt2)
        {
            md.Add(new($"{arch}.attention.layer_norm_epsilon", c.NormEpsilon));
            return md;
        }
        md.Add(new($"{arch}.attention.head_count_kv", PerLayer(c.KvHeadsIn, c.HeadCountKv)));
        md.Add(new($"{arch}.rope.freq_base", c.RopeTheta));
        md.Add(new($"{arch}.rope.dimension_count", (uint)c.HeadDim));
        md.Add(new($"{arch}.attention.layer_norm_rms_epsilon", c.NormEpsilon));
        if (perLayer || (long)c.HeadDim * c.HeadCount != c.EmbeddingLength)
        {
            md.Add(new($"{arch}.attention.key_length", (uint)c.HeadDim));
            md.Add(new($"{arch}.attention.value_length", (uint)c.HeadDim));
        }
        return md;
    }

    /// <summary>
    /// The order tensors are written in: the architecture's canonical order (llama.cpp's converters), then any tensor
    /// the canonical set does not name, in source order (carried through unchanged, e.g. rope_freqs).
    /// </summary>
    public static List<ModelTensor> ExportOrder(Model model)
    {
        var present = model.Tensors.ToDictionary(t => t.Name, StringComparer.Ordinal);
        var order = new List<ModelTensor>(present.Count);
        foreach (var (name, _) in CanonicalTensors.Enumerate(model.Config, includeOutput: true))
            if (present.Remove(name, out var t)) order.Add(t);
        order.AddRange(model.Tensors.Where(t => present.ContainsKey(t.Name)));
        foreach (var t in order) CheckShape(model, t);
        return order;
    }

    public static GgufExportResult Export(Model model, string outputPath, GgufExportOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new GgufExportOptions();
        if (options.OutType is { } ot && !ExportTypes.Supported.Contains(ot))
            throw new BadInputException($"--outtype: GGUF export writes F32, F16 or BF16, not {ot}");
        ExportPaths.CheckOutput(model.Provenance.SourcePath, outputPath, options.Overwrite);
        if (Directory.Exists(outputPath)) throw new BadInputException($"{outputPath}: is a folder; a GGUF export writes one file");
        CanonicalTensors.CheckLayerWidths(model.Config, model.Provenance.SourcePath);
        ArchitectureName(model.Config);

        var order = ExportOrder(model);
        // 1-D tensors (norms, biases) stay F32 as llama.cpp's converter keeps them: they are small and feed F32 ops.
        var plan = order.Select(t => (Tensor: t, Type: t.Shape.Length <= 1 ? TensorType.F32 : ExportTypes.Choose(t, options.OutType))).ToList();
        uint fileType = FileTypeOf(ExportTypes.Predominant(plan.Select(p => (p.Tensor.Shape, p.Type))));
        string hash = SourceSha256(order, cancellationToken);

        var md = Metadata(model, options.Name, fileType, hash);

        int written = 0;
        var toWrite = plan.Select(p => GgufTensorToWrite.FromStream(p.Tensor.Name, p.Type, p.Tensor.Shape, s =>
        {
            cancellationToken.ThrowIfCancellationRequested();
            s.Write(ExportTypes.Convert(p.Tensor, p.Type, options.AllowNonFinite, model.Provenance.SourcePath).Span);
            options.TensorWritten?.Invoke(++written, plan.Count);
        }));
        GgufWriter.Write(outputPath, md, toWrite);
        return new GgufExportResult(Path.GetFullPath(outputPath), plan.Count, new FileInfo(outputPath).Length, fileType, hash,
            plan.Select(p => (p.Tensor.Name, p.Type)).ToList());
    }

    /// <summary>
    /// The file's metadata before any tensor: <c>general.*</c>, <c>edgequant.*</c> provenance, the architecture's keys and
    /// the tokenizer. <paramref name="fileType"/> is llama.cpp's <c>llama_ftype</c> id.
    /// </summary>
    internal static List<KeyValuePair<string, GgufValue>> Metadata(Model model, string? name, uint fileType, string sourceSha256)
    {
        var md = new List<KeyValuePair<string, GgufValue>>
        {
            new(GgufConstants.ArchitectureKey, ArchitectureName(model.Config)),
            new("general.name", name ?? model.Provenance.Name ?? Path.GetFileNameWithoutExtension(Path.TrimEndingDirectorySeparator(model.Provenance.SourcePath))),
            new("general.file_type", fileType),
            new("general.quantization_version", QuantizationVersion),
            new(VersionKey, ExportTypes.ToolVersion),
            new(SourceHashKey, sourceSha256),
            new(SourceFormatKey, model.Provenance.Format.ToString()),
            new(SourceFileKey, Path.GetFileName(Path.TrimEndingDirectorySeparator(model.Provenance.SourcePath))),
        };
        md.AddRange(ArchitectureMetadata(model.Config));
        // Without a tokenizer (a bare llama2.c checkpoint) the file still loads in llama.cpp, as a model without vocabulary.
        if (model.Tokenizer is not null) md.AddRange(Tokenizer.FromModel(model).ToGgufMetadata());
        return md;
    }

    /// <summary>See <see cref="SourceHashKey"/>.</summary>
    public static string SourceSha256(IEnumerable<ModelTensor> tensors, CancellationToken cancellationToken = default)
    {
        using var hasher = new SourceHasher();
        foreach (var t in tensors)
        {
            cancellationToken.ThrowIfCancellationRequested();
            hasher.Append(t);
        }
        return hasher.Finish();
    }

    internal static void CheckShape(Model model, ModelTensor t)
    {
        if (CanonicalTensors.ExpectedShape(model.Config, t.Name) is { } expected && !expected.SequenceEqual(t.Shape))
            throw new BadInputException(
                $"{model.Provenance.SourcePath}: tensor '{t.Name}' ({t.SourceName}) has shape [{string.Join(", ", t.Shape)}] but the config implies [{string.Join(", ", expected)}]");
    }
}

/// <summary>The incremental form of <see cref="GgufExporter.SourceSha256"/>: tensors appended in file order.</summary>
internal sealed class SourceHasher : IDisposable
{
    private readonly IncrementalHash _sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);

    public void Append(ModelTensor t)
    {
        Span<byte> word = stackalloc byte[8];
        _sha.AppendData(Encoding.UTF8.GetBytes(t.Name));
        _sha.AppendData([0]);
        BitConverter.TryWriteBytes(word[..4], (int)t.Type);
        _sha.AppendData(word[..4]);
        BitConverter.TryWriteBytes(word, (long)t.Shape.Length);
        _sha.AppendData(word);
        foreach (var d in t.Shape)
        {
            BitConverter.TryWriteBytes(word, d);
            _sha.AppendData(word);
        }
        _sha.AppendData(t.RawBytes());
    }

    public string Finish() => Convert.ToHexStringLower(_sha.GetHashAndReset());

    public void Dispose() => _sha.Dispose();
}
