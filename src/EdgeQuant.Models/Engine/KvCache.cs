namespace EdgeQuant.Models.Engine;

/// <summary>
/// Keys and values of every block for up to <see cref="Capacity"/> positions, F32. Layout per block and KV head:
/// [position, head_dim] for both K and V, so one head's keys are one contiguous [T, head_dim] matrix (the B operand
/// of Q·Kᵀ in [N, K] row-major form) and appending a position writes head_dim contiguous floats per head. Each block
/// holds its own number of KV heads (a structurally pruned model's layers differ).
/// </summary>
internal sealed class KvCache
{
    private readonly float[][] _k;
    private readonly float[][] _v;

    /// <param name="kvHeads">KV heads of each block.</param>
    public KvCache(IReadOnlyList<int> kvHeads, int headDim, int capacity)
    {
        int blocks = kvHeads.Count;
        _k = new float[blocks][];
        _v = new float[blocks][];
        for (int l = 0; l < blocks; l++)
        {
            long per = (long)kvHeads[l] * capacity * headDim;
            if (per > Array.MaxLength) throw new ArgumentOutOfRangeException(nameof(capacity), capacity, "KV cache too large for one array per block");
            _k[l] = new float[per];
            _v[l] = new float[per];
            Bytes += 2 * per * sizeof(float);
        }
        HeadDim = headDim;
        Capacity = capacity;
    }

    public int HeadDim { get; }
    public int Capacity { get; }

    public long Bytes { get; }

    /// <summary>Keys of one head: [Capacity, HeadDim], the first (filled) positions valid.</summary>
    public Span<float> Keys(int block, int kvHead) => _k[block].AsSpan(kvHead * Capacity * HeadDim, Capacity * HeadDim);

    public Span<float> Values(int block, int kvHead) => _v[block].AsSpan(kvHead * Capacity * HeadDim, Capacity * HeadDim);

    public float[] KeyArray(int block) => _k[block];
    public float[] ValueArray(int block) => _v[block];
}
