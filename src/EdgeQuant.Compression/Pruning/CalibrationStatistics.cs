using System.Numerics.Tensors;
using EdgeQuant.Core.Errors;
using EdgeQuant.Models;
using EdgeQuant.Models.Engine;

namespace EdgeQuant.Compression.Pruning;

/// <summary>
/// What the pruning methods need to know about one linear layer's input X [tokens, in] over the calibration text:
/// per input column the sum of squares (‖X_j‖² for Wanda) and, when asked for, the Gram matrix XᵀX (SparseGPT's
/// Hessian is 2XᵀX / tokens). Both accumulated in double: sums over hundreds of thousands of tokens lose digits in F32.
/// </summary>
public sealed class LayerStatistics
{
    public LayerStatistics(string layer, int columns, bool hessian)
    {
        Layer = layer;
        Columns = columns;
        SquaredSums = new double[columns];
        Gram = hessian ? new double[checked((long)columns * columns)] : null;
    }

    /// <summary>The engine's layer name (<c>blk.3.attn_q</c>): the weight is this plus <c>.weight</c>.</summary>
    public string Layer { get; }

    public int Columns { get; }

    /// <summary>Tokens (rows of X) accumulated.</summary>
    public long Rows { get; internal set; }

    /// <summary>Σ_t X_tj² per input column j.</summary>
    public double[] SquaredSums { get; }

    /// <summary>XᵀX, [in, in] row-major, symmetric once complete; null when only column norms were collected.</summary>
    public double[]? Gram { get; }

    /// <summary>‖X_j‖₂ per column, Wanda's activation factor.</summary>
    public double[] ColumnNorms()
    {
        var norms = new double[Columns];
        for (int j = 0; j < norms.Length; j++) norms[j] = Math.Sqrt(SquaredSums[j]);
        return norms;
    }

    /// <summary>Adds rows of X. Only the upper triangle of the Gram matrix is summed here; <see cref="Complete"/> mirrors it.</summary>
    internal void Add(ReadOnlySpan<float> input, int rows, int threads)
    {
        int d = Columns;
        var x = new double[(long)rows * d];
        for (long i = 0; i < x.Length; i++) x[i] = input[(int)i];
        for (int r = 0; r < rows; r++)
        {
            var row = x.AsSpan(r * d, d);
            for (int j = 0; j < d; j++) SquaredSums[j] += row[j] * row[j];
        }
        Rows += rows;
        if (Gram is not { } g) return;
        // Row i of the upper triangle belongs to one worker, so the rank-1 updates need no locking.
        Parallel.For(0, d, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, threads) }, i =>
        {
            var dst = g.AsSpan(i * d + i, d - i);
            for (int r = 0; r < rows; r++)
            {
                double xi = x[(long)r * d + i];
                if (xi == 0) continue;
                TensorPrimitives.MultiplyAdd(x.AsSpan(r * d + i, d - i), xi, dst, dst);
            }
        });
    }

    private bool _complete;

    /// <summary>Copies the upper triangle of the Gram matrix into the lower one (once).</summary>
    internal void Complete()
    {
        if (_complete || Gram is not { } g) return;
        int d = Columns;
        for (int i = 0; i < d; i++)
            for (int j = 0; j < i; j++) g[(long)i * d + j] = g[(long)j * d + i];
        _complete = true;
    }

    internal void CheckFinite()
    {
        foreach (var v in SquaredSums)
            if (!double.IsFinite(v)) throw new BadInputException($"pruning calibration: non-finite activations reached '{Layer}' (after {Rows} rows)");
    }
}

/// <summary>
/// Engine hook gathering <see cref="LayerStatistics"/> for chosen layers. Layers that receive the same input (attn_q/k/v,
/// ffn_gate/up) are collected once under the first one's name and shared: the engine hands each a private copy of the
/// same activations, so summing each would triple the work and the memory for identical numbers.
/// </summary>
public sealed class PruningStatisticsCollector : ILinearInputHook
{
    private readonly Dictionary<string, LayerStatistics> _collected = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _sourceOf;
    private readonly bool _hessian;
    private readonly int _threads;

    /// <param name="sourceOf">Layer → the layer whose input it shares and whose statistics it uses (itself when collected).</param>
    public PruningStatisticsCollector(IReadOnlyDictionary<string, string> sourceOf, bool hessian, int threads)
    {
        _sourceOf = new Dictionary<string, string>(sourceOf, StringComparer.Ordinal);
        _hessian = hessian;
        _threads = threads;
    }

    public void OnInput(string layer, Span<float> input, int rows, int cols)
    {
        if (rows <= 0 || !_sourceOf.TryGetValue(layer, out var source) || source != layer) return;
        if (!_collected.TryGetValue(layer, out var stats))
            _collected.Add(layer, stats = new LayerStatistics(layer, cols, _hessian));
        else if (stats.Columns != cols)
            throw new InternalFailureException($"pruning calibration: layer '{layer}' had {stats.Columns} input columns and now {cols}");
        stats.Add(input, rows, _threads);
        stats.CheckFinite();
    }

    /// <summary>Statistics per layer name (shared layers point at the same object).</summary>
    public IReadOnlyDictionary<string, LayerStatistics> Result()
    {
        var result = new Dictionary<string, LayerStatistics>(StringComparer.Ordinal);
        foreach (var (layer, source) in _sourceOf)
        {
            if (!_collected.TryGetValue(source, out var s)) continue;
            s.Complete();
            result[layer] = s;
        }
        return result;
    }
}

/// <summary>How calibration text is fed to the engine.</summary>
public sealed record CalibrationOptions
{
    /// <summary>Tokens per sequence; each starts from an empty KV cache (with BOS when the vocabulary adds it).</summary>
    public int SequenceLength { get; init; } = 512;

    /// <summary>At most this many sequences (fewer when the text is shorter).</summary>
    public int Samples { get; init; } = 128;

    /// <summary>Collect XᵀX too (SparseGPT); Wanda needs only the column norms.</summary>
    public bool Hessian { get; init; } = true;

    public int Threads { get; init; } = Environment.ProcessorCount;

    /// <summary>The token each sequence starts with; null: the model tokenizer's BOS when it adds one, else none.</summary>
    public int? Bos { get; init; }
}

/// <summary>After each calibration sequence.</summary>
public readonly record struct CalibrationProgress(int Sample, int Samples);

/// <summary>
/// Runs calibration tokens through the reference engine (as <see cref="Imatrix.ImatrixRunner"/> does for importance
/// matrices) in consecutive sequences of a fixed length, every token of which feeds the statistics of every chosen layer.
/// </summary>
public static class PruningCalibration
{
    /// <summary>Sequences the tokens provide: min(samples, tokens / sequence length).</summary>
    public static int SampleCount(int tokens, CalibrationOptions o) => Math.Min(o.Samples, tokens / o.SequenceLength);

    /// <param name="layers">Engine layer names to collect (weight name without <c>.weight</c>).</param>
    public static IReadOnlyDictionary<string, LayerStatistics> Collect(Model model, IReadOnlyList<int> tokens, IReadOnlyCollection<string> layers,
        CalibrationOptions o, IProgress<CalibrationProgress>? progress, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(tokens);
        ArgumentNullException.ThrowIfNull(o);
        if (o.SequenceLength < 2) throw new BadInputException($"--calib-seq-len: {o.SequenceLength} is too short (at least 2 tokens)");
        if (o.SequenceLength > model.Config.ContextLength)
            throw new BadInputException($"--calib-seq-len: {o.SequenceLength} exceeds the model's context length {model.Config.ContextLength}");
        if (o.Samples < 1) throw new BadInputException($"--calib-samples: {o.Samples} must be positive");
        if (o.Threads < 1) throw new BadInputException($"--threads: {o.Threads} must be positive");
        int samples = SampleCount(tokens.Count, o);
        if (samples < 1)
            throw new BadInputException($"the calibration text tokenizes to {tokens.Count} tokens, fewer than one sequence of --calib-seq-len {o.SequenceLength}");
        int? bos = o.Bos;
        if (bos is null && model.Tokenizer is not null)
        {
            var tok = Models.Tokenizers.Tokenizer.FromModel(model);
            bos = tok.AddBos ? tok.BosId : null;
        }

        var engine = ReferenceEngine.Load(model, new EngineOptions { Threads = o.Threads }, ct);
        var wanted = new HashSet<string>(layers, StringComparer.Ordinal);
        var collector = new PruningStatisticsCollector(SharedInputs(engine.LinearLayers, wanted), o.Hessian, o.Threads);
        using var hook = engine.AddHook(collector);
        var session = engine.CreateSession(o.SequenceLength);
        var seq = new int[o.SequenceLength];
        for (int s = 0; s < samples; s++)
        {
            ct.ThrowIfCancellationRequested();
            for (int i = 0; i < seq.Length; i++) seq[i] = tokens[s * seq.Length + i];
            if (bos is { } b) seq[0] = b;
            session.Reset();
            session.Decode(seq, [], [], ct);
            progress?.Report(new CalibrationProgress(s + 1, samples));
        }
        var result = collector.Result();
        foreach (var layer in wanted)
            if (!result.ContainsKey(layer))
                throw new InternalFailureException($"pruning calibration: the engine never fed layer '{layer}'");
        return result;
    }

    /// <summary>
    /// Which wanted layer takes its statistics from which: attn_k/attn_v from attn_q and ffn_up from ffn_gate of the
    /// same block when both are wanted (the engine feeds them the same normalized hidden state).
    /// </summary>
    internal static Dictionary<string, string> SharedInputs(IEnumerable<string> engineLayers, IReadOnlySet<string> wanted)
    {
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var layer in engineLayers)
        {
            if (!wanted.Contains(layer)) continue;
            string? source = null;
            int dot = layer.LastIndexOf('.');
            if (dot > 0)
            {
                string prefix = layer[..(dot + 1)], kind = layer[(dot + 1)..];
                string[] group = kind is "attn_q" or "attn_k" or "attn_v" ? ["attn_q", "attn_k", "attn_v"]
                    : kind is "ffn_gate" or "ffn_up" ? ["ffn_gate", "ffn_up"] : [];
                source = group.Select(g => prefix + g).FirstOrDefault(wanted.Contains);
            }
            map[layer] = source ?? layer;
        }
        return map;
    }
}
