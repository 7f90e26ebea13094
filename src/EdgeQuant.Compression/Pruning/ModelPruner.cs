using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using EdgeQuant.Core.Errors;
using EdgeQuant.Core.Tensors;
using EdgeQuant.Models;

namespace EdgeQuant.Compression.Pruning;

/// <summary>What to prune in a model and how.</summary>
public sealed record PruneOptions
{
    public PruneMethod Method { get; init; } = PruneMethod.Magnitude;

    /// <summary>Fraction of each chosen tensor's weights set to zero, in [0, 1). Ignored with a <see cref="Pattern"/>.</summary>
    public double Sparsity { get; init; } = 0.5;

    /// <summary>N:M semi-structured sparsity instead of an unstructured fraction.</summary>
    public NmPattern? Pattern { get; init; }

    /// <summary>Magnitude only: one threshold over all chosen tensors together (the overall count is exact, each tensor's is not).</summary>
    public bool Global { get; init; }

    /// <summary>Tensors whose name matches this regular expression are left dense.</summary>
    public string? Exclude { get; init; }

    public CalibrationOptions Calibration { get; init; } = new();

    /// <summary>
    /// Wanda/SparseGPT: calibrate block by block, each block's statistics taken from the model whose earlier blocks are
    /// already pruned (the papers' sequential variant; one calibration pass per block), instead of all from the dense model.
    /// </summary>
    public bool Sequential { get; init; }

    public SparseGptOptions SparseGpt { get; init; } = new();
}

/// <summary>One pruned tensor: the zeros asked for and the zeros it now holds.</summary>
public sealed record TensorPruneResult(string Name, int Rows, int Columns, long Pruned, long Zeros)
{
    public long Elements => (long)Rows * Columns;

    /// <summary>Zeros / elements after pruning (weights that were already zero count too).</summary>
    public double Sparsity => (double)Zeros / Elements;
}

/// <summary>The pruned model (sharing the unpruned tensors' storage with the source) and per-tensor figures.</summary>
public sealed record ModelPruneResult(Model Model, IReadOnlyList<TensorPruneResult> Tensors, int CalibrationSamples, int CalibrationTokens)
{
    public long PrunedWeights => Tensors.Sum(t => t.Pruned);

    public long TargetElements => Tensors.Sum(t => t.Elements);
}

/// <summary>Progress: the stage ("calibrating", "pruning") and how far into it.</summary>
public readonly record struct PruneProgress(string Stage, int Done, int Total, string? Tensor = null);

/// <summary>
/// Prunes the linear weights of the transformer blocks (attn_q/k/v/qkv/output, ffn_gate/up/down) of a model; token
/// embeddings, norms and the output projection stay dense (they are small, shared or disproportionately sensitive).
/// Calibration statistics (Wanda, SparseGPT) are collected once from the dense model on the given tokens ("one-shot":
/// every layer sees the dense model's activations).
/// </summary>
public static class ModelPruner
{
    /// <summary>The tensors pruned unless excluded.</summary>
    public static readonly Regex DefaultTargets = new(@"^blk\.\d+\.(attn_q|attn_k|attn_v|attn_qkv|attn_output|ffn_gate|ffn_up|ffn_down)\.weight$",
        RegexOptions.CultureInvariant | RegexOptions.Compiled);

    /// <summary>The 2-D tensors the options choose, in model order; refuses a bad --exclude or an N:M pattern that does not fit.</summary>
    public static IReadOnlyList<ModelTensor> Targets(Model model, PruneOptions o)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(o);
        Regex? exclude = null;
        if (o.Exclude is { } re)
        {
            try { exclude = new Regex(re, RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1)); }
            catch (ArgumentException e) { throw new BadInputException($"--exclude: '{re}' is not a valid regular expression ({e.Message})"); }
        }
        var targets = model.Tensors.Where(t => DefaultTargets.IsMatch(t.Name) && t.Shape.Length == 2 && !(exclude?.IsMatch(t.Name) ?? false)).ToList();
        if (targets.Count == 0)
            throw new BadInputException($"{model.Provenance.SourcePath}: no tensor left to prune (attn_*/ffn_* block weights{(o.Exclude is null ? "" : $" not matching --exclude '{o.Exclude}'")})");
        foreach (var t in targets)
        {
            if (t.Shape[0] > int.MaxValue || t.Shape[1] > int.MaxValue || t.ElementCount > Array.MaxLength)
                throw new BadInputException($"{model.Provenance.SourcePath}: tensor '{t.Name}' [{t.Shape[0]}, {t.Shape[1]}] is too large to prune in memory");
            if (o.Pattern is { } p) WeightPruning.CheckPattern(p, (int)t.Shape[1], $"{model.Provenance.SourcePath}: tensor '{t.Name}'");
        }
        return targets;
    }

    /// <summary>Checks the options alone (before any model is loaded).</summary>
    public static void Validate(PruneOptions o)
    {
        ArgumentNullException.ThrowIfNull(o);
        if (o.Pattern is null) SparsityRule.Check(o.Sparsity);
        if (o.Global && (o.Method != PruneMethod.Magnitude || o.Pattern is not null))
            throw new BadInputException("--global applies to unstructured magnitude pruning only");
        if (o.Sequential && o.Method == PruneMethod.Magnitude)
            throw new BadInputException("--sequential applies to wanda and sparsegpt (magnitude uses no calibration)");
    }

    /// <param name="calibrationTokens">The tokenized calibration text; required for Wanda and SparseGPT.</param>
    /// <returns>A new model over the source's unpruned tensors: keep <paramref name="model"/> alive while it is used.</returns>
    public static ModelPruneResult Prune(Model model, IReadOnlyList<int>? calibrationTokens, PruneOptions o, IProgress<PruneProgress>? progress = null,
        CancellationToken ct = default)
    {
        Validate(o);
        if (o.Sequential) return PruneSequentially(model, calibrationTokens, o, progress, ct);
        var targets = Targets(model, o);
        IReadOnlyDictionary<string, LayerStatistics>? stats = null;
        int samples = 0;
        if (o.Method != PruneMethod.Magnitude)
        {
            if (calibrationTokens is null || calibrationTokens.Count == 0)
                throw new BadInputException($"--method {Name(o.Method)} needs calibration text (--calib FILE)");
            var calib = o.Calibration with { Hessian = o.Method == PruneMethod.SparseGpt };
            samples = PruningCalibration.SampleCount(calibrationTokens.Count, calib);
            var layers = targets.Select(t => LayerOf(t.Name)).ToList();
            if (calib.Hessian) CheckHessianMemory(model, targets, layers);
            stats = PruningCalibration.Collect(model, calibrationTokens, layers, calib,
                progress is null ? null : new Relay<CalibrationProgress>(p => progress.Report(new PruneProgress("calibrating", p.Sample, p.Samples))), ct);
        }

        var pruned = new Dictionary<string, (float[] W, TensorPruneResult R)>(StringComparer.Ordinal);
        if (o.Global)
        {
            var weights = targets.Select(t => t.ToFloat32()).ToList();
            var counts = GlobalMagnitude(weights, o.Sparsity);
            for (int i = 0; i < targets.Count; i++)
                pruned[targets[i].Name] = (weights[i], Result(targets[i], weights[i], counts[i]));
        }
        else
        {
            for (int i = 0; i < targets.Count; i++)
            {
                ct.ThrowIfCancellationRequested();
                var t = targets[i];
                progress?.Report(new PruneProgress("pruning", i, targets.Count, t.Name));
                var w = t.ToFloat32();
                int rows = (int)t.Shape[0], cols = (int)t.Shape[1];
                string what = $"{model.Provenance.SourcePath}: tensor '{t.Name}'";
                long n = o.Method switch
                {
                    PruneMethod.Magnitude => WeightPruning.Magnitude(w, rows, cols, o.Sparsity, o.Pattern, what),
                    PruneMethod.Wanda => WeightPruning.Wanda(w, rows, cols, Stats(stats!, t).ColumnNorms(), o.Sparsity, o.Pattern, what),
                    _ => SparseGpt(w, rows, cols, Stats(stats!, t), o, what),
                };
                pruned[t.Name] = (w, Result(t, w, n));
            }
        }
        progress?.Report(new PruneProgress("pruning", targets.Count, targets.Count));

        var tensors = model.Tensors.Select(t => pruned.TryGetValue(t.Name, out var p) ? AsF32(t, p.W) : t).ToList();
        var result = new Model(model.Config, tensors, model.Tokenizer, model.Provenance, model.Metadata);
        return new ModelPruneResult(result, targets.Select(t => pruned[t.Name].R).ToList(), samples, samples * o.Calibration.SequenceLength);
    }

    /// <summary>
    /// Block by block: block b's tensors are pruned with statistics collected on the model whose blocks &lt; b are already
    /// pruned (one calibration pass per block), so each block compensates for the errors of the ones before it.
    /// </summary>
    private static ModelPruneResult PruneSequentially(Model model, IReadOnlyList<int>? calibrationTokens, PruneOptions o,
        IProgress<PruneProgress>? progress, CancellationToken ct)
    {
        var targets = Targets(model, o);
        if (calibrationTokens is null || calibrationTokens.Count == 0)
            throw new BadInputException($"--method {Name(o.Method)} needs calibration text (--calib FILE)");
        var blocks = targets.GroupBy(t => BlockOf(t.Name)).OrderBy(g => g.Key).ToList();
        int samples = PruningCalibration.SampleCount(calibrationTokens.Count, o.Calibration);
        var current = model;
        var results = new List<TensorPruneResult>();
        int done = 0, total = targets.Count;
        for (int b = 0; b < blocks.Count; b++)
        {
            ct.ThrowIfCancellationRequested();
            var names = blocks[b].Select(t => Regex.Escape(t.Name)).ToList();
            // The block's own targets only: everything else is excluded (and already pruned when earlier).
            var step = o with { Sequential = false, Exclude = $"^(?!(?:{string.Join("|", names)})$)" };
            int block = b;
            var relay = progress is null ? null : new Relay<PruneProgress>(p => progress.Report(p.Stage == "calibrating"
                ? new PruneProgress("calibrating", block * samples + p.Done, blocks.Count * samples)
                : new PruneProgress("pruning", done + Math.Min(p.Done, blocks[block].Count()), total, p.Tensor)));
            var r = Prune(current, calibrationTokens, step, relay, ct);
            results.AddRange(r.Tensors);
            done += r.Tensors.Count;
            current = r.Model;
        }
        return new ModelPruneResult(current, targets.Select(t => results.First(r => r.Name == t.Name)).ToList(), samples, samples * o.Calibration.SequenceLength);
    }

    private static int BlockOf(string tensorName)
    {
        int dot = tensorName.IndexOf('.', 4);
        return int.Parse(tensorName.AsSpan(4, dot - 4), System.Globalization.CultureInfo.InvariantCulture);
    }

    public static string Name(PruneMethod m) => m switch
    {
        PruneMethod.Magnitude => "magnitude",
        PruneMethod.Wanda => "wanda",
        _ => "sparsegpt",
    };

    public static PruneMethod ParseMethod(string text) => text.ToLowerInvariant() switch
    {
        "magnitude" => PruneMethod.Magnitude,
        "wanda" => PruneMethod.Wanda,
        "sparsegpt" => PruneMethod.SparseGpt,
        _ => throw new BadInputException($"--method: '{text}' is not one of magnitude, wanda, sparsegpt"),
    };

    /// <summary>
    /// One magnitude threshold over several tensors: the round(s · total) smallest |W| of all of them together (ties:
    /// earlier tensor, then lower index). Returns the zeros set per tensor.
    /// </summary>
    public static long[] GlobalMagnitude(IReadOnlyList<float[]> weights, double sparsity)
    {
        SparsityRule.Check(sparsity);
        long total = weights.Sum(w => (long)w.Length);
        long k = SparsityRule.PrunedUpTo(sparsity, total);
        var counts = new long[weights.Count];
        if (k == 0) return counts;
        if (total > Array.MaxLength) throw new BadInputException($"global magnitude pruning over {total} weights exceeds one in-memory array; prune per layer");
        var all = new float[total];
        long at = 0;
        foreach (var w in weights)
        {
            for (int i = 0; i < w.Length; i++)
            {
                if (!float.IsFinite(w[i])) throw new BadInputException($"global magnitude pruning: non-finite weight ({w[i]})");
                all[at + i] = Math.Abs(w[i]);
            }
            at += w.Length;
        }
        Array.Sort(all);
        float t = all[k - 1];
        long below = 0;
        foreach (var w in weights) foreach (float v in w) if (Math.Abs(v) < t) below++;
        long ties = k - below;
        for (int n = 0; n < weights.Count; n++)
        {
            var w = weights[n];
            for (int i = 0; i < w.Length; i++)
            {
                float a = Math.Abs(w[i]);
                if (a < t || (a == t && ties-- > 0))
                {
                    w[i] = 0;
                    counts[n]++;
                }
            }
        }
        return counts;
    }

    /// <summary>
    /// One-shot SparseGPT keeps XᵀX (in² doubles) for every distinct layer input at once; refuse up front, with the
    /// figure, a model whose matrices would not fit in the memory the runtime may use, rather than failing mid-calibration.
    /// </summary>
    private static void CheckHessianMemory(Model model, IReadOnlyList<ModelTensor> targets, List<string> layers)
    {
        var sources = PruningCalibration.SharedInputs(layers, new HashSet<string>(layers, StringComparer.Ordinal));
        var columns = targets.ToDictionary(t => LayerOf(t.Name), t => t.Shape[1], StringComparer.Ordinal);
        long bytes = sources.Values.Distinct().Sum(l => columns[l] * columns[l] * sizeof(double));
        long available = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        if (available > 0 && bytes > available / 2)
            throw new BadInputException($"{model.Provenance.SourcePath}: SparseGPT's Hessians need {bytes / (1 << 20):N0} MiB at once, more than half of the {available / (1 << 20):N0} MiB available; prune fewer tensors per run (--exclude) or use wanda");
    }

    internal static string LayerOf(string tensorName) => tensorName[..^".weight".Length];

    private static LayerStatistics Stats(IReadOnlyDictionary<string, LayerStatistics> stats, ModelTensor t)
    {
        var s = stats.TryGetValue(LayerOf(t.Name), out var v) ? v
            : throw new InternalFailureException($"pruning: no calibration statistics for '{t.Name}'");
        if (s.Columns != t.Shape[1])
            throw new InternalFailureException($"pruning: '{t.Name}' has {t.Shape[1]} inputs but its calibration input had {s.Columns}");
        return s;
    }

    private static long SparseGpt(float[] w, int rows, int cols, LayerStatistics s, PruneOptions o, string what) =>
        WeightPruning.SparseGpt(w, rows, cols, s.Gram ?? throw new InternalFailureException($"{what}: no Hessian collected"), s.Rows,
            o.Sparsity, o.Pattern, o.SparseGpt, what);

    private static TensorPruneResult Result(ModelTensor t, float[] w, long pruned) =>
        new(t.Name, (int)t.Shape[0], (int)t.Shape[1], pruned, WeightPruning.CountZeros(w));

    private static ModelTensor AsF32(ModelTensor source, float[] w) => new()
    {
        Name = source.Name,
        Shape = (long[])source.Shape.Clone(),
        Type = TensorType.F32,
        SourceName = source.SourceName,
        Storage = new ArrayTensorStorage(MemoryMarshal.AsBytes(w.AsSpan()).ToArray()),
    };

    /// <summary>Reports on the calling thread (System.Progress would post to the thread pool).</summary>
    private sealed class Relay<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}
