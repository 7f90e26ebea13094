namespace EdgeQuant.Runtimes.OnnxRuntime;

/// <summary>
/// One session input or output as ORT describes it. For tensors, <see cref="Shape"/> holds -1 where a dimension
/// is not fixed, and <see cref="SymbolicShape"/> the dimension's name ("batch_size", "sequence_length") or "".
/// </summary>
public sealed record OrtNodeInfo(string Name, OrtValueKind Kind, OrtElementType ElementType, IReadOnlyList<long> Shape, IReadOnlyList<string> SymbolicShape)
{
    public override string ToString()
    {
        if (Kind != OrtValueKind.Tensor) return $"{Name}: {Kind}";
        var dims = Shape.Select((d, i) => d >= 0 ? d.ToString() : SymbolicShape[i] is { Length: > 0 } s ? s : "?");
        return $"{Name}: {ElementType}[{string.Join(",", dims)}]";
    }
}

/// <summary>How a session is created. Defaults are ORT's own, except that logging prints errors only.</summary>
public sealed class OrtSessionSettings
{
    /// <summary>Threads for parallelism inside one operator; 0 lets ORT choose (one per physical core).</summary>
    public int IntraOpThreads { get; init; }

    /// <summary>Threads for running independent operators in parallel (parallel execution mode only); 0: ORT's choice.</summary>
    public int InterOpThreads { get; init; }

    public OrtGraphOptimizationLevel OptimizationLevel { get; init; } = OrtGraphOptimizationLevel.All;

    /// <summary>When set, ORT writes the graph after optimization to this path (ORT's <c>optimized_model_filepath</c>).</summary>
    public string? OptimizedModelPath { get; init; }

    /// <summary>
    /// When set, ORT profiles every run and writes a Chrome-trace JSON (one event per operator run) named
    /// <c>PREFIX_DATE.json</c> when the session is disposed (ORT's <c>enable_profiling</c>).
    /// </summary>
    public string? ProfilePrefix { get; init; }

    /// <summary>ORT's memory-pattern planning; null keeps ORT's default (on).</summary>
    public bool? MemoryPattern { get; init; }

    /// <summary>ORT's CPU arena allocator; null keeps ORT's default (on).</summary>
    public bool? CpuArena { get; init; }

    public OrtLoggingLevel LogSeverity { get; init; } = OrtLoggingLevel.Error;
}
