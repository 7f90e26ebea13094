using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;
using EdgeQuant.Core.Errors;
using EdgeQuant.Core.Tensors;
using EdgeQuant.Models;
using EdgeQuant.Models.Engine;

namespace EdgeQuant.Compression.Pruning;

/// <summary>What <see cref="StructuredSensitivity.Measure"/> measures and how.</summary>
public sealed record SensitivityOptions
{
    /// <summary>Measure removing each whole layer.</summary>
    public bool Layers { get; init; } = true;

    /// <summary>Measure removing each KV-head group (skipped in layers with a single group: it can never be removed).</summary>
    public bool Heads { get; init; } = true;

    /// <summary>Measure removing each layer's lowest-importance FFN channels, one unit per fraction.</summary>
    public bool Channels { get; init; } = true;

    /// <summary>Fractions of each layer's FFN channels removed by its channel units (nested: the 50 % unit contains the 25 % one).</summary>
    public double[] ChannelFractions { get; init; } = [0.25, 0.5, 0.75];

    /// <summary>Worker threads: the (unit, sequence) evaluations run in parallel, one single-threaded engine session each.</summary>
    public int Threads { get; init; } = Environment.ProcessorCount;

    /// <summary>The dense reference keeps every position's probabilities (sequences × length × vocab floats); more is refused.</summary>
    public long MaxReferenceBytes { get; init; } = 2L << 30;

    /// <summary>Recorded in the report: the calibration set's hash.</summary>
    public string? CalibrationSha256 { get; init; }

    internal void Validate()
    {
        if (!Layers && !Heads && !Channels) throw new BadInputException("sensitivity: nothing to measure (layers, heads and channels all off)");
        if (Threads is < 1 or > 1024) throw new BadInputException($"--threads: {Threads} is outside 1..1024");
        if (ChannelFractions is null || (Channels && ChannelFractions.Length == 0)) throw new BadInputException("sensitivity: no channel fractions");
        foreach (var f in ChannelFractions)
            if (!(f > 0 && f < 1)) throw new BadInputException($"sensitivity: channel fraction {f} is outside (0, 1)");
    }
}

/// <summary>Progress of a sensitivity run: evaluations (one unit on one sequence) done of total.</summary>
public readonly record struct SensitivityProgress(string Stage, int Done, int Total);

/// <summary>
/// How much each structural unit of a model matters: for every whole layer, every KV-head group of every layer and
/// a few nested sets of each layer's least important FFN channels, the model with that unit alone removed is run on the
/// calibration sequences and compared with the dense model (mean KL(dense ‖ pruned) per position, and perplexity).
/// </summary>
/// <remarks>
/// <para>
/// No pruned model is built. Removing a head group or FFN channels removes their contribution to the residual stream,
/// which is what zeroing the matching inputs of attn_output (the group's query heads' attention outputs) or ffn_down
/// (the channels' activations) does; an engine hook (<see cref="ILinearInputHook"/>) zeroes them during the forward pass,
/// so one engine serves every unit. That is exactly the structurally pruned model: a zero input times any weight adds
/// exactly zero, and the pruned model's remaining products are the same products. A whole layer is both zeroed, which
/// equals skipping the block; when attn_output or ffn_down carry a bias (GPT-2), that layer is evaluated on a copy of
/// the model with those two biases zeroed as well.
/// </para>
/// <para>
/// The dense reference is computed once: per position the dense probabilities p (float) and Σ p·log p. KL(p ‖ q) is
/// then Σ p·log p − Σ p·log q with both sums taken by the same code, so a unit that changes nothing scores exactly 0.
/// KLD averages every position of every sequence; perplexity scores each position's next token (all but the last).
/// </para>
/// <para>
/// FFN channel importance: ‖X_j‖₂ · ‖W_down[:, j]‖₂, X_j the channel's activation (ffn_down's input column) over all
/// calibration tokens of the dense model: the Frobenius norm of the channel's whole contribution x_j·w_jᵀ.
/// </para>
/// </remarks>
public static class StructuredSensitivity
{
    public static SensitivityReport Measure(Model model, IReadOnlyList<int[]> sequences, SensitivityOptions? options = null,
        IProgress<SensitivityProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(sequences);
        var o = options ?? new SensitivityOptions();
        o.Validate();
        var watch = Stopwatch.StartNew();
        var c = model.Config;
        string src = model.Provenance.SourcePath;
        CheckSequences(model, sequences);
        int n = sequences.Count, len = sequences[0].Length, vocab = c.VocabSize;
        long referenceBytes = (long)n * len * vocab * sizeof(float);
        if (referenceBytes > o.MaxReferenceBytes)
            throw new BadInputException($"sensitivity: the dense reference ({n} sequences × {len} tokens × {vocab} vocabulary) needs {referenceBytes >> 20:N0} MiB, more than {o.MaxReferenceBytes >> 20:N0} MiB; use fewer or shorter calibration sequences");

        var engine = ReferenceEngine.Load(model, new EngineOptions { Threads = 1 }, cancellationToken);
        var hook = new RemovalHook(engine.LinearLayers, c);
        using var registration = engine.AddHook(hook);

        // Dense pass: reference probabilities and the FFN channels' activation norms, per sequence (summed in sequence
        // order afterwards, so the result does not depend on which thread ran which sequence).
        var reference = new DenseSequence[n];
        var channelSums = new double[n][][];
        RunParallel(n, o.Threads, cancellationToken, engine, len, (i, session) =>
        {
            var sums = new double[c.BlockCount][];
            for (int l = 0; l < sums.Length; l++) sums[l] = new double[c.FeedForwardIn(l)];
            hook.Begin(null, sums);
            try { reference[i] = DenseSequence.From(session.DecodeAll(sequences[i], cancellationToken), sequences[i], vocab); }
            finally { hook.End(); }
            channelSums[i] = sums;
        });
        progress?.Report(new SensitivityProgress("dense reference", n, n));
        double densePpl = Math.Exp(reference.Sum(r => r.Nll) / reference.Sum(r => (double)r.Scored));

        var channelOrder = ChannelOrder(model, channelSums);
        var units = Units(model, o, channelOrder);
        var klds = new double[units.Count, n];
        var nlls = new double[units.Count, n];

        // Units the hook alone removes share the one engine; a biased layer needs its own copy of the model.
        var shared = Enumerable.Range(0, units.Count).Where(u => !units[u].NeedsBiasCopy).ToList();
        int total = units.Count * n, done = 0;
        void Step()
        {
            int d = Interlocked.Increment(ref done);
            progress?.Report(new SensitivityProgress("units", d, total));
        }
        RunParallel(shared.Count * n, o.Threads, cancellationToken, engine, len, (item, session) =>
        {
            int u = shared[item / n], s = item % n;
            hook.Begin(units[u], null);
            try { (klds[u, s], nlls[u, s]) = reference[s].Compare(session.DecodeAll(sequences[s], cancellationToken)); }
            finally { hook.End(); }
            Step();
        });
        foreach (int u in Enumerable.Range(0, units.Count).Where(u => units[u].NeedsBiasCopy))
        {
            var copy = WithoutOutputBiases(model, units[u].Layer);
            var biasFree = ReferenceEngine.Load(copy, new EngineOptions { Threads = 1 }, cancellationToken);
            var copyHook = new RemovalHook(biasFree.LinearLayers, c);
            using var _ = biasFree.AddHook(copyHook);
            RunParallel(n, o.Threads, cancellationToken, biasFree, len, (s, session) =>
            {
                copyHook.Begin(units[u], null);
                try { (klds[u, s], nlls[u, s]) = reference[s].Compare(session.DecodeAll(sequences[s], cancellationToken)); }
                finally { copyHook.End(); }
                Step();
            });
        }

        long positions = (long)n * len, scored = reference.Sum(r => (long)r.Scored);
        var measured = new List<SensitivityUnit>();
        for (int u = 0; u < units.Count; u++)
        {
            double kld = 0, nll = 0;
            for (int s = 0; s < n; s++)
            {
                kld += klds[u, s];
                nll += nlls[u, s];
            }
            var spec = units[u];
            measured.Add(new SensitivityUnit
            {
                Rank = 0,
                Kind = spec.Kind,
                Layer = spec.Layer,
                Index = spec.Index,
                QueryHeads = spec.Kind == SensitivityUnitKind.Heads ? spec.QueryHeads : null,
                Channels = spec.Kind == SensitivityUnitKind.Channels ? spec.RemovedChannels!.Length : null,
                Params = spec.Params,
                Kld = kld / positions,
                Ppl = Math.Exp(nll / scored),
            });
        }

        return new SensitivityReport
        {
            Model = SensitivityReport.Describe(model),
            Calibration = new SensitivityCalibration(o.CalibrationSha256, n, len, positions),
            DensePpl = densePpl,
            ChannelFractions = (double[])o.ChannelFractions.Clone(),
            ChannelOrder = channelOrder,
            Units = SensitivityReport.RankUnits(measured),
            Seconds = Math.Round(watch.Elapsed.TotalSeconds, 3),
        };
    }

    /// <summary>Channel counts of the levels of a layer with <paramref name="ffn"/> channels: round(f·ffn) clamped to 1..ffn−1, distinct, ascending.</summary>
    public static int[] ChannelLevels(IReadOnlyList<double> fractions, int ffn) =>
        ffn < 2 ? [] : fractions.Select(f => (int)Math.Clamp(Math.Round(f * ffn, MidpointRounding.AwayFromZero), 1, ffn - 1)).Distinct().Order().ToArray();

    private static void CheckSequences(Model model, IReadOnlyList<int[]> sequences)
    {
        if (sequences.Count == 0) throw new BadInputException("sensitivity: no calibration sequences");
        int len = sequences[0]?.Length ?? 0;
        if (len < 2) throw new BadInputException($"sensitivity: calibration sequences of {len} tokens are too short (at least 2)");
        if (len > model.Config.ContextLength)
            throw new BadInputException($"sensitivity: calibration sequences of {len} tokens exceed the model's context length {model.Config.ContextLength}");
        for (int s = 0; s < sequences.Count; s++)
        {
            var seq = sequences[s];
            if (seq is null || seq.Length != len) throw new BadInputException($"sensitivity: calibration sequence {s} has {seq?.Length ?? 0} tokens, the first {len}");
            foreach (int t in seq)
                if (t < 0 || t >= model.Config.VocabSize) throw new BadInputException($"sensitivity: calibration sequence {s} holds token {t}, outside the vocabulary 0..{model.Config.VocabSize - 1}");
        }
    }

    /// <summary>Per layer, channels from least to most important; ties keep the lower index first.</summary>
    private static int[][] ChannelOrder(Model model, double[][][] perSequence)
    {
        var c = model.Config;
        var order = new int[c.BlockCount][];
        for (int l = 0; l < c.BlockCount; l++)
        {
            int ff = c.FeedForwardIn(l);
            var act = new double[ff];
            foreach (var seq in perSequence)
                for (int j = 0; j < ff; j++) act[j] += seq[l][j];
            var down = Tensor(model, $"blk.{l}.ffn_down.weight", c.EmbeddingLength, ff);
            var colNorm = new double[ff];
            for (int r = 0; r < c.EmbeddingLength; r++)
                for (int j = 0; j < ff; j++) colNorm[j] += (double)down[(long)r * ff + j] * down[(long)r * ff + j];
            var score = new double[ff];
            for (int j = 0; j < ff; j++) score[j] = Math.Sqrt(act[j]) * Math.Sqrt(colNorm[j]);
            order[l] = Enumerable.Range(0, ff).OrderBy(j => score[j]).ThenBy(j => j).ToArray();
        }
        return order;
    }

    private static float[] Tensor(Model model, string name, long rows, long cols)
    {
        var t = model.Get(name);
        if (t.Shape.Length != 2 || t.Shape[0] != rows || t.Shape[1] != cols)
            throw new BadInputException($"{model.Provenance.SourcePath}: tensor '{name}' has shape [{string.Join(", ", t.Shape)}], expected [{rows}, {cols}]");
        return t.ToFloat32();
    }

    private static List<UnitSpec> Units(Model model, SensitivityOptions o, int[][] channelOrder)
    {
        var c = model.Config;
        var units = new List<UnitSpec>();
        for (int l = 0; l < c.BlockCount; l++)
        {
            if (o.Layers)
            {
                bool biased = model.Find($"blk.{l}.attn_output.bias") is not null || model.Find($"blk.{l}.ffn_down.bias") is not null;
                units.Add(new UnitSpec(SensitivityUnitKind.Layer, l, 0, StructuredParameters.Layer(model, l))
                {
                    AllHeads = true,
                    RemovedChannels = Enumerable.Range(0, c.FeedForwardIn(l)).ToArray(),
                    NeedsBiasCopy = biased,
                });
            }
            int kv = c.KvHeadsIn(l), heads = c.HeadsIn(l);
            if (o.Heads && kv > 1)
            {
                int r = heads / kv;
                for (int g = 0; g < kv; g++)
                    units.Add(new UnitSpec(SensitivityUnitKind.Heads, l, g, StructuredParameters.KvGroup(model, l))
                    {
                        QueryHeads = Enumerable.Range(g * r, r).ToArray(),
                    });
            }
            if (o.Channels)
            {
                var levels = ChannelLevels(o.ChannelFractions, c.FeedForwardIn(l));
                for (int k = 0; k < levels.Length; k++)
                    units.Add(new UnitSpec(SensitivityUnitKind.Channels, l, k, StructuredParameters.Channels(model, l) * levels[k])
                    {
                        RemovedChannels = channelOrder[l][..levels[k]],
                    });
            }
        }
        return units;
    }

    /// <summary>A copy of <paramref name="model"/> whose layer's attn_output and ffn_down biases are zero (other tensors shared).</summary>
    private static Model WithoutOutputBiases(Model model, int layer)
    {
        var zeroed = new HashSet<string>([$"blk.{layer}.attn_output.bias", $"blk.{layer}.ffn_down.bias"], StringComparer.Ordinal);
        var tensors = model.Tensors.Select(t => !zeroed.Contains(t.Name) ? t : new ModelTensor
        {
            Name = t.Name,
            Shape = (long[])t.Shape.Clone(),
            Type = TensorType.F32,
            SourceName = t.SourceName,
            Storage = new ArrayTensorStorage(new byte[checked(t.ElementCount * sizeof(float))]),
        }).ToList();
        return new Model(model.Config, tensors, model.Tokenizer, model.Provenance, model.Metadata);
    }

    /// <summary>
    /// Runs <paramref name="count"/> items on up to <paramref name="threads"/> workers, each with its own session of
    /// <paramref name="engine"/> (sessions are not thread-safe; the engine's weights are shared read-only).
    /// </summary>
    private static void RunParallel(int count, int threads, CancellationToken ct, ReferenceEngine engine, int capacity, Action<int, EngineSession> body)
    {
        var sessions = new ConcurrentBag<EngineSession>();
        try
        {
            Parallel.For(0, count, new ParallelOptions { MaxDegreeOfParallelism = threads, CancellationToken = ct }, i =>
            {
                if (!sessions.TryTake(out var session)) session = engine.CreateSession(capacity);
                try
                {
                    session.Reset();
                    body(i, session);
                }
                finally { sessions.Add(session); }
            });
        }
        catch (AggregateException e) when (e.InnerExceptions.Count > 0)
        {
            var first = e.InnerExceptions.FirstOrDefault(x => x is not OperationCanceledException) ?? e.InnerExceptions[0];
            ExceptionDispatchInfo.Capture(first).Throw();
        }
    }

    /// <summary>One unit as the hook applies it.</summary>
    internal sealed record UnitSpec(SensitivityUnitKind Kind, int Layer, int Index, long Params)
    {
        public bool AllHeads { get; init; }
        public int[]? QueryHeads { get; init; }
        public int[]? RemovedChannels { get; init; }
        public bool NeedsBiasCopy { get; init; }
    }

    /// <summary>
    /// Zeroes the current thread's unit: its query heads' columns of attn_output's input and its channels' columns of
    /// ffn_down's input. The engine calls hooks on the thread that called Decode, so a thread-local unit lets parallel
    /// sessions evaluate different units on one engine. Also sums squares of ffn_down's input when asked (dense pass).
    /// </summary>
    private sealed class RemovalHook : ILinearInputHook
    {
        private readonly Dictionary<string, (int Layer, bool Attention)> _layers = new(StringComparer.Ordinal);
        private readonly ModelConfig _config;
        private readonly ThreadLocal<(UnitSpec? Unit, double[][]? Sums)> _current = new();

        public RemovalHook(IEnumerable<string> engineLayers, ModelConfig config)
        {
            _config = config;
            foreach (var name in engineLayers)
            {
                if (!name.StartsWith("blk.", StringComparison.Ordinal)) continue;
                int dot = name.IndexOf('.', 4);
                if (dot < 0 || !int.TryParse(name.AsSpan(4, dot - 4), out int l)) continue;
                string kind = name[(dot + 1)..];
                if (kind == "attn_output") _layers[name] = (l, true);
                else if (kind == "ffn_down") _layers[name] = (l, false);
            }
        }

        public void Begin(UnitSpec? unit, double[][]? sums) => _current.Value = (unit, sums);

        public void End() => _current.Value = default;

        public void OnInput(string layer, Span<float> input, int rows, int cols)
        {
            var (unit, sums) = _current.Value;
            if ((unit is null && sums is null) || !_layers.TryGetValue(layer, out var at)) return;
            if (sums is not null && !at.Attention)
            {
                var s = sums[at.Layer];
                if (s.Length != cols) throw new InternalFailureException($"sensitivity: '{layer}' has {cols} inputs, the config {s.Length}");
                for (int r = 0; r < rows; r++)
                {
                    var row = input.Slice(r * cols, cols);
                    for (int j = 0; j < cols; j++) s[j] += (double)row[j] * row[j];
                }
            }
            if (unit is null || unit.Layer != at.Layer) return;
            if (at.Attention)
            {
                if (unit.AllHeads)
                {
                    input[..(rows * cols)].Clear();
                    return;
                }
                if (unit.QueryHeads is not { } heads) return;
                int hd = _config.HeadDim;
                if (cols != _config.HeadsIn(at.Layer) * hd)
                    throw new InternalFailureException($"sensitivity: '{layer}' has {cols} inputs, not {_config.HeadsIn(at.Layer)} heads × {hd}");
                for (int r = 0; r < rows; r++)
                    foreach (int h in heads) input.Slice(r * cols + h * hd, hd).Clear();
            }
            else if (unit.RemovedChannels is { } channels)
            {
                for (int r = 0; r < rows; r++)
                {
                    var row = input.Slice(r * cols, cols);
                    foreach (int j in channels) row[j] = 0;
                }
            }
        }
    }

    /// <summary>The dense model's distribution at every position of one sequence.</summary>
    private sealed class DenseSequence
    {
        private float[] _p = [];
        private double[] _plogp = [];
        private int[] _tokens = [];
        private int _vocab;

        /// <summary>Σ over scored positions of −log p(next token).</summary>
        public double Nll { get; private set; }

        public int Scored => _tokens.Length - 1;

        public static DenseSequence From(float[] logits, int[] tokens, int vocab)
        {
            int len = tokens.Length;
            var d = new DenseSequence { _p = new float[(long)len * vocab], _plogp = new double[len], _tokens = tokens, _vocab = vocab };
            for (int t = 0; t < len; t++)
            {
                var row = logits.AsSpan(t * vocab, vocab);
                double lse = LogSumExp(row);
                var p = d._p.AsSpan(t * vocab, vocab);
                for (int i = 0; i < vocab; i++) p[i] = (float)Math.Exp(row[i] - lse);
                d._plogp[t] = Cross(p, row, lse);
                if (t + 1 < len) d.Nll += lse - row[tokens[t + 1]];
            }
            return d;
        }

        /// <summary>Σ over positions of KL(dense ‖ candidate), and Σ over scored positions of the candidate's NLL.</summary>
        public (double Kld, double Nll) Compare(float[] logits)
        {
            double kld = 0, nll = 0;
            for (int t = 0; t < _tokens.Length; t++)
            {
                var row = logits.AsSpan(t * _vocab, _vocab);
                double lse = LogSumExp(row);
                kld += _plogp[t] - Cross(_p.AsSpan(t * _vocab, _vocab), row, lse);
                if (t + 1 < _tokens.Length) nll += lse - row[_tokens[t + 1]];
            }
            if (!double.IsFinite(kld) || !double.IsFinite(nll)) throw new BadInputException("sensitivity: a pruned model's logits are not finite");
            return (kld, nll);
        }

        /// <summary>Σ p_i · log q_i with log q_i = l_i − lse: the one routine for both sides of the KLD.</summary>
        private static double Cross(ReadOnlySpan<float> p, ReadOnlySpan<float> logits, double lse)
        {
            double s = 0;
            for (int i = 0; i < p.Length; i++) s += p[i] * (logits[i] - lse);
            return s;
        }

        private static double LogSumExp(ReadOnlySpan<float> row)
        {
            float max = float.NegativeInfinity;
            foreach (float v in row) max = Math.Max(max, v);
            if (!float.IsFinite(max)) throw new BadInputException("sensitivity: the model's logits are not finite");
            double s = 0;
            foreach (float v in row) s += Math.Exp(v - max);
            return max + Math.Log(s);
        }
    }
}

/// <summary>Parameters a structural unit holds, counted from the model's tensor shapes (weights and biases).</summary>
public static class StructuredParameters
{
    /// <summary>Every tensor of block <paramref name="layer"/> (<c>blk.N.*</c>).</summary>
    public static long Layer(Model model, int layer)
    {
        string prefix = $"blk.{layer}.";
        return model.Tensors.Where(t => t.Name.StartsWith(prefix, StringComparison.Ordinal)).Sum(t => t.ElementCount);
    }

    /// <summary>
    /// One KV-head group: its query heads' rows of attn_q, its key and value heads' rows of attn_k/attn_v (or of the fused
    /// attn_qkv), their biases, and the query heads' columns of attn_output.
    /// </summary>
    public static long KvGroup(Model model, int layer)
    {
        var c = model.Config;
        int hd = c.HeadDim, r = c.HeadsIn(layer) / c.KvHeadsIn(layer), d = c.EmbeddingLength;
        string p = $"blk.{layer}.";
        long rowsQ = (long)r * hd, rowsKv = hd;
        long n = (long)d * r * hd; // attn_output columns
        long Rows(string name, long rows) => model.Find(p + name + ".weight") is null ? 0 : rows * d + (model.Find(p + name + ".bias") is null ? 0 : rows);
        if (model.Find(p + "attn_qkv.weight") is not null) n += Rows("attn_qkv", rowsQ + 2 * rowsKv);
        else n += Rows("attn_q", rowsQ) + Rows("attn_k", rowsKv) + Rows("attn_v", rowsKv);
        return n;
    }

    /// <summary>One FFN channel: a row of ffn_gate and ffn_up (and their biases) and a column of ffn_down.</summary>
    public static long Channels(Model model, int layer)
    {
        int d = model.Config.EmbeddingLength;
        string p = $"blk.{layer}.";
        long n = model.Find(p + "ffn_down.weight") is null ? 0 : d;
        foreach (var name in new[] { "ffn_gate", "ffn_up" })
            if (model.Find(p + name + ".weight") is not null) n += d + (model.Find(p + name + ".bias") is null ? 0 : 1);
        return n;
    }
}
