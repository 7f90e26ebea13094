using System.Numerics.Tensors;
using EdgeQuant.Core.Errors;
using EdgeQuant.Models.Engine;

namespace EdgeQuant.Compression.Imatrix;

/// <summary>
/// Accumulates what llama-imatrix's <c>collect_imatrix</c> does for dense matrix products: for every weight whose
/// input it sees, per input column the sum of squared activations (float, row after row, in token order) and the
/// number of rows summed. Register it with <see cref="ReferenceEngine.AddHook"/>; <see cref="ImatrixRunner"/> drives
/// it with llama-imatrix's chunking.
/// </summary>
/// <remarks>
/// llama-imatrix keeps every product whose weight is named <c>blk.*</c> (attn_q/k/v, attn_qkv, attn_output,
/// ffn_gate/up/down) and, only with <c>--process-output</c>, the one named <c>output.weight</c>. attn_q/k/v (and
/// ffn_gate/up) share one input and so get identical sums, each under its own name, as in llama.cpp. The engine calls
/// the <c>output</c> hook for a tied output too; llama.cpp's tied output is the tensor <c>token_embd.weight</c>,
/// which it never collects, so <see cref="IncludeOutput"/> should be false for tied models.
/// </remarks>
public sealed class ImatrixCollector : ILinearInputHook
{
    private const string OutputLayer = "output";
    private readonly Dictionary<string, Accumulator> _byLayer = new(StringComparer.Ordinal);

    /// <param name="includeOutput">Collect the <c>output</c> layer (llama-imatrix's <c>--process-output</c>, untied output only).</param>
    public ImatrixCollector(bool includeOutput = false)
    {
        IncludeOutput = includeOutput;
    }

    public bool IncludeOutput { get; }

    /// <summary>
    /// While false, inputs are ignored. The runner turns collection off for the token ranges llama-imatrix does not see
    /// (micro-batches of fewer than 16 tokens, which its eval callback declines).
    /// </summary>
    public bool Enabled { get; set; } = true;

    /// <summary>Rows seen so far by the weight with the most rows (the tokens collected).</summary>
    public long MaxCount => _byLayer.Count == 0 ? 0 : _byLayer.Values.Max(a => a.Count);

    public void OnInput(string layer, Span<float> input, int rows, int cols)
    {
        if (!Enabled || rows <= 0) return;
        if (layer == OutputLayer ? !IncludeOutput : !layer.StartsWith("blk.", StringComparison.Ordinal)) return;
        if (!_byLayer.TryGetValue(layer, out var acc))
        {
            acc = new Accumulator(layer + ".weight", cols);
            _byLayer.Add(layer, acc);
        }
        else if (acc.Sums.Length != cols)
        {
            throw new InternalFailureException($"imatrix: layer '{layer}' had {acc.Sums.Length} input columns and now {cols}");
        }
        var sums = acc.Sums.AsSpan();
        var square = acc.Scratch.AsSpan();
        for (int r = 0; r < rows; r++)
        {
            // acc[j] += x[j] * x[j], rounded after the product and after the sum, rows in order: collect_imatrix's
            // float operations (no fused multiply-add: TensorPrimitives keeps the two roundings).
            var x = input.Slice(r * cols, cols);
            TensorPrimitives.Multiply(x, x, square);
            TensorPrimitives.Add(sums, square, sums);
        }
        acc.Count += rows;
        // llama-imatrix stops on non-finite sums ("non-finite values detected"), naming the tensor.
        if (!float.IsFinite(TensorPrimitives.Sum(sums)) && !AllFinite(sums))
            throw new BadInputException($"imatrix: non-finite activations reached '{acc.Name}' (after {acc.Count} rows); the model's weights or the text overflow F32");
    }

    private static bool AllFinite(ReadOnlySpan<float> values)
    {
        foreach (float v in values)
            if (!float.IsFinite(v)) return false;
        return true;
    }

    /// <summary>
    /// The collected sums as an importance matrix. <paramref name="chunkSize"/> is the tokens per chunk (llama-imatrix's
    /// n_ctx); the chunk count is, as llama-imatrix's last saved chunk, the largest row count divided by it.
    /// </summary>
    public ImportanceMatrix ToMatrix(IReadOnlyList<string> datasets, int chunkSize)
    {
        ArgumentNullException.ThrowIfNull(datasets);
        ArgumentOutOfRangeException.ThrowIfLessThan(chunkSize, 1);
        int chunkCount = (int)Math.Min(int.MaxValue, MaxCount / chunkSize);
        return ImportanceMatrix.FromSums(_byLayer.Values.Select(a => (a.Name, a.Sums, new[] { a.Count })), datasets, chunkCount, chunkSize);
    }

    private sealed class Accumulator(string name, int cols)
    {
        public string Name { get; } = name;
        public float[] Sums { get; } = new float[cols];
        public float[] Scratch { get; } = new float[cols];
        public long Count { get; set; }
    }
}
