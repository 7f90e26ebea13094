using EdgeQuant.Core.Errors;
using EdgeQuant.Models;
using EdgeQuant.Models.Engine;

namespace EdgeQuant.Compression.OnnxQuant;

/// <summary>
/// Static INT8 calibration: runs calibration sequences through the reference engine, histograms every linear layer's
/// input as it streams past (<see cref="ActivationHistogram"/>) and turns each histogram into a range with the chosen
/// <see cref="CalibrationMethod"/>.
/// </summary>
/// <remarks>
/// Every linear layer is calibrated except <c>output</c> (the LM head), which only with
/// <see cref="LayerSelection.IncludeLmHead"/>; <c>--exclude</c> is applied when quantizing, so one ranges file serves
/// several exclusion choices. Layers fed the same input (attn_q/k/v, ffn_gate/up) are histogrammed once and share the
/// result; GPT-2's fused attn_qkv is one hook already.
/// </remarks>
public static class ActivationCalibrator
{
    public static ActivationRanges Collect(Model model, IReadOnlyList<int[]> sequences, Int8StaticOptions options, int threads,
        IProgress<(int Done, int Total)>? progress, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        ActivationHistogram.CheckBins(options.EntropyBins);
        if (options.Method == CalibrationMethod.Percentile && !(options.Percentile > 0 && options.Percentile <= 100))
            throw new BadInputException($"--calib-percentile: {options.Percentile} must be in (0, 100]");

        var engine = CalibrationRun.LoadEngine(model, sequences, threads, cancellationToken);
        var wanted = engine.LinearLayers.Where(l => l != "output" || options.Layers.IncludeLmHead).ToHashSet(StringComparer.Ordinal);
        var sourceOf = Pruning.PruningCalibration.SharedInputs(engine.LinearLayers, wanted);
        var hook = new HistogramHook(sourceOf, options.EntropyBins, model.Provenance.SourcePath);
        long tokens = CalibrationRun.Run(engine, hook, sequences, needOutput: wanted.Contains("output"), progress, cancellationToken);

        int steps = options.SymmetricActivations ? 254 : 255;
        var ranges = new Dictionary<string, LayerRange>(StringComparer.Ordinal);
        var bySource = new Dictionary<string, LayerRange>(StringComparer.Ordinal);
        foreach (var (layer, source) in sourceOf)
        {
            if (!bySource.TryGetValue(source, out var r))
            {
                if (!hook.Histograms.TryGetValue(source, out var h) || h.Count == 0)
                    throw new InternalFailureException($"calibration: the engine never fed layer '{source}'");
                var (lo, hi) = h.Range(options.Method, options.SymmetricActivations, options.Percentile, steps);
                bySource[source] = r = new LayerRange(h.Min, h.Max, lo, hi, h.Count);
            }
            ranges[layer] = r;
        }
        return new ActivationRanges(options.Method, ranges)
        {
            ModelName = model.Provenance.Name,
            ModelFile = Path.GetFileName(Path.TrimEndingDirectorySeparator(model.Provenance.SourcePath)),
            Percentile = options.Method == CalibrationMethod.Percentile ? options.Percentile : null,
            Bins = options.Method == CalibrationMethod.Entropy ? options.EntropyBins : null,
            Symmetric = options.SymmetricActivations,
            Sequences = sequences.Count,
            Tokens = tokens,
        };
    }

    private sealed class HistogramHook(IReadOnlyDictionary<string, string> sourceOf, int bins, string source) : ILinearInputHook
    {
        public Dictionary<string, ActivationHistogram> Histograms { get; } = new(StringComparer.Ordinal);

        public void OnInput(string layer, Span<float> input, int rows, int cols)
        {
            if (rows <= 0 || !sourceOf.TryGetValue(layer, out var src) || src != layer) return;
            if (!Histograms.TryGetValue(layer, out var h)) Histograms.Add(layer, h = new ActivationHistogram(bins));
            if (!h.Add(input[..(rows * cols)]))
                throw new BadInputException($"{source}: calibration: non-finite activations reached '{layer}' (after {h.Count} values)");
        }
    }
}

/// <summary>Feeds calibration sequences through an engine, each from an empty KV cache.</summary>
internal static class CalibrationRun
{
    public static ReferenceEngine LoadEngine(Model model, IReadOnlyList<int[]> sequences, int threads, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(sequences);
        if (threads < 1) throw new BadInputException($"--threads: {threads} must be positive");
        if (sequences.Count == 0) throw new BadInputException("calibration: no calibration sequences");
        for (int i = 0; i < sequences.Count; i++)
        {
            if (sequences[i] is null || sequences[i].Length == 0) throw new BadInputException($"calibration: sequence {i} is empty");
            if (sequences[i].Length > model.Config.ContextLength)
                throw new BadInputException($"calibration: sequence {i} has {sequences[i].Length} tokens, more than the model's context length {model.Config.ContextLength}");
        }
        return ReferenceEngine.Load(model, new EngineOptions { Threads = threads }, ct);
    }

    /// <returns>Tokens evaluated.</returns>
    public static long Run(ReferenceEngine engine, ILinearInputHook hook, IReadOnlyList<int[]> sequences, bool needOutput,
        IProgress<(int Done, int Total)>? progress, CancellationToken ct)
    {
        using var registration = engine.AddHook(hook);
        int capacity = sequences.Max(s => s.Length);
        var session = engine.CreateSession(capacity);
        long tokens = 0;
        float[] logits = needOutput ? new float[(long)capacity * engine.VocabSize] : [];
        int[] all = needOutput ? Enumerable.Range(0, capacity).ToArray() : [];
        for (int s = 0; s < sequences.Count; s++)
        {
            ct.ThrowIfCancellationRequested();
            var seq = sequences[s];
            session.Reset();
            // The LM head's hook only sees rows whose logits are requested.
            session.Decode(seq, all.AsSpan(0, needOutput ? seq.Length : 0), logits, ct);
            tokens += seq.Length;
            progress?.Report((s + 1, sequences.Count));
        }
        return tokens;
    }
}
