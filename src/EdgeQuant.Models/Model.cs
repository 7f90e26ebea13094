namespace EdgeQuant.Models;

/// <summary>Where a model came from, for reports and exported metadata.</summary>
public sealed record Provenance(string SourcePath, ModelFormat Format, string? Name = null);

/// <summary>
/// A model in memory whatever its source: architecture, hyperparameters, named tensors (lazy, memory-mapped where
/// the source allows), tokenizer data and provenance. Owns the mapped files it reads from.
/// </summary>
public sealed class Model : IDisposable
{
    private readonly Dictionary<string, ModelTensor> _byName;
    private readonly IReadOnlyList<IDisposable> _owned;

    public Model(ModelConfig config, IReadOnlyList<ModelTensor> tensors, TokenizerData? tokenizer, Provenance provenance,
        IReadOnlyDictionary<string, object>? metadata = null, IReadOnlyList<IDisposable>? owned = null)
    {
        Config = config;
        Tensors = tensors;
        Tokenizer = tokenizer;
        Provenance = provenance;
        Metadata = metadata ?? new Dictionary<string, object>();
        _owned = owned ?? [];
        _byName = new Dictionary<string, ModelTensor>(StringComparer.Ordinal);
        foreach (var t in tensors)
            if (!_byName.TryAdd(t.Name, t))
                throw new Core.Errors.BadInputException($"{provenance.SourcePath}: tensor '{t.Name}' appears twice");
    }

    public ModelConfig Config { get; }
    public IReadOnlyList<ModelTensor> Tensors { get; }
    public TokenizerData? Tokenizer { get; }
    public Provenance Provenance { get; }

    /// <summary>Raw metadata of the source (GGUF key/values, or config.json fields), for inspection.</summary>
    public IReadOnlyDictionary<string, object> Metadata { get; }

    public ModelTensor? Find(string name) => _byName.GetValueOrDefault(name);

    public ModelTensor Get(string name) =>
        _byName.TryGetValue(name, out var t) ? t : throw new Core.Errors.BadInputException($"{Provenance.SourcePath}: tensor '{name}' is missing");

    public long ParameterCount => Tensors.Sum(t => t.ElementCount);

    public void Dispose()
    {
        foreach (var d in _owned) d.Dispose();
    }
}
