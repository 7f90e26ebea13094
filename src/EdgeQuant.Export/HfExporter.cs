using EdgeQuant.Core.Errors;
using EdgeQuant.Core.Tensors;
using EdgeQuant.Formats.HuggingFace;
using EdgeQuant.Formats.Safetensors;
using EdgeQuant.Models;
using EdgeQuant.Models.Loading;
using EdgeQuant.Models.Tokenizers;

namespace EdgeQuant.Export;

public sealed record HfExportOptions
{
    /// <summary>F32, F16 or BF16 for every tensor; null keeps each tensor's plain source type (F32 for quantized ones).</summary>
    public TensorType? OutType { get; init; }

    /// <summary>Replace an existing output folder.</summary>
    public bool Overwrite { get; init; }

    /// <summary>Write NaN/Inf weights instead of refusing them.</summary>
    public bool AllowNonFinite { get; init; }

    /// <summary>Called after each tensor is written with (tensors written, tensors in all), for progress displays.</summary>
    public Action<int, int>? TensorWritten { get; init; }
}

public sealed record HfExportResult(string Folder, int TensorCount, long SafetensorsBytes, HfModelFamily Family);

/// <summary>
/// <see cref="Model"/> → Hugging Face folder: <c>model.safetensors</c> under transformers' names in HF layout (the
/// inverse Q/K permutation for Llama and Mistral, Conv1D's [in, out] for GPT-2; Qwen2 keeps its rows, see
/// <see cref="HfTensorNames"/>), <c>config.json</c> through <see cref="HfConfigWriter"/>, and <c>tokenizer.json</c> +
/// <c>tokenizer_config.json</c> through <see cref="Tokenizer.WriteHuggingFace"/>. Everything is written into a
/// temporary sibling folder that replaces the output only when complete.
/// </summary>
public static class HfExporter
{
    public static HfModelFamily FamilyOf(ModelConfig c) => c.Architecture switch
    {
        Architecture.Llama => c.SourceArchitecture.Contains("mistral", StringComparison.OrdinalIgnoreCase) ? HfModelFamily.Mistral : HfModelFamily.Llama,
        Architecture.Qwen2 => HfModelFamily.Qwen2,
        Architecture.Gpt2 => HfModelFamily.Gpt2,
        _ => throw new BadInputException($"architecture {c.Architecture} cannot be exported to a Hugging Face folder (supported: llama, mistral, qwen2, gpt2)"),
    };

    public static HfExportResult Export(Model model, string outputDir, HfExportOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new HfExportOptions();
        if (options.OutType is { } ot && !ExportTypes.Supported.Contains(ot))
            throw new BadInputException($"--outtype: Hugging Face export writes F32, F16 or BF16, not {ot}");
        ExportPaths.CheckOutput(model.Provenance.SourcePath, outputDir, options.Overwrite);
        if (File.Exists(outputDir)) throw new BadInputException($"{outputDir}: is a file; a Hugging Face export writes a folder");
        var config = model.Config;
        var family = FamilyOf(config);
        // transformers' LlamaConfig has one num_attention_heads / num_key_value_heads / intermediate_size for all layers.
        if (config.HasPerLayerWidths)
            throw new BadInputException(
                $"{model.Provenance.SourcePath}: its layers differ in attention heads or FFN width (a structurally pruned model), which a Hugging Face {family} config.json cannot describe; export it as GGUF (llama.cpp's 'deci') or ONNX instead");

        var plan = new List<(ModelTensor Tensor, string HfName, HfLayout Layout, TensorType Type)>();
        foreach (var t in GgufExporter.ExportOrder(model))
        {
            // Tied embeddings: transformers re-creates lm_head from embed_tokens (llama2.c's shared classifier is listed as an alias).
            if (t.Name == "output.weight" && config.TiedEmbeddings) continue;
            if (!HfTensorNames.TryToHf(family, t.Name, out var hfName, out var layout))
                throw new BadInputException($"{model.Provenance.SourcePath}: tensor '{t.Name}' has no Hugging Face {family} name");
            plan.Add((t, hfName, layout, ExportTypes.Choose(t, options.OutType)));
        }
        var predominant = ExportTypes.Predominant(plan.Select(p => (p.Tensor.Shape, p.Type)));
        var tokenizer = model.Tokenizer is null ? null : Tokenizer.FromModel(model);

        string full = Path.GetFullPath(outputDir).TrimEnd(Path.DirectorySeparatorChar);
        string parent = Path.GetDirectoryName(full) ?? ".";
        Directory.CreateDirectory(parent);
        string temp = Path.Combine(parent, $".{Path.GetFileName(full)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        Directory.CreateDirectory(temp);
        try
        {
            var st = Path.Combine(temp, SafetensorsConstants.SingleFileName);
            var specs = plan.Select(p => new SafetensorsTensorSpec(p.HfName, p.Type,
                p.Layout == HfLayout.Transposed ? TransposeTransform.Instance.StoredShape(p.Tensor.Shape) : p.Tensor.Shape));
            var byName = plan.ToDictionary(p => p.HfName, StringComparer.Ordinal);
            using (var w = new SafetensorsWriter(st, specs, new Dictionary<string, string> { ["format"] = "pt" }))
            {
                int written = 0;
                foreach (var s in w.Order)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    var p = byName[s.Name];
                    w.WriteTensor(s.Name, ToHfLayout(p.Tensor, p.Layout, p.Type, config, options.AllowNonFinite, model.Provenance.SourcePath));
                    options.TensorWritten?.Invoke(++written, plan.Count);
                }
                w.Commit();
            }
            HfConfigWriter.Write(Path.Combine(temp, "config.json"), ConfigOf(config, family, predominant, tokenizer));
            tokenizer?.WriteHuggingFace(temp);
            long bytes = new FileInfo(st).Length;
            ExportPaths.ReplaceFolder(temp, full, options.Overwrite);
            return new HfExportResult(full, plan.Count, bytes, family);
        }
        catch
        {
            ExportPaths.TryDeleteFolder(temp);
            throw;
        }
    }

    /// <summary>The tensor's bytes as <paramref name="type"/> in the layout transformers stores.</summary>
    public static byte[] ToHfLayout(ModelTensor t, HfLayout layout, TensorType type, ModelConfig config, bool allowNonFinite = false, string? source = null)
    {
        var canonical = ExportTypes.Convert(t, type, allowNonFinite, source).Span;
        if (layout == HfLayout.Same) return canonical.ToArray();
        int elementBytes = TensorTypes.Get(type).BlockBytes;
        var stored = new byte[canonical.Length];
        long rowBytes = t.Shape.Length == 2 ? t.Shape[1] * elementBytes : elementBytes;
        switch (layout)
        {
            case HfLayout.RopeQ: RopeInterleaveTransform.ToRotateHalf(canonical, stored, t.Shape[0], rowBytes, config.HeadCount); break;
            case HfLayout.RopeK: RopeInterleaveTransform.ToRotateHalf(canonical, stored, t.Shape[0], rowBytes, config.HeadCountKv); break;
            case HfLayout.Transposed: TransposeTransform.Transpose(canonical, stored, t.Shape[0], t.Shape[1], elementBytes); break;
        }
        return stored;
    }

    public static HfConfig ConfigOf(ModelConfig c, HfModelFamily family, TensorType dtype, Tokenizer? tokenizer) => new()
    {
        ArchitectureName = HfConfig.ClassName(family),
        Family = family,
        ModelType = HfConfig.ModelTypeOf(family),
        VocabSize = c.VocabSize,
        HiddenSize = c.EmbeddingLength,
        NumLayers = c.BlockCount,
        NumHeads = c.HeadCount,
        NumKvHeads = c.HeadCountKv,
        IntermediateSize = c.FeedForwardLength,
        MaxPositions = c.ContextLength,
        HeadDim = c.HeadDim,
        RopeTheta = ShortestDouble(c.RopeTheta),
        NormEpsilon = ShortestDouble(c.NormEpsilon),
        TieWordEmbeddings = c.TiedEmbeddings,
        AttentionBias = c.AttentionBias,
        MlpBias = family == HfModelFamily.Gpt2,
        HiddenAct = family == HfModelFamily.Gpt2 ? "gelu_new" : "silu",
        TorchDtype = dtype switch { TensorType.F16 => "float16", TensorType.BF16 => "bfloat16", _ => "float32" },
        BosTokenId = tokenizer?.BosId,
        EosTokenId = tokenizer?.EosId,
    };

    /// <summary>
    /// The double config.json should show for a float: its shortest decimal (1e-05, not 9.99999974737875E-06) when that
    /// reads back as the same float, as loaders narrow it again.
    /// </summary>
    internal static double ShortestDouble(float f) => double.Parse(f.ToString("R", System.Globalization.CultureInfo.InvariantCulture), System.Globalization.CultureInfo.InvariantCulture);
}
