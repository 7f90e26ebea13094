namespace EdgeQuant.Models.Engine;

/// <summary>How the next token is chosen from the logits.</summary>
/// <param name="Temperature">0 (default): greedy, the first highest logit (llama.cpp's greedy sampler). Above 0: sample from softmax(logits / T).</param>
/// <param name="Seed">Random seed for sampling; null picks one. Same seed, model and prompt give the same tokens.</param>
/// <param name="TopK">Keep only the K most likely tokens before sampling (0: all).</param>
/// <param name="TopP">Keep the smallest set of most likely tokens whose probability reaches P (1: all).</param>
public sealed record SamplingOptions(float Temperature = 0f, int? Seed = null, int TopK = 0, float TopP = 1f)
{
    public bool IsGreedy => Temperature == 0f;

    public void Validate()
    {
        if (!(Temperature >= 0f) || float.IsInfinity(Temperature))
            throw new Core.Errors.BadInputException($"--temp: {Temperature} must be a finite number >= 0");
        if (TopK < 0) throw new Core.Errors.BadInputException($"--top-k: {TopK} must be >= 0");
        if (!(TopP > 0f && TopP <= 1f)) throw new Core.Errors.BadInputException($"--top-p: {TopP} must be in (0, 1]");
    }
}

/// <summary>Picks tokens from logits according to <see cref="SamplingOptions"/>. Not thread-safe (it owns a random stream).</summary>
public sealed class TokenSampler
{
    private readonly SamplingOptions _options;
    private readonly Random _random;
    private int[] _order = [];
    private double[] _probs = [];

    public TokenSampler(SamplingOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
        _random = options.Seed is { } s ? new Random(s) : new Random();
    }

    public int Sample(ReadOnlySpan<float> logits)
    {
        if (logits.IsEmpty) throw new ArgumentException("no logits", nameof(logits));
        if (_options.IsGreedy) return ArgMax(logits);

        int n = logits.Length;
        if (_order.Length != n)
        {
            _order = new int[n];
            _probs = new double[n];
        }
        for (int i = 0; i < n; i++) _order[i] = i;
        var order = _order.AsSpan();
        // Sorting only matters when a cut-off is asked for; plain temperature sampling walks the vocabulary in order.
        bool cut = _options.TopK > 0 || _options.TopP < 1f;
        int kept = n;
        if (cut)
        {
            var keys = new float[n];
            for (int i = 0; i < n; i++) keys[i] = -logits[i];
            keys.AsSpan().Sort(order);
            if (_options.TopK > 0) kept = Math.Min(kept, _options.TopK);
        }

        float max = logits[order[0]];
        if (!cut) for (int i = 1; i < n; i++) max = Math.Max(max, logits[i]);
        double sum = 0;
        for (int i = 0; i < kept; i++) sum += _probs[i] = Math.Exp((logits[order[i]] - max) / _options.Temperature);

        if (_options.TopP < 1f)
        {
            double acc = 0;
            for (int i = 0; i < kept; i++)
            {
                acc += _probs[i] / sum;
                if (acc >= _options.TopP)
                {
                    kept = i + 1;
                    break;
                }
            }
            sum = 0;
            for (int i = 0; i < kept; i++) sum += _probs[i];
        }

        double r = _random.NextDouble() * sum;
        for (int i = 0; i < kept; i++)
        {
            r -= _probs[i];
            if (r < 0) return order[i];
        }
        return order[kept - 1];
    }

    /// <summary>Index of the first maximum (NaN never wins).</summary>
    public static int ArgMax(ReadOnlySpan<float> logits)
    {
        int best = 0;
        for (int i = 1; i < logits.Length; i++)
            if (logits[i] > logits[best] || float.IsNaN(logits[best])) best = i;
        return best;
    }
}
