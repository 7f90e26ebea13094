namespace EdgeQuant.Models.Engine;

/// <summary>
/// The FP32 reference forward pass of a <see cref="Model"/> (Llama family incl. GQA, Qwen2 q/k/v biases, tied
/// embeddings; GPT-2). Holds the weights, expanded to F32 once; evaluation state (KV cache, activations) lives in
/// <see cref="EngineSession"/>s, so one engine can serve several sessions, one call at a time per session.
/// </summary>
/// <example>
/// <code>
/// using var model = ModelLoader.Load("stories260K.gguf");
/// var engine = ReferenceEngine.Load(model);
/// var session = engine.CreateSession(256);
/// float[] all = session.DecodeAll(tokens);          // [tokens.Length, vocab] logits, causal over the chunk
/// float[] next = session.DecodeLast([nextToken]);   // incremental: one more position through the KV cache
/// </code>
/// </example>
public sealed class ReferenceEngine
{
    private readonly object _hookLock = new();
    private volatile ILinearInputHook[] _hooks = [];

    private ReferenceEngine(EngineWeights weights, EngineOptions options)
    {
        Weights = weights;
        Options = options;
        var names = new List<string>();
        foreach (var b in weights.Blocks)
        {
            foreach (var w in new[] { b.Qkv, b.Q, b.K, b.V, b.O, b.Gate, b.Up, b.Down })
                if (w is not null) names.Add(w.Name);
        }
        names.Add(weights.Output.Name);
        LinearLayers = names;
        foreach (var w in weights.Linears())
        {
            w.RoundInputTo = options.ActivationRounding == ActivationRounding.Ggml
                && Core.Quantization.GgmlActivationRounding.VecDotType(w.StoredType) is { } t
                && w.In % Core.Quantization.GgmlActivationRounding.BlockSize(t) == 0 ? t : null;
        }
    }

    internal EngineWeights Weights { get; }

    public EngineOptions Options { get; }

    public ModelConfig Config => Weights.Config;

    public int VocabSize => Weights.Config.VocabSize;

    /// <summary>Positions a session may hold at most: the learned position table's length for GPT-2, else unbounded.</summary>
    public int MaxPositions => Weights.PositionEmbedding is null ? int.MaxValue : Weights.PositionCount;

    /// <summary>Hook names of every linear layer, in execution order (what a hook sees once per forward).</summary>
    public IReadOnlyList<string> LinearLayers { get; }

    /// <summary>Reads and expands every weight of <paramref name="model"/>; the model may be disposed afterwards.</summary>
    public static ReferenceEngine Load(Model model, EngineOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        options ??= new EngineOptions();
        options.Validate();
        return new ReferenceEngine(EngineWeights.Load(model, options.Threads, cancellationToken), options);
    }

    /// <summary>A fresh session whose KV cache holds <paramref name="capacity"/> positions.</summary>
    public EngineSession CreateSession(int capacity)
    {
        if (capacity < 1) throw new ArgumentOutOfRangeException(nameof(capacity), capacity, "at least one position");
        if (capacity > MaxPositions)
            throw new ArgumentOutOfRangeException(nameof(capacity), capacity, $"the model knows {MaxPositions} positions");
        return new EngineSession(this, capacity);
    }

    /// <summary>Registers a hook for every later forward pass (see <see cref="ILinearInputHook"/>); dispose the result to remove it.</summary>
    public IDisposable AddHook(ILinearInputHook hook)
    {
        ArgumentNullException.ThrowIfNull(hook);
        lock (_hookLock) _hooks = [.. _hooks, hook];
        return new Registration(this, hook);
    }

    internal ILinearInputHook[] Hooks => _hooks;

    private void Remove(ILinearInputHook hook)
    {
        lock (_hookLock)
        {
            int i = Array.IndexOf(_hooks, hook);
            if (i >= 0) _hooks = [.. _hooks[..i], .. _hooks[(i + 1)..]];
        }
    }

    private sealed class Registration(ReferenceEngine engine, ILinearInputHook hook) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0) engine.Remove(hook);
        }
    }
}
