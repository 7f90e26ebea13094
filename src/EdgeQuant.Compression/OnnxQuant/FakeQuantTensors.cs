using System.Runtime.InteropServices;
using EdgeQuant.Core.Errors;
using EdgeQuant.Core.Tensors;
using EdgeQuant.Models;

namespace EdgeQuant.Compression.OnnxQuant;

/// <summary>
/// What the fake-quant schemes share when they rebuild a model around their quantize-dequantized weights: F32 tensors
/// in place of the originals, and the LM head's treatment (a tied head becomes an untied quantized copy, because the
/// exported graph keeps the embedding lookup float and quantizes only the head).
/// </summary>
internal sealed class FakeQuantTensors(Model model)
{
    private readonly Dictionary<string, ModelTensor> _replaced = new(StringComparer.Ordinal);
    private readonly List<ModelTensor> _added = [];
    private bool _untie;

    /// <summary><paramref name="data"/> as an F32 tensor named <paramref name="name"/>, shaped and sourced like <paramref name="like"/>.</summary>
    public static ModelTensor F32(ModelTensor like, string name, float[] data) => new()
    {
        Name = name,
        Shape = (long[])like.Shape.Clone(),
        Type = TensorType.F32,
        SourceName = like.SourceName,
        Storage = new ArrayTensorStorage(MemoryMarshal.AsBytes(data.AsSpan()).ToArray()),
    };

    /// <summary>Replaces tensor <paramref name="source"/> by <paramref name="data"/> (F32, same name).</summary>
    public void Replace(ModelTensor source, float[] data) => _replaced[source.Name] = F32(source, source.Name, data);

    /// <summary>The tensor the LM head reads: output.weight, or the embedding of a tied model; checked to be [vocab, n_embd].</summary>
    public ModelTensor LmHeadSource()
    {
        var c = model.Config;
        var source = (!c.TiedEmbeddings ? model.Find("output.weight") : null) ?? model.Get("token_embd.weight");
        if (source.Shape.Length != 2 || source.Shape[0] != c.VocabSize || source.Shape[1] != c.EmbeddingLength)
            throw new BadInputException($"{model.Provenance.SourcePath}: tensor '{source.Name}' has shape [{string.Join(", ", source.Shape)}], expected [{c.VocabSize}, {c.EmbeddingLength}]");
        return source;
    }

    /// <summary>
    /// The quantized LM head rows (read from <paramref name="source"/>: output.weight, or the embedding of a tied
    /// model): they replace output.weight, or become an untied output.weight while the embedding stays float.
    /// </summary>
    public void ReplaceLmHead(ModelTensor source, float[] rows)
    {
        var head = F32(source, "output.weight", rows);
        if (source.Name == "output.weight")
        {
            _replaced[source.Name] = head;
            return;
        }
        _untie = true;
        if (model.Find("output.weight") is not null) _replaced["output.weight"] = head;
        else _added.Add(head);
    }

    /// <summary>The model with the replacements (unchanged tensors are read from the original, which must stay open).</summary>
    public Model Build()
    {
        var tensors = model.Tensors.Select(t => _replaced.GetValueOrDefault(t.Name) ?? t).Concat(_added).ToList();
        // The engine ignores output.weight while the config says tied.
        var config = _untie ? model.Config with { TiedEmbeddings = false } : model.Config;
        return new Model(config, tensors, model.Tokenizer, model.Provenance, model.Metadata);
    }
}
