using System.Runtime.InteropServices;
using EdgeQuant.Core.Tensors;
using EdgeQuant.Export;
using EdgeQuant.Formats.Gguf;
using EdgeQuant.Formats.HuggingFace;
using EdgeQuant.Formats.Safetensors;
using EdgeQuant.Models.Loading;

namespace EdgeQuant.Fixtures;

/// <summary>Where a fixture was written.</summary>
public sealed record FixtureResult(string? HuggingFaceDir, string? GgufPath, long ParameterCount);

/// <summary>
/// Writes random-weight models of any Llama-family or GPT-2 shape: an HF folder (config.json, model.safetensors in
/// HF layout, i.e. with the inverse Q/K permutation and Conv1D transposes applied, tokenizer.json,
/// tokenizer_config.json) under <c>outDir/hf</c>, and a GGUF with llama.cpp's keys and names at
/// <c>outDir/gguf/model.gguf</c>. Tensors are generated one at a time while writing, so even the
/// tinyllama-1.1b shape needs memory for its largest tensor only.
/// </summary>
public static class FixtureMaker
{
    public const string HfDirName = "hf";
    public const string GgufDirName = "gguf";
    public const string GgufFileName = "model.gguf";

    public static FixtureResult Write(FixtureSpec spec, string outDir, FixtureFormats formats)
    {
        spec.Validate();
        var config = spec.ToModelConfig();
        var tensors = CanonicalTensors.Enumerate(config, includeOutput: spec.Untied).ToList();
        var tokenizer = FixtureTokenizer.For(spec);
        string? hfDir = null, ggufPath = null;
        if (formats.HasFlag(FixtureFormats.HuggingFace))
        {
            hfDir = Path.Combine(outDir, HfDirName);
            WriteHf(spec, tensors, tokenizer, hfDir);
        }
        if (formats.HasFlag(FixtureFormats.Gguf))
        {
            ggufPath = Path.Combine(outDir, GgufDirName, GgufFileName);
            WriteGguf(spec, tensors, tokenizer, ggufPath);
        }
        return new FixtureResult(hfDir, ggufPath, tensors.Sum(t => t.Shape.Aggregate(1L, (a, b) => a * b)));
    }

    public static HfModelFamily Family(FixtureArch arch) => arch switch
    {
        FixtureArch.Qwen2 => HfModelFamily.Qwen2,
        FixtureArch.Gpt2 => HfModelFamily.Gpt2,
        _ => HfModelFamily.Llama,
    };

    public static HfConfig HfConfigOf(FixtureSpec spec, FixtureTokenizer tokenizer)
    {
        var family = Family(spec.Arch);
        return new HfConfig
        {
            ArchitectureName = HfConfig.ClassName(family),
            Family = family,
            ModelType = HfConfig.ModelTypeOf(family),
            VocabSize = spec.Vocab,
            HiddenSize = spec.Embd,
            NumLayers = spec.Layers,
            NumHeads = spec.Heads,
            NumKvHeads = spec.KvHeads,
            IntermediateSize = spec.Ffn,
            MaxPositions = spec.ContextLength,
            HeadDim = spec.EffectiveHeadDim,
            RopeTheta = (double)(decimal)spec.RopeTheta,
            // Through decimal so config.json says 1e-05, not the float's binary expansion.
            NormEpsilon = (double)(decimal)spec.NormEpsilon,
            TieWordEmbeddings = !spec.Untied,
            AttentionBias = spec.HasAttentionBias,
            MlpBias = family == HfModelFamily.Gpt2,
            HiddenAct = family == HfModelFamily.Gpt2 ? "gelu_new" : "silu",
            TorchDtype = spec.Dtype == FixtureDtype.F16 ? "float16" : "float32",
            BosTokenId = tokenizer.BosId,
            EosTokenId = tokenizer.EosId,
        };
    }

    private static void WriteHf(FixtureSpec spec, List<(string Name, long[] Shape)> tensors, FixtureTokenizer tokenizer, string dir)
    {
        Directory.CreateDirectory(dir);
        // A sharded index left from an earlier checkpoint in this folder would shadow the file written now.
        File.Delete(Path.Combine(dir, SafetensorsConstants.IndexFileName));
        var family = Family(spec.Arch);
        var type = spec.Dtype == FixtureDtype.F16 ? TensorType.F16 : TensorType.F32;
        var plan = new Dictionary<string, (string Canonical, long[] Shape, HfLayout Layout)>(StringComparer.Ordinal);
        var specs = new List<SafetensorsTensorSpec>();
        foreach (var (name, shape) in tensors)
        {
            if (!HfTensorNames.TryToHf(family, name, out var hfName, out var layout))
                throw new InvalidOperationException($"no HF name for {name}");
            plan[hfName] = (name, shape, layout);
            specs.Add(new SafetensorsTensorSpec(hfName, type, layout == HfLayout.Transposed ? [shape[1], shape[0]] : shape));
        }
        using (var w = new SafetensorsWriter(Path.Combine(dir, SafetensorsConstants.SingleFileName), specs, new Dictionary<string, string> { ["format"] = "pt" }))
        {
            foreach (var s in w.Order)
            {
                var (canonical, shape, layout) = plan[s.Name];
                var bytes = ToBytes(FixtureWeights.Generate(spec, canonical, shape), type);
                var stored = layout == HfLayout.Same ? bytes : new byte[bytes.Length];
                int elementBytes = TensorTypes.Get(type).BlockBytes;
                long rowBytes = shape.Length == 2 ? shape[1] * elementBytes : elementBytes;
                switch (layout)
                {
                    case HfLayout.RopeQ: RopeInterleaveTransform.ToRotateHalf(bytes, stored, shape[0], rowBytes, spec.Heads); break;
                    case HfLayout.RopeK: RopeInterleaveTransform.ToRotateHalf(bytes, stored, shape[0], rowBytes, spec.KvHeads); break;
                    case HfLayout.Transposed: TransposeTransform.Transpose(bytes, stored, shape[0], shape[1], elementBytes); break;
                }
                w.WriteTensor(s.Name, stored);
            }
            w.Commit();
        }
        HfConfigWriter.Write(Path.Combine(dir, "config.json"), HfConfigOf(spec, tokenizer));
        tokenizer.WriteTokenizerJson(Path.Combine(dir, HfTokenizerReader.TokenizerFileName));
        tokenizer.WriteTokenizerConfig(Path.Combine(dir, HfTokenizerReader.TokenizerConfigFileName), spec.ContextLength);
    }

    private static void WriteGguf(FixtureSpec spec, List<(string Name, long[] Shape)> tensors, FixtureTokenizer tokenizer, string path)
    {
        var config = spec.ToModelConfig();
        var md = new List<KeyValuePair<string, GgufValue>>
        {
            new("general.architecture", GgufExporter.ArchitectureName(config.Architecture)),
            new("general.name", spec.Name),
            // llama_ftype: 0 = all F32, 1 = mostly F16 (1-D tensors stay F32, as llama.cpp's converter keeps them).
            new("general.file_type", spec.Dtype == FixtureDtype.F16 ? 1u : 0u),
        };
        // The exporter's table of llama.cpp hyperparameter keys, so fixtures and exports cannot drift apart.
        md.AddRange(GgufExporter.ArchitectureMetadata(config));
        md.AddRange(tokenizer.GgufMetadata());

        var type2d = spec.Dtype == FixtureDtype.F16 ? TensorType.F16 : TensorType.F32;
        var toWrite = tensors.Select(t =>
            GgufTensorToWrite.FromFloats(t.Name, t.Shape.Length == 1 ? TensorType.F32 : type2d, t.Shape,
                () => FixtureWeights.Generate(spec, t.Name, t.Shape)));
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        GgufWriter.Write(path, md, toWrite);
    }

    private static byte[] ToBytes(float[] values, TensorType type)
    {
        if (type == TensorType.F32) return MemoryMarshal.AsBytes(values.AsSpan()).ToArray();
        var bytes = new byte[values.Length * 2];
        HalfConversions.F32ToF16(values, bytes);
        return bytes;
    }
}
