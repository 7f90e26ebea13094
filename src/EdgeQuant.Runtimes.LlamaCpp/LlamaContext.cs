using System.Diagnostics;
using EdgeQuant.Core.Errors;
using EdgeQuant.Runtimes.LlamaCpp.Native;

namespace EdgeQuant.Runtimes.LlamaCpp;

/// <summary>How to create a context. Null members keep llama.cpp's defaults.</summary>
public sealed record LlamaContextOptions
{
    /// <summary>Context length in tokens (<c>n_ctx</c>); null: the model's training length.</summary>
    public int? ContextSize { get; init; }

    /// <summary>Most tokens per <see cref="LlamaContext.Decode"/> call (<c>n_batch</c>); null: the context size.</summary>
    public int? BatchSize { get; init; }

    /// <summary>Physical micro-batch (<c>n_ubatch</c>); null: the batch size.</summary>
    public int? MicroBatchSize { get; init; }

    /// <summary>Threads for single-token and batch decoding; null: llama.cpp's default.</summary>
    public int? Threads { get; init; }

    /// <summary>KV cache element type (<c>type_k</c>/<c>type_v</c>); llama.cpp's default is F16.</summary>
    public GgmlType? KvCacheType { get; init; }

    /// <summary>Flash attention; llama.cpp's default is Auto.</summary>
    public LlamaFlashAttnType? FlashAttention { get; init; }

    /// <summary>Everything in F32 (F32 KV cache, flash attention off): the setting that reproduces a scalar reference.</summary>
    public static LlamaContextOptions FullPrecision(int contextSize, int? threads = null) => new()
    {
        ContextSize = contextSize,
        Threads = threads,
        KvCacheType = GgmlType.F32,
        FlashAttention = LlamaFlashAttnType.Disabled,
    };
}

/// <summary>
/// A llama.cpp inference context on one sequence (seq id 0): decode token batches at explicit positions and read the
/// logits of the positions asked for. Not thread-safe.
/// </summary>
public sealed unsafe class LlamaContext : IDisposable
{
    private readonly LlamaContextHandle _handle;
    private readonly int[] _pos;
    private readonly int[] _nSeqId;
    private readonly int[] _seqIdStorage;
    private readonly nint[] _seqIdPointers;
    private readonly sbyte[] _outputs;

    private LlamaContext(LlamaContextHandle handle, LlamaModel model)
    {
        _handle = handle;
        Model = model;
        var c = handle.DangerousGetHandle();
        ContextSize = checked((int)LlamaNative.llama_n_ctx(c));
        BatchSize = checked((int)LlamaNative.llama_n_batch(c));
        MicroBatchSize = checked((int)LlamaNative.llama_n_ubatch(c));
        Threads = LlamaNative.llama_n_threads(c);
        BatchThreads = LlamaNative.llama_n_threads_batch(c);
        VocabSize = model.VocabSize;

        // The batch's arrays live on the pinned object heap for the context's lifetime, so a decode allocates nothing.
        _pos = GC.AllocateArray<int>(BatchSize, pinned: true);
        _nSeqId = GC.AllocateArray<int>(BatchSize, pinned: true);
        _seqIdStorage = GC.AllocateArray<int>(BatchSize, pinned: true);
        _seqIdPointers = GC.AllocateArray<nint>(BatchSize, pinned: true);
        _outputs = GC.AllocateArray<sbyte>(BatchSize, pinned: true);
        fixed (int* s = _seqIdStorage)
        {
            for (int i = 0; i < BatchSize; i++)
            {
                _nSeqId[i] = 1;
                _seqIdPointers[i] = (nint)(s + i);
            }
        }
    }

    public LlamaModel Model { get; }
    public int ContextSize { get; }
    public int BatchSize { get; }
    public int MicroBatchSize { get; }
    public int Threads { get; }
    public int BatchThreads { get; }
    public int VocabSize { get; }

    /// <summary>Wall time of the last <see cref="Decode"/> (the native call, synchronized).</summary>
    public TimeSpan LastDecodeTime { get; private set; }

    internal static LlamaContext Create(LlamaModel model, LlamaContextOptions o)
    {
        var p = LlamaNative.llama_context_default_params();
        if (o.ContextSize is { } n) p.n_ctx = Positive(n, nameof(o.ContextSize));
        uint ctx = p.n_ctx == 0 ? (uint)model.ContextLengthTrain : p.n_ctx;
        p.n_batch = o.BatchSize is { } b ? Positive(b, nameof(o.BatchSize)) : ctx;
        p.n_ubatch = o.MicroBatchSize is { } u ? Positive(u, nameof(o.MicroBatchSize)) : p.n_batch;
        if (o.Threads is { } t)
        {
            p.n_threads = (int)Positive(t, nameof(o.Threads));
            p.n_threads_batch = p.n_threads;
        }
        if (o.KvCacheType is { } kv) p.type_k = p.type_v = kv;
        if (o.FlashAttention is { } fa) p.flash_attn_type = fa;
        p.n_seq_max = 1;

        LlamaLog.ClearHistory();
        var handle = LlamaContextHandle.Create(model.Handle, p)
            ?? throw new BadInputException($"{model.Path}: llama.cpp could not create a context (n_ctx {p.n_ctx}, n_batch {p.n_batch}){LlamaModel.Reason()}");
        try
        {
            return new LlamaContext(handle, model);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>Empties the KV cache (and its data), so the next decode starts a fresh sequence at position 0.</summary>
    public void ClearMemory()
    {
        using var lease = new HandleLease(_handle);
        LlamaNative.llama_memory_clear(LlamaNative.llama_get_memory(lease.Pointer), true);
    }

    /// <summary>
    /// Decodes <paramref name="tokens"/> (at most <see cref="BatchSize"/>) at positions <paramref name="startPos"/>..,
    /// computing logits only for the batch indices in <paramref name="outputIndices"/> (ascending). Read them with
    /// <see cref="GetLogits"/> until the next decode.
    /// </summary>
    public void Decode(ReadOnlySpan<int> tokens, int startPos, ReadOnlySpan<int> outputIndices)
    {
        if (tokens.IsEmpty || tokens.Length > BatchSize)
            throw new ArgumentException($"a batch holds 1..{BatchSize} tokens, not {tokens.Length}", nameof(tokens));
        if (startPos < 0 || (long)startPos + tokens.Length > ContextSize)
            throw new ArgumentException($"positions {startPos}..{startPos + tokens.Length - 1} do not fit the context of {ContextSize}", nameof(startPos));
        Array.Clear(_outputs, 0, tokens.Length);
        foreach (var i in outputIndices)
        {
            if ((uint)i >= (uint)tokens.Length) throw new ArgumentOutOfRangeException(nameof(outputIndices), i, $"outside the batch 0..{tokens.Length - 1}");
            _outputs[i] = 1;
        }
        for (int i = 0; i < tokens.Length; i++)
        {
            if ((uint)tokens[i] >= (uint)VocabSize) throw new ArgumentOutOfRangeException(nameof(tokens), tokens[i], $"token id outside the vocabulary (0..{VocabSize - 1})");
            _pos[i] = startPos + i;
        }

        using var lease = new HandleLease(_handle);
        int rc;
        var sw = Stopwatch.StartNew();
        fixed (int* tok = tokens)
        fixed (int* pos = _pos)
        fixed (int* nSeq = _nSeqId)
        fixed (nint* seq = _seqIdPointers)
        fixed (sbyte* outs = _outputs)
        {
            var batch = new llama_batch
            {
                n_tokens = tokens.Length,
                token = tok,
                embd = null,
                pos = pos,
                n_seq_id = nSeq,
                seq_id = (int**)seq,
                logits = outs,
            };
            rc = LlamaNative.llama_decode(lease.Pointer, batch);
            LlamaNative.llama_synchronize(lease.Pointer);
        }
        LastDecodeTime = sw.Elapsed;
        if (rc != 0)
            throw new InternalFailureException($"llama_decode returned {rc} ({DecodeError(rc)}) for {tokens.Length} tokens at position {startPos}{LlamaModel.Reason()}");
    }

    /// <summary>Logits (length <see cref="VocabSize"/>) of batch index <paramref name="batchIndex"/> of the last decode; valid until the next one.</summary>
    public ReadOnlySpan<float> GetLogits(int batchIndex)
    {
        using var lease = new HandleLease(_handle);
        var p = LlamaNative.llama_get_logits_ith(lease.Pointer, batchIndex);
        if (p is null) throw new ArgumentException($"batch index {batchIndex} produced no logits in the last decode", nameof(batchIndex));
        return new ReadOnlySpan<float>(p, VocabSize);
    }

    /// <summary>llama.cpp's own timing counters for this context.</summary>
    public llama_perf_context_data PerfData()
    {
        using var lease = new HandleLease(_handle);
        return LlamaNative.llama_perf_context(lease.Pointer);
    }

    public void Dispose() => _handle.Dispose();

    private static uint Positive(int value, string name) =>
        value > 0 ? (uint)value : throw new BadInputException($"{name} must be positive, not {value}");

    private static string DecodeError(int rc) => rc switch
    {
        1 => "no KV slot for the batch",
        2 => "aborted",
        -1 => "invalid input batch",
        _ => "fatal error",
    };
}
