namespace EdgeQuant.Runtimes.LlamaCpp;

/// <summary>
/// <see cref="ILogitsRunner"/> over llama.cpp for a <c>.gguf</c> file: one model, one context, sequence 0. Inputs
/// longer than the context's batch are decoded in batch-sized pieces; the requested rows are copied out after each.
/// </summary>
public sealed class LlamaCppRunner : ILogitsRunner
{
    private readonly LlamaModel _model;
    private readonly LlamaContext _context;
    private readonly bool _ownsModel;
    private int _cached;

    /// <summary>Runs an already loaded model (not disposed with the runner).</summary>
    public LlamaCppRunner(LlamaModel model, LlamaContextOptions options)
        : this(model, options, ownsModel: false)
    {
    }

    private LlamaCppRunner(LlamaModel model, LlamaContextOptions options, bool ownsModel)
    {
        _model = model;
        _context = model.CreateContext(options);
        _ownsModel = ownsModel;
        var info = LlamaLibrary.EnsureInitialized();
        Name = info.CpuVariant is { } v ? $"llama.cpp ({v})" : "llama.cpp";
    }

    /// <summary>Loads <paramref name="ggufPath"/> and creates a context; the runner owns both.</summary>
    public static LlamaCppRunner Open(string ggufPath, LlamaContextOptions options, IProgress<float>? loadProgress = null,
        CancellationToken cancellationToken = default)
    {
        var model = LlamaModel.Load(ggufPath, progress: loadProgress, cancellationToken: cancellationToken);
        try
        {
            return new LlamaCppRunner(model, options, ownsModel: true);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    public string Name { get; }
    public int VocabSize => _model.VocabSize;
    public int ContextLength => _context.ContextSize;
    public TimeSpan LastRunTime { get; private set; }

    public LlamaModel Model => _model;
    public LlamaContext Context => _context;

    public void Evaluate(ReadOnlySpan<int> tokens, int startPos, ReadOnlySpan<int> outputPositions, Span<float> logits)
    {
        LogitsRunnerGuards.CheckEvaluate(this, _cached, tokens, startPos, outputPositions, logits);
        var elapsed = TimeSpan.Zero;
        int next = 0; // next entry of outputPositions to fill
        Span<int> local = outputPositions.Length <= 1024 ? stackalloc int[outputPositions.Length] : new int[outputPositions.Length];
        for (int begin = 0; begin < tokens.Length; begin += _context.BatchSize)
        {
            int count = Math.Min(_context.BatchSize, tokens.Length - begin);
            int first = next, n = 0;
            while (next < outputPositions.Length && outputPositions[next] < begin + count)
                local[n++] = outputPositions[next++] - begin;
            try
            {
                _context.Decode(tokens.Slice(begin, count), startPos + begin, local[..n]);
            }
            catch
            {
                // A failed decode may leave part of the batch in the cache: make the runner's state explicit.
                Reset();
                throw;
            }
            _cached = startPos + begin + count;
            elapsed += _context.LastDecodeTime;
            for (int k = 0; k < n; k++)
                _context.GetLogits(local[k]).CopyTo(logits.Slice((first + k) * VocabSize, VocabSize));
        }
        LastRunTime = elapsed;
    }

    public void Reset()
    {
        _context.ClearMemory();
        _cached = 0;
    }

    public void Dispose()
    {
        _context.Dispose();
        if (_ownsModel) _model.Dispose();
    }

    /// <summary>Tokenizes with llama.cpp's tokenizer (BOS when the vocabulary adds it, no special-token parsing): llama-perplexity's choice.</summary>
    public int[] Tokenize(string text) => _model.Tokenize(text, addSpecial: true, parseSpecial: false);
}
