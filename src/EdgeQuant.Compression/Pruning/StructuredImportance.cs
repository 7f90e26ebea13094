using EdgeQuant.Core.Errors;
using EdgeQuant.Models;
using EdgeQuant.Models.Engine;

namespace EdgeQuant.Compression.Pruning;

/// <summary>
/// Calibration-based importance of the units structured pruning removes, higher = more important.
/// <list type="bullet">
/// <item><see cref="Groups"/>[l][g]: KV group g of block l, Σ over the attn_output columns c of the group's query heads
/// of Σ_rows |W_o[r, c]| · ‖X_c‖₂ (Wanda's score summed over the unit; X = attn_output's input over the calibration tokens).</item>
/// <item><see cref="Channels"/>[l][j]: FFN channel j, Σ_rows |W_down[r, j]| · ‖X_j‖₂ with X = ffn_down's input.</item>
/// <item><see cref="Layers"/>[l]: block influence (Men et al. 2024, ShortGPT), the mean over tokens of
/// 1 − cos(x_in, x_out) of the residual stream around block l.</item>
/// </list>
/// </summary>
public sealed record StructuredImportance(double[][] Groups, double[][] Channels, double[] Layers, long Tokens, int Samples)
{
    /// <summary>
    /// Runs the calibration tokens through the reference engine (fixed-length sequences from an empty cache, as
    /// <see cref="PruningCalibration"/> does) and scores every unit.
    /// </summary>
    /// <remarks>
    /// The residual stream is not a hooked layer, but its normalized form is: attn_q's (attn_qkv's) input is
    /// attn_norm(x) = x / rms(x) ⊙ w, so dividing by the norm weight w gives x up to a positive scale, which cosine
    /// ignores. The last block's output is read the same way from the output projection's input (all logit rows are
    /// requested). GPT-2's LayerNorm also subtracts the mean (its bias is subtracted first): its scores use the centred residual.
    /// </remarks>
    public static StructuredImportance Collect(Model model, IReadOnlyList<int> tokens, CalibrationOptions o,
        IProgress<CalibrationProgress>? progress = null, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(tokens);
        ArgumentNullException.ThrowIfNull(o);
        var c = model.Config;
        if (o.SequenceLength < 2) throw new BadInputException($"--calib-seq-len: {o.SequenceLength} is too short (at least 2 tokens)");
        if (o.SequenceLength > c.ContextLength)
            throw new BadInputException($"--calib-seq-len: {o.SequenceLength} exceeds the model's context length {c.ContextLength}");
        if (o.Samples < 1) throw new BadInputException($"--calib-samples: {o.Samples} must be positive");
        if (o.Threads < 1) throw new BadInputException($"--threads: {o.Threads} must be positive");
        int samples = PruningCalibration.SampleCount(tokens.Count, o);
        if (samples < 1)
            throw new BadInputException($"the calibration text tokenizes to {tokens.Count} tokens, fewer than one sequence of --calib-seq-len {o.SequenceLength}");
        int? bos = o.Bos;
        if (bos is null && model.Tokenizer is not null)
        {
            var tok = Models.Tokenizers.Tokenizer.FromModel(model);
            bos = tok.AddBos ? tok.BosId : null;
        }

        var engine = ReferenceEngine.Load(model, new EngineOptions { Threads = o.Threads }, ct);
        var wanted = new HashSet<string>(StringComparer.Ordinal);
        for (int l = 0; l < c.BlockCount; l++)
        {
            wanted.Add($"blk.{l}.attn_output");
            wanted.Add($"blk.{l}.ffn_down");
        }
        var stats = new PruningStatisticsCollector(PruningCalibration.SharedInputs(engine.LinearLayers, wanted), hessian: false, o.Threads);
        var influence = new BlockInfluence(model);
        using (engine.AddHook(stats))
        using (engine.AddHook(influence))
        {
            var session = engine.CreateSession(o.SequenceLength);
            var seq = new int[o.SequenceLength];
            var rows = Enumerable.Range(0, o.SequenceLength).ToArray();
            var logits = new float[(long)o.SequenceLength * c.VocabSize];
            for (int s = 0; s < samples; s++)
            {
                ct.ThrowIfCancellationRequested();
                for (int i = 0; i < seq.Length; i++) seq[i] = tokens[s * seq.Length + i];
                if (bos is { } b) seq[0] = b;
                session.Reset();
                session.Decode(seq, rows, logits, ct);
                progress?.Report(new CalibrationProgress(s + 1, samples));
            }
        }
        var collected = stats.Result();

        var groups = new double[c.BlockCount][];
        var channels = new double[c.BlockCount][];
        for (int l = 0; l < c.BlockCount; l++)
        {
            int heads = c.HeadsIn(l), kv = c.KvHeadsIn(l), ratio = heads / kv, hd = c.HeadDim;
            var perColumn = WandaColumnScores(model.Get($"blk.{l}.attn_output.weight"), Stat(collected, $"blk.{l}.attn_output"));
            groups[l] = new double[kv];
            for (int g = 0; g < kv; g++)
                for (int col = g * ratio * hd; col < (g + 1) * ratio * hd; col++) groups[l][g] += perColumn[col];
            channels[l] = WandaColumnScores(model.Get($"blk.{l}.ffn_down.weight"), Stat(collected, $"blk.{l}.ffn_down"));
        }
        return new StructuredImportance(groups, channels, influence.Scores(), (long)samples * o.SequenceLength, samples);
    }

    private static LayerStatistics Stat(IReadOnlyDictionary<string, LayerStatistics> stats, string layer) =>
        stats.TryGetValue(layer, out var s) ? s : throw new InternalFailureException($"structured importance: the engine never fed '{layer}'");

    /// <summary>Σ_r |W[r, c]| · ‖X_c‖₂ per column c.</summary>
    internal static double[] WandaColumnScores(ModelTensor weight, LayerStatistics stats)
    {
        if (weight.Shape.Length != 2 || weight.Shape[1] != stats.Columns)
            throw new InternalFailureException($"structured importance: '{weight.Name}' [{string.Join(", ", weight.Shape)}] does not match its {stats.Columns} input columns");
        var w = weight.ToFloat32();
        int rows = (int)weight.Shape[0], cols = stats.Columns;
        var sum = new double[cols];
        for (int r = 0; r < rows; r++)
            for (int j = 0; j < cols; j++) sum[j] += Math.Abs(w[(long)r * cols + j]);
        var norms = stats.ColumnNorms();
        for (int j = 0; j < cols; j++) sum[j] *= norms[j];
        return sum;
    }

    /// <summary>
    /// Recovers each block's residual input from its first linear layer's (normalized) input and accumulates
    /// Σ_t (1 − cos(x_l, x_{l+1})) per block; hooks run in execution order, so block l+1's input (or the output
    /// projection's) arrives after block l's within a micro-batch.
    /// </summary>
    private sealed class BlockInfluence : ILinearInputHook
    {
        private readonly Dictionary<string, int> _entry = new(StringComparer.Ordinal);
        private readonly float[][] _scale;
        private readonly float[]?[] _shift;
        private readonly double[] _sum;
        private readonly long[] _count;
        private float[] _previous = [];
        private int _previousLayer = -1, _previousRows;

        public BlockInfluence(Model model)
        {
            var c = model.Config;
            int blocks = c.BlockCount;
            _scale = new float[blocks + 1][];
            _shift = new float[]?[blocks + 1];
            _sum = new double[blocks];
            _count = new long[blocks];
            for (int l = 0; l <= blocks; l++)
            {
                string norm = l < blocks ? $"blk.{l}.attn_norm" : "output_norm";
                _scale[l] = model.Get(norm + ".weight").ToFloat32();
                _shift[l] = model.Find(norm + ".bias")?.ToFloat32();
                if (l < blocks)
                {
                    _entry[$"blk.{l}.attn_q"] = l;
                    _entry[$"blk.{l}.attn_qkv"] = l;
                }
            }
            _entry["output"] = blocks;
        }

        public void OnInput(string layer, Span<float> input, int rows, int cols)
        {
            if (!_entry.TryGetValue(layer, out int l) || rows <= 0) return;
            var x = new float[rows * cols];
            var scale = _scale[l];
            var shift = _shift[l];
            for (int r = 0; r < rows; r++)
                for (int j = 0; j < cols; j++)
                {
                    float v = input[r * cols + j] - (shift?[j] ?? 0f);
                    // A zero norm weight erased that coordinate: it cannot be recovered, and leaving it out treats both sides alike.
                    x[r * cols + j] = scale[j] == 0 ? 0 : v / scale[j];
                }
            if (l > 0)
            {
                if (_previousLayer != l - 1 || _previousRows != rows)
                    throw new InternalFailureException($"structured importance: block {l}'s input came after block {_previousLayer}'s ({_previousRows} rows, now {rows}); all logit rows must be requested");
                for (int r = 0; r < rows; r++)
                {
                    var a = _previous.AsSpan(r * cols, cols);
                    var b = x.AsSpan(r * cols, cols);
                    double dot = 0, na = 0, nb = 0;
                    for (int j = 0; j < cols; j++)
                    {
                        dot += (double)a[j] * b[j];
                        na += (double)a[j] * a[j];
                        nb += (double)b[j] * b[j];
                    }
                    double cos = na > 0 && nb > 0 ? dot / Math.Sqrt(na * nb) : 1;
                    _sum[l - 1] += 1 - cos;
                    _count[l - 1]++;
                }
            }
            _previous = x;
            _previousLayer = l;
            _previousRows = rows;
        }

        public double[] Scores()
        {
            var s = new double[_sum.Length];
            for (int l = 0; l < s.Length; l++)
            {
                if (_count[l] == 0) throw new InternalFailureException($"structured importance: no residual-stream sample for block {l}");
                s[l] = _sum[l] / _count[l];
            }
            return s;
        }
    }
}
