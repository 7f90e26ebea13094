using System.Diagnostics;

namespace EdgeQuant.Models.Engine;

/// <summary>Why generation ended.</summary>
public enum StopReason
{
    /// <summary>The requested number of tokens was produced.</summary>
    Length,

    /// <summary>The model produced the end-of-sequence token (not included in the output).</summary>
    EndOfSequence,

    /// <summary>The session's KV cache is full.</summary>
    ContextFull,
}

/// <param name="Tokens">Generated token ids (prompt excluded, stop token excluded).</param>
/// <param name="PromptTime">Time to evaluate the prompt (one batch) and pick the first token.</param>
/// <param name="GenerationTime">Time for the remaining tokens, one incremental step each.</param>
public sealed record GenerationResult(int[] Tokens, StopReason StopReason, int PromptTokens, TimeSpan PromptTime, TimeSpan GenerationTime)
{
    /// <summary>Tokens per second of the incremental steps (the first token is charged to the prompt).</summary>
    public double TokensPerSecond => Tokens.Length > 1 && GenerationTime > TimeSpan.Zero ? (Tokens.Length - 1) / GenerationTime.TotalSeconds : double.NaN;

    public double PromptTokensPerSecond => PromptTime > TimeSpan.Zero ? PromptTokens / PromptTime.TotalSeconds : double.NaN;
}

/// <summary>Autoregressive decoding on an <see cref="EngineSession"/>: the prompt in one batch, then one token per step through the KV cache.</summary>
public static class TextGeneration
{
    /// <param name="session">An empty session (or one holding a prefix the prompt continues).</param>
    /// <param name="prompt">Prompt token ids, BOS included when the model wants it; at least one.</param>
    /// <param name="maxNewTokens">Most tokens to generate.</param>
    /// <param name="stopToken">End-of-sequence id that stops generation, or null to never stop early.</param>
    /// <param name="onToken">Called with each generated token as soon as it is chosen (for streaming).</param>
    public static GenerationResult Generate(EngineSession session, ReadOnlySpan<int> prompt, int maxNewTokens, TokenSampler sampler,
        int? stopToken = null, Action<int>? onToken = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(session);
        ArgumentNullException.ThrowIfNull(sampler);
        if (prompt.IsEmpty) throw new Core.Errors.BadInputException("the prompt is empty (no tokens to start from)");
        if (maxNewTokens < 0) throw new ArgumentOutOfRangeException(nameof(maxNewTokens), maxNewTokens, "must not be negative");
        if (prompt.Length > session.Capacity - session.Length)
            throw new Core.Errors.BadInputException($"the prompt has {prompt.Length} tokens; the context holds {session.Capacity - session.Length} more");

        var output = new List<int>(maxNewTokens);
        long t0 = Stopwatch.GetTimestamp();
        var logits = session.DecodeLast(prompt, cancellationToken);
        var promptTime = TimeSpan.Zero;
        var reason = StopReason.Length;
        while (output.Count < maxNewTokens)
        {
            int next = sampler.Sample(logits);
            if (output.Count == 0) promptTime = Stopwatch.GetElapsedTime(t0);
            if (next == stopToken)
            {
                reason = StopReason.EndOfSequence;
                break;
            }
            output.Add(next);
            onToken?.Invoke(next);
            if (output.Count == maxNewTokens) break;
            if (session.Length >= session.Capacity)
            {
                reason = StopReason.ContextFull;
                break;
            }
            logits = session.DecodeLast([next], cancellationToken);
        }
        if (promptTime == TimeSpan.Zero) promptTime = Stopwatch.GetElapsedTime(t0);
        var genTime = Stopwatch.GetElapsedTime(t0) - promptTime;
        return new GenerationResult([.. output], reason, prompt.Length, promptTime, genTime);
    }
}
