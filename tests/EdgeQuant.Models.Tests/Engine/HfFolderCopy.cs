using EdgeQuant.Core.Tensors;
using EdgeQuant.Formats.HuggingFace;
using EdgeQuant.Formats.Safetensors;
using EdgeQuant.Models.Loading;

namespace EdgeQuant.Models.Tests.Engine;

/// <summary>
/// Writes a loaded Llama-family model's weights as a Hugging Face folder (config.json, model.safetensors in HF layout
/// with rotate-half Q/K rows) using the project's safetensors and config writers, so the HF loading path can be
/// checked against the GGUF it came from. No tokenizer files: callers tokenize with the source model's tokenizer,
/// which keeps these engine tests independent of the HF tokenizer path (tested by its own suite).
/// </summary>
public static class HfFolderCopy
{
    public static void Write(Model model, string dir)
    {
        var c = model.Config;
        if (c.Architecture != Architecture.Llama) throw new NotSupportedException("test helper: Llama family only");
        Directory.CreateDirectory(dir);
        const HfModelFamily family = HfModelFamily.Llama;
        var plan = new List<(SafetensorsTensorSpec Spec, ModelTensor Tensor, HfLayout Layout)>();
        foreach (var t in model.Tensors)
        {
            if (!HfTensorNames.TryToHf(family, t.Name, out var hfName, out var layout))
                throw new InvalidOperationException($"no HF name for {t.Name}");
            plan.Add((new SafetensorsTensorSpec(hfName, TensorType.F32, t.Shape), t, layout));
        }
        using (var w = new SafetensorsWriter(Path.Combine(dir, SafetensorsConstants.SingleFileName), plan.Select(p => p.Spec), new Dictionary<string, string> { ["format"] = "pt" }))
        {
            foreach (var (spec, t, layout) in plan)
            {
                var canonical = t.RawBytes().ToArray();
                var stored = new byte[canonical.Length];
                long rowBytes = t.Shape.Length == 2 ? t.Shape[1] * 4 : 4;
                switch (layout)
                {
                    case HfLayout.RopeQ: RopeInterleaveTransform.ToRotateHalf(canonical, stored, t.Shape[0], rowBytes, c.HeadCount); break;
                    case HfLayout.RopeK: RopeInterleaveTransform.ToRotateHalf(canonical, stored, t.Shape[0], rowBytes, c.HeadCountKv); break;
                    case HfLayout.Same: stored = canonical; break;
                    default: throw new NotSupportedException($"{t.Name}: layout {layout}");
                }
                w.WriteTensor(spec.Name, stored);
            }
            w.Commit();
        }

        HfConfigWriter.Write(Path.Combine(dir, "config.json"), new HfConfig
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
            RopeTheta = c.RopeTheta,
            NormEpsilon = (double)(decimal)c.NormEpsilon,
            TieWordEmbeddings = model.Find("output.weight") is null,
            AttentionBias = false,
            HiddenAct = "silu",
            TorchDtype = "float32",
            BosTokenId = model.Tokenizer?.BosId,
            EosTokenId = model.Tokenizer?.EosId,
        });
    }
}
