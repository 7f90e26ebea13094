using System.Diagnostics;
using EdgeQuant.Runtimes;

namespace EdgeQuant.Models.Engine;

/// <summary>
/// The reference engine behind <see cref="ILogitsRunner"/>, so perplexity, KLD and the other verification figures
/// are computed by the same code whichever runtime produced the logits. One session of
/// <see cref="ContextLength"/> positions; <see cref="LastRunTime"/> is the whole forward (the engine has no native part).
/// </summary>
public sealed class EngineLogitsRunner : ILogitsRunner
{
    private readonly EngineSession _session;

    public EngineLogitsRunner(ReferenceEngine engine, int contextLength)
    {
        ArgumentNullException.ThrowIfNull(engine);
        Engine = engine;
        _session = engine.CreateSession(contextLength);
        Name = engine.Options.ActivationRounding == ActivationRounding.Ggml
            ? $"edgequant engine (F32, ggml activation rounding, {engine.Options.Threads} threads)"
            : $"edgequant engine (F32, {engine.Options.Threads} threads)";
    }

    /// <summary>Loads <paramref name="modelPath"/> (any format <see cref="ModelLoader"/> reads) into a new engine.</summary>
    public static EngineLogitsRunner Open(string modelPath, int contextLength, EngineOptions? options = null, CancellationToken cancellationToken = default)
    {
        using var model = ModelLoader.Load(modelPath);
        return new EngineLogitsRunner(ReferenceEngine.Load(model, options, cancellationToken), contextLength);
    }

    /// <summary>
    /// What <c>eval --runtime engine</c> needs: the runner plus the text tokenized as llama-perplexity does with the
    /// model's own tokenizer (BOS when the vocabulary adds it, no special-token parsing), and the BOS id each chunk
    /// starts with (null when the vocabulary adds none).
    /// </summary>
    /// <param name="tokenizerPath">llama2.c only: its tokenizer.bin (default: beside the checkpoint).</param>
    /// <param name="rounding">See <see cref="EngineOptions.ActivationRounding"/>.</param>
    public static (EngineLogitsRunner Runner, int[] Tokens, int? Bos) OpenForText(string modelPath, string text, int contextLength,
        int threads, string? tokenizerPath = null, CancellationToken cancellationToken = default, ActivationRounding rounding = ActivationRounding.None)
    {
        using var model = ModelLoader.Load(modelPath, tokenizerPath);
        if (model.Tokenizer is null)
            throw new Core.Errors.BadInputException($"{modelPath}: the model carries no tokenizer, so the text cannot be tokenized");
        var tokenizer = Tokenizers.Tokenizer.FromModel(model);
        var tokens = tokenizer.Encode(text, addSpecial: true, parseSpecial: false);
        var engine = ReferenceEngine.Load(model, new EngineOptions { Threads = threads, ActivationRounding = rounding }, cancellationToken);
        return (new EngineLogitsRunner(engine, contextLength) { CancellationToken = cancellationToken }, tokens,
            tokenizer.AddBos ? tokenizer.BosId : null);
    }

    public ReferenceEngine Engine { get; }

    public string Name { get; }

    public int VocabSize => _session.VocabSize;

    public int ContextLength => _session.Capacity;

    public TimeSpan LastRunTime { get; private set; }

    /// <summary>Checked between blocks of every forward pass (the interface's calls take no token).</summary>
    public CancellationToken CancellationToken { get; set; }

    public void Evaluate(ReadOnlySpan<int> tokens, int startPos, ReadOnlySpan<int> outputPositions, Span<float> logits)
    {
        LogitsRunnerGuards.CheckEvaluate(this, _session.Length, tokens, startPos, outputPositions, logits);
        long start = Stopwatch.GetTimestamp();
        _session.Decode(tokens, outputPositions, logits, CancellationToken);
        LastRunTime = Stopwatch.GetElapsedTime(start);
    }

    public void Reset() => _session.Reset();

    /// <summary>Nothing native to release; the weights go with the engine when it is no longer referenced.</summary>
    public void Dispose()
    {
    }
}
