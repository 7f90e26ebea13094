using System.Text.Json;
using EdgeQuant.Core.Errors;

namespace EdgeQuant.Runtimes.OnnxRuntime;

/// <summary>Overrides for what <see cref="OrtLogitsRunner"/> cannot read from the model.</summary>
public sealed class OrtLogitsRunnerOptions
{
    /// <summary>Context length; default: <c>model.context_length</c> of a <c>genai_config.json</c> beside the model, else unlimited.</summary>
    public int? ContextLength { get; init; }

    /// <summary>Vocabulary size; default: the fixed last dimension of <c>logits</c>, else <c>genai_config.json</c>'s <c>vocab_size</c>.</summary>
    public int? VocabSize { get; init; }

    public OrtSessionSettings? Session { get; init; }
}

/// <summary>
/// <see cref="ILogitsRunner"/> for ONNX language models run by ONNX Runtime, with the usual decoder signature:
/// <c>input_ids</c> (int64 or int32) and optionally <c>attention_mask</c> and <c>position_ids</c>, past KV inputs
/// <c>past_key_values.N.key|value</c> (or GPT-2's stacked <c>past_N</c>) producing <c>logits</c> and
/// <c>present.N.key|value</c> (<c>present_N</c>). Each call's present values are fed back as the next call's
/// past values without copying; a model without past inputs is re-run over the whole history instead.
/// </summary>
public sealed class OrtLogitsRunner : ILogitsRunner
{
    private readonly OrtSession _session;
    private readonly bool _ownsSession;
    private readonly OrtNodeInfo _ids;
    private readonly OrtNodeInfo? _mask;
    private readonly OrtNodeInfo? _positions;
    private readonly (OrtNodeInfo Past, string Present)[] _cache;
    private readonly string _logitsName;
    private readonly List<int> _history = [];
    private OrtRunResult? _lastResult;
    private int _cached;

    /// <summary>Wraps an open session. Throws <see cref="BadInputException"/> when the signature is not a decoder LM's.</summary>
    public OrtLogitsRunner(OrtSession session, OrtLogitsRunnerOptions? options = null, string? genaiConfigPath = null, bool ownsSession = false)
    {
        _session = session;
        _ownsSession = ownsSession;
        options ??= new OrtLogitsRunnerOptions();
        var inputs = session.Inputs.ToDictionary(i => i.Name);
        _ids = inputs.GetValueOrDefault("input_ids") ?? throw Bad("has no input_ids input");
        RequireIntegerIds(_ids);
        _mask = inputs.GetValueOrDefault("attention_mask");
        _positions = inputs.GetValueOrDefault("position_ids");
        if (_mask is not null) RequireIntegerIds(_mask);
        if (_positions is not null) RequireIntegerIds(_positions);

        var outputs = session.Outputs.ToDictionary(o => o.Name);
        var logits = outputs.GetValueOrDefault("logits") ?? throw Bad("has no logits output");
        _logitsName = logits.Name;
        if (logits.ElementType != OrtElementType.Float || logits.Shape.Count != 3)
            throw Bad($"logits is {logits}; float[batch, sequence, vocab] expected");

        var cache = new List<(OrtNodeInfo, string)>();
        foreach (var input in session.Inputs)
        {
            string? present = input.Name.StartsWith("past_key_values.", StringComparison.Ordinal) ? "present." + input.Name["past_key_values.".Length..]
                : input.Name.StartsWith("past_", StringComparison.Ordinal) ? "present_" + input.Name["past_".Length..]
                : null;
            if (present is null) continue;
            if (!outputs.ContainsKey(present)) throw Bad($"has cache input {input.Name} but no {present} output");
            if (input.Shape.Count < 3) throw Bad($"cache input {input} has rank {input.Shape.Count}; [.., past_sequence, head_size] expected");
            cache.Add((input, present));
        }
        _cache = cache.ToArray();
        var unknown = session.Inputs.Where(i => i != _ids && i != _mask && i != _positions && cache.All(c => c.Item1 != i)).ToList();
        if (unknown.Count > 0) throw Bad($"has inputs this runner cannot feed: {string.Join(", ", unknown)}");

        var config = ReadGenaiConfig(genaiConfigPath ?? (session.Source != "(bytes)" ? Path.Combine(Path.GetDirectoryName(session.Source)!, "genai_config.json") : null));
        VocabSize = options.VocabSize
            ?? (logits.Shape[2] > 0 ? checked((int)logits.Shape[2]) : config.VocabSize)
            ?? throw Bad("logits has no fixed vocabulary dimension; pass OrtLogitsRunnerOptions.VocabSize");
        ContextLength = options.ContextLength ?? config.ContextLength ?? int.MaxValue;
        Name = $"onnxruntime {OrtEnvironment.Version}";
    }

    /// <summary>Opens the model file and wraps it; the runner owns (and disposes) the session.</summary>
    public static OrtLogitsRunner Open(string modelPath, OrtLogitsRunnerOptions? options = null)
    {
        var session = OrtSession.FromFile(modelPath, options?.Session);
        try
        {
            return new OrtLogitsRunner(session, options, ownsSession: true);
        }
        catch
        {
            session.Dispose();
            throw;
        }
    }

    public string Name { get; }

    public int VocabSize { get; }

    public int ContextLength { get; }

    public TimeSpan LastRunTime { get; private set; }

    /// <summary>True when the model takes a KV cache (past inputs); otherwise each call re-runs the whole history.</summary>
    public bool HasKvCache => _cache.Length > 0;

    public void Evaluate(ReadOnlySpan<int> tokens, int startPos, ReadOnlySpan<int> outputPositions, Span<float> logits)
    {
        LogitsRunnerGuards.CheckEvaluate(this, _cached, tokens, startPos, outputPositions, logits);
        ReadOnlySpan<int> feed = tokens;
        int offset = 0; // index in the fed sequence of tokens[0]
        if (!HasKvCache)
        {
            _history.AddRange(tokens);
            feed = _history.ToArray();
            offset = _history.Count - tokens.Length;
        }
        int n = feed.Length;
        int pastLength = HasKvCache ? startPos : 0;
        int total = pastLength + n;

        var owned = new List<OrtValue>();
        var inputs = new List<KeyValuePair<string, OrtValue>>();
        OrtRunResult result;
        try
        {
            inputs.Add(KeyValuePair.Create(_ids.Name, Own(owned, IdTensor(_ids, feed, static (t, i) => t[i]))));
            if (_mask is not null) inputs.Add(KeyValuePair.Create(_mask.Name, Own(owned, IdTensor(_mask, new int[total], static (_, _) => 1))));
            if (_positions is not null)
                inputs.Add(KeyValuePair.Create(_positions.Name, Own(owned, IdTensor(_positions, new int[n], (_, i) => pastLength + i))));
            foreach (var (past, present) in _cache)
            {
                var value = _lastResult is { } last ? last[present] : Own(owned, OrtValue.Allocate(past.ElementType, EmptyCacheShape(past)));
                inputs.Add(KeyValuePair.Create(past.Name, value));
            }
            result = _session.Run(inputs);
        }
        finally
        {
            foreach (var v in owned) v.Dispose();
        }

        try
        {
            LastRunTime = result.Elapsed;
            var output = result[_logitsName];
            var shape = output.Shape;
            if (shape.Count != 3 || shape[0] != 1 || shape[2] != VocabSize || (shape[1] != n && shape[1] != 1))
                throw new InternalFailureException($"{_session.Source}: logits came back as [{string.Join(",", shape)}]; [1, {n}, {VocabSize}] expected");
            var all = output.GetTensorData<float>();
            for (int r = 0; r < outputPositions.Length; r++)
            {
                int row = offset + outputPositions[r];
                if (shape[1] == 1 && row != n - 1)
                    throw new InvalidOperationException($"{_session.Source} returns logits for the last position only; position {outputPositions[r]} was requested");
                int source = shape[1] == 1 ? 0 : row;
                all.Slice(source * VocabSize, VocabSize).CopyTo(logits.Slice(r * VocabSize, VocabSize));
            }
        }
        catch
        {
            result.Dispose();
            throw;
        }

        _lastResult?.Dispose();
        _lastResult = HasKvCache ? result : null;
        if (!HasKvCache) result.Dispose();
        _cached = startPos + tokens.Length;
    }

    public void Reset()
    {
        _lastResult?.Dispose();
        _lastResult = null;
        _history.Clear();
        _cached = 0;
    }

    public void Dispose()
    {
        Reset();
        if (_ownsSession) _session.Dispose();
    }

    private static OrtValue Own(List<OrtValue> owned, OrtValue value)
    {
        owned.Add(value);
        return value;
    }

    /// <summary>An [1, n] int32 or int64 tensor (as the input declares) filled by <paramref name="element"/>.</summary>
    private static OrtValue IdTensor(OrtNodeInfo input, ReadOnlySpan<int> source, Func<int[], int, int> element)
    {
        var src = source.ToArray();
        long[] shape = [1, src.Length];
        if (input.ElementType == OrtElementType.Int64)
        {
            var data = new long[src.Length];
            for (int i = 0; i < data.Length; i++) data[i] = element(src, i);
            return OrtValue.CreateTensor(data, shape);
        }
        var ints = new int[src.Length];
        for (int i = 0; i < ints.Length; i++) ints[i] = element(src, i);
        return OrtValue.CreateTensor(ints, shape);
    }

    /// <summary>The cache shape for zero past tokens: the past-sequence axis (second to last) is 0, other free axes (batch) 1.</summary>
    private static long[] EmptyCacheShape(OrtNodeInfo past)
    {
        var shape = past.Shape.ToArray();
        for (int i = 0; i < shape.Length; i++)
        {
            if (i == shape.Length - 2) shape[i] = 0;
            else if (shape[i] < 0) shape[i] = 1;
        }
        return shape;
    }

    private static void RequireIntegerIds(OrtNodeInfo input)
    {
        if (input.ElementType is not (OrtElementType.Int64 or OrtElementType.Int32) || input.Shape.Count != 2)
            throw new BadInputException($"ONNX LM input {input} is not an int32/int64 [batch, sequence] tensor");
    }

    private BadInputException Bad(string problem) => new($"{_session.Source}: not a decoder LM this runner can drive: the model {problem}");

    private static (int? VocabSize, int? ContextLength) ReadGenaiConfig(string? path)
    {
        if (path is null || !File.Exists(path)) return (null, null);
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(path));
            if (!doc.RootElement.TryGetProperty("model", out var model) || model.ValueKind != JsonValueKind.Object) return (null, null);
            int? Get(string name) => model.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i) && i > 0 ? i : null;
            return (Get("vocab_size"), Get("context_length"));
        }
        catch (JsonException e)
        {
            throw new FileFormatException(path, $"json line {e.LineNumber + 1}", null, e.Message, e);
        }
    }
}
