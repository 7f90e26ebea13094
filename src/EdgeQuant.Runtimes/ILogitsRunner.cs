namespace EdgeQuant.Runtimes;

/// <summary>
/// One language model loaded in one runtime (the reference engine, llama.cpp, ONNX Runtime), seen the way the
/// verification stage needs it: feed token ids, get the logits at chosen positions, know how long it took.
/// Every implementation keeps its own KV cache, so a long text can be fed in chunks.
/// </summary>
/// <remarks>
/// The contract the verification stage relies on, whatever the runtime:
/// <list type="bullet">
/// <item><c>Evaluate(tokens, startPos, ...)</c> appends <paramref name="tokens"/> at absolute positions
/// <c>startPos .. startPos + tokens.Length - 1</c>. <c>startPos</c> must equal the number of tokens already in the
/// cache (0 after <see cref="Reset"/>); a runner may throw otherwise rather than silently recompute.</item>
/// <item><c>outputPositions</c> are indices into <paramref name="tokens"/> (0-based, ascending, distinct); row
/// <c>i</c> of <c>logits</c> (length <c>outputPositions.Length * VocabSize</c>, row-major) receives the logits
/// predicting the token after <c>tokens[outputPositions[i]]</c>.</item>
/// <item>A runner is not thread-safe; one caller at a time.</item>
/// </list>
/// </remarks>
public interface ILogitsRunner : IDisposable
{
    /// <summary>A short label for reports, e.g. <c>onnxruntime 1.30.0</c> or <c>llama.cpp (zen4)</c>.</summary>
    string Name { get; }

    /// <summary>Number of logits per position.</summary>
    int VocabSize { get; }

    /// <summary>Most positions the model (or the context the runner created) can hold.</summary>
    int ContextLength { get; }

    /// <summary>Runs <paramref name="tokens"/> at <paramref name="startPos"/> and copies out the requested rows.</summary>
    /// <param name="tokens">Token ids to append to the cache.</param>
    /// <param name="startPos">Absolute position of <c>tokens[0]</c>; equals the tokens already cached.</param>
    /// <param name="outputPositions">Indices into <paramref name="tokens"/> whose logits are wanted.</param>
    /// <param name="logits">Destination, <c>outputPositions.Length * VocabSize</c> floats.</param>
    void Evaluate(ReadOnlySpan<int> tokens, int startPos, ReadOnlySpan<int> outputPositions, Span<float> logits);

    /// <summary>Forgets the cache: the next <see cref="Evaluate"/> starts at position 0.</summary>
    void Reset();

    /// <summary>Wall time of the native work in the last <see cref="Evaluate"/> (excluding argument checks and copies where the runtime allows).</summary>
    TimeSpan LastRunTime { get; }
}

/// <summary>Argument checks shared by <see cref="ILogitsRunner"/> implementations, so every runtime rejects the same calls the same way.</summary>
public static class LogitsRunnerGuards
{
    /// <summary>Throws <see cref="ArgumentException"/> unless the call follows the <see cref="ILogitsRunner"/> contract.</summary>
    public static void CheckEvaluate(ILogitsRunner runner, int cachedTokens, ReadOnlySpan<int> tokens, int startPos,
        ReadOnlySpan<int> outputPositions, Span<float> logits)
    {
        if (tokens.IsEmpty) throw new ArgumentException("no tokens to evaluate", nameof(tokens));
        if (startPos != cachedTokens)
            throw new ArgumentException($"startPos {startPos} does not continue the cache ({cachedTokens} tokens cached); call Reset() to start over", nameof(startPos));
        if ((long)startPos + tokens.Length > runner.ContextLength)
            throw new ArgumentException($"positions {startPos}..{startPos + tokens.Length - 1} exceed the context length {runner.ContextLength}", nameof(tokens));
        int previous = -1;
        foreach (int p in outputPositions)
        {
            if (p <= previous || p >= tokens.Length)
                throw new ArgumentException($"output position {p} is out of order or outside 0..{tokens.Length - 1}", nameof(outputPositions));
            previous = p;
        }
        if (logits.Length != (long)outputPositions.Length * runner.VocabSize)
            throw new ArgumentException($"logits holds {logits.Length} floats; {outputPositions.Length} rows x {runner.VocabSize} needed", nameof(logits));
        foreach (int t in tokens)
        {
            if ((uint)t >= (uint)runner.VocabSize)
                throw new ArgumentException($"token id {t} is outside the vocabulary (0..{runner.VocabSize - 1})", nameof(tokens));
        }
    }
}
