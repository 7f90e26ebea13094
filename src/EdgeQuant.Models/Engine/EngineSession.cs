using System.Numerics.Tensors;
using EdgeQuant.Core.Errors;
using EdgeQuant.Core.Kernels;
using EdgeQuant.Core.Quantization;

namespace EdgeQuant.Models.Engine;

/// <summary>
/// One evaluation stream: a KV cache of <see cref="Capacity"/> positions plus activation buffers for one micro-batch.
/// <see cref="Decode"/> appends tokens after the <see cref="Length"/> already cached, so a whole chunk at once
/// (batched full-sequence evaluation) and one token at a time (incremental decoding) are the same call.
/// Not thread-safe: one call at a time. Memory: KV cache (each layer's own KV heads) + ≈ MaxBatch × (4·n_embd + 2·n_ff +
/// 3·q_dim) floats, n_ff and q_dim of the widest layer.
/// </summary>
public sealed class EngineSession
{
    private readonly ReferenceEngine _engine;
    private readonly EngineWeights _w;
    private readonly KvCache _cache;
    private readonly int _batch;
    private readonly float[] _x, _h, _q, _k, _v, _att, _gate, _up, _hookCopy, _rows, _scores, _headOut;
    private readonly float[]? _qkv;
    private readonly int[] _positions;
    private readonly RopeTable? _rope;

    internal EngineSession(ReferenceEngine engine, int capacity)
    {
        _engine = engine;
        _w = engine.Weights;
        var c = _w.Config;
        Capacity = capacity;
        _cache = new KvCache(_w.Blocks.Select(b => b.KvHeads).ToArray(), c.HeadDim, capacity);
        _batch = Math.Min(engine.Options.MaxBatch, capacity);
        // Layers may differ in width (structured pruning): activations are sized for the widest, each layer uses a prefix.
        int d = c.EmbeddingLength, ff = _w.MaxFeedForward, qDim = _w.MaxQDim, kvDim = _w.MaxKvDim;
        _x = new float[_batch * d];
        _h = new float[_batch * d];
        _rows = new float[_batch * d];
        _q = new float[_batch * qDim];
        _k = new float[_batch * kvDim];
        _v = new float[_batch * kvDim];
        _att = new float[_batch * qDim];
        _gate = new float[_batch * ff];
        _up = new float[_batch * ff];
        _hookCopy = new float[_batch * d];
        if (_w.Blocks.Any(b => b.Qkv is not null)) _qkv = new float[_batch * _w.Blocks.Where(b => b.Qkv is not null).Max(b => b.Qkv!.Out)];
        _scores = new float[(long)_batch * capacity];
        _headOut = new float[_batch * c.HeadDim];
        _positions = new int[_batch];
        // ggml's angle recurrence, so positions far into the context rotate exactly as llama.cpp rotates them.
        if (_w.Rope != RopeStyle.None)
            _rope = new RopeTable(c.HeadDim, capacity, c.RopeTheta,
                _w.Rope == RopeStyle.Interleaved ? RopeLayout.Interleaved : RopeLayout.RotateHalf, RopeAngles.GgmlRecurrence);
    }

    /// <summary>Positions the KV cache holds at most.</summary>
    public int Capacity { get; }

    /// <summary>Positions evaluated so far (the next token goes at this position).</summary>
    public int Length { get; private set; }

    public int VocabSize => _w.Config.VocabSize;

    /// <summary>Bytes held by the KV cache.</summary>
    public long KvCacheBytes => _cache.Bytes;

    /// <summary>Forgets every cached position.</summary>
    public void Reset() => Length = 0;

    /// <summary>Keeps only the first <paramref name="length"/> cached positions (for re-evaluating a shared prefix).</summary>
    public void Truncate(int length)
    {
        if (length < 0 || length > Length) throw new ArgumentOutOfRangeException(nameof(length), length, $"between 0 and {Length}");
        Length = length;
    }

    /// <summary>Evaluates <paramref name="tokens"/> and returns the logits of every one of them, [tokens.Length, vocab].</summary>
    public float[] DecodeAll(ReadOnlySpan<int> tokens, CancellationToken cancellationToken = default)
    {
        var rows = new int[tokens.Length];
        for (int i = 0; i < rows.Length; i++) rows[i] = i;
        var logits = new float[(long)tokens.Length * VocabSize];
        Decode(tokens, rows, logits, cancellationToken);
        return logits;
    }

    /// <summary>Evaluates <paramref name="tokens"/> and returns the logits of the last one.</summary>
    public float[] DecodeLast(ReadOnlySpan<int> tokens, CancellationToken cancellationToken = default)
    {
        if (tokens.IsEmpty) throw new ArgumentException("no tokens to evaluate", nameof(tokens));
        var logits = new float[VocabSize];
        Decode(tokens, [tokens.Length - 1], logits, cancellationToken);
        return logits;
    }

    /// <summary>
    /// Appends <paramref name="tokens"/> at positions <see cref="Length"/>… and evaluates them with causal attention
    /// over everything cached. Logits are computed only for the token indices in <paramref name="logitRows"/>
    /// (strictly increasing, each in [0, tokens.Length)) and written row after row into <paramref name="logits"/>
    /// (at least logitRows.Length × vocab floats). On cancellation the session keeps its previous length.
    /// </summary>
    public void Decode(ReadOnlySpan<int> tokens, ReadOnlySpan<int> logitRows, Span<float> logits, CancellationToken cancellationToken = default)
    {
        int n = tokens.Length, vocab = VocabSize;
        if (n > Capacity - Length)
            throw new ArgumentOutOfRangeException(nameof(tokens), n, $"{Length} cached + {n} new positions exceed the session's capacity {Capacity}");
        if (logits.Length < (long)logitRows.Length * vocab)
            throw new ArgumentException($"logits needs {(long)logitRows.Length * vocab} floats, got {logits.Length}", nameof(logits));
        for (int r = 0; r < logitRows.Length; r++)
        {
            if (logitRows[r] < 0 || logitRows[r] >= n || (r > 0 && logitRows[r] <= logitRows[r - 1]))
                throw new ArgumentException($"logitRows[{r}] = {logitRows[r]}: rows must be strictly increasing token indices below {n}", nameof(logitRows));
        }
        for (int i = 0; i < n; i++)
        {
            if ((uint)tokens[i] >= (uint)vocab)
                throw new BadInputException($"token id {tokens[i]} at index {i} is outside the vocabulary (0..{vocab - 1}) of {_w.Source}");
        }

        int start = Length;
        try
        {
            int r = 0;
            var local = new int[Math.Min(logitRows.Length, _batch)];
            for (int b0 = 0; b0 < n; b0 += _batch)
            {
                int b1 = Math.Min(n, b0 + _batch);
                int r0 = r;
                while (r < logitRows.Length && logitRows[r] < b1) r++;
                for (int j = r0; j < r; j++) local[j - r0] = logitRows[j] - b0;
                Forward(tokens[b0..b1], local.AsSpan(0, r - r0), logits.Slice(r0 * vocab, (r - r0) * vocab), cancellationToken);
                Length += b1 - b0;
            }
        }
        catch
        {
            Length = start;
            throw;
        }
    }

    /// <summary>One micro-batch of n ≤ _batch tokens at positions Length … Length + n − 1.</summary>
    private void Forward(ReadOnlySpan<int> tokens, ReadOnlySpan<int> outRows, Span<float> logits, CancellationToken ct)
    {
        var c = _w.Config;
        int n = tokens.Length, d = c.EmbeddingLength, hd = c.HeadDim;
        int p0 = Length, threads = _engine.Options.Threads;
        var hooks = _engine.Hooks;
        var x = _x.AsSpan(0, n * d);
        var h = _h.AsSpan(0, n * d);

        for (int i = 0; i < n; i++)
        {
            _w.TokenEmbedding.AsSpan(tokens[i] * d, d).CopyTo(x.Slice(i * d, d));
            if (_w.PositionEmbedding is { } pe) TensorPrimitives.Add(x.Slice(i * d, d), pe.AsSpan((p0 + i) * d, d), x.Slice(i * d, d));
        }
        for (int i = 0; i < n; i++) _positions[i] = p0 + i;

        for (int l = 0; l < _w.Blocks.Length; l++)
        {
            ct.ThrowIfCancellationRequested();
            var blk = _w.Blocks[l];
            int qDim = blk.QDim, kvDim = blk.KvDim, ff = blk.FeedForward;

            Normalize(x, n, blk.AttnNorm, h);
            var q = _q.AsSpan(0, n * qDim);
            var k = _k.AsSpan(0, n * kvDim);
            var v = _v.AsSpan(0, n * kvDim);
            if (blk.Qkv is { } qkvW)
            {
                var qkv = _qkv.AsSpan(0, n * qkvW.Out);
                Linear(h, n, qkvW, qkv, hooks, shared: false);
                for (int i = 0; i < n; i++)
                {
                    var row = qkv.Slice(i * qkvW.Out, qkvW.Out);
                    row[..qDim].CopyTo(q.Slice(i * qDim, qDim));
                    row.Slice(qDim, kvDim).CopyTo(k.Slice(i * kvDim, kvDim));
                    row.Slice(qDim + kvDim, kvDim).CopyTo(v.Slice(i * kvDim, kvDim));
                }
            }
            else
            {
                Linear(h, n, blk.Q!, q, hooks, shared: true);
                Linear(h, n, blk.K!, k, hooks, shared: true);
                Linear(h, n, blk.V!, v, hooks, shared: true);
            }

            if (_rope is not null)
            {
                Rope.Apply(q, n, blk.Heads, hd, _positions, _rope);
                Rope.Apply(k, n, blk.KvHeads, hd, _positions, _rope);
            }

            for (int g = 0; g < blk.KvHeads; g++)
            {
                var kc = _cache.Keys(l, g);
                var vc = _cache.Values(l, g);
                for (int i = 0; i < n; i++)
                {
                    k.Slice(i * kvDim + g * hd, hd).CopyTo(kc.Slice((p0 + i) * hd, hd));
                    v.Slice(i * kvDim + g * hd, hd).CopyTo(vc.Slice((p0 + i) * hd, hd));
                }
            }

            var att = _att.AsSpan(0, n * qDim);
            Attention(l, blk, n, p0, q, att, threads);
            Linear(att, n, blk.O, x, hooks, shared: false, residual: true);

            Normalize(x, n, blk.FfnNorm, h);
            var up = _up.AsSpan(0, n * ff);
            if (blk.Gate is { } gateW)
            {
                var gate = _gate.AsSpan(0, n * ff);
                Linear(h, n, gateW, gate, hooks, shared: true);
                Linear(h, n, blk.Up, up, hooks, shared: true);
                EngineMath.SwiGlu(gate, up);
                up = gate;
            }
            else
            {
                Linear(h, n, blk.Up, up, hooks, shared: false);
                EngineMath.GeluTanh(up, _engine.Options.Gelu);
            }
            Linear(up, n, blk.Down, x, hooks, shared: false, residual: true);
        }

        int m = outRows.Length;
        if (m == 0) return;
        ct.ThrowIfCancellationRequested();
        var rows = _rows.AsSpan(0, m * d);
        for (int r = 0; r < m; r++) x.Slice(outRows[r] * d, d).CopyTo(h.Slice(r * d, d));
        Normalize(h[..(m * d)], m, _w.OutputNorm, rows);
        Linear(rows, m, _w.Output, logits[..(m * c.VocabSize)], hooks, shared: false);
    }

    private void Normalize(ReadOnlySpan<float> x, int rows, NormWeight w, Span<float> dst)
    {
        if (_w.LayerNorm) EngineMath.LayerNorm(x, rows, _w.Config.EmbeddingLength, w, _w.Config.NormEpsilon, dst);
        else EngineMath.RmsNorm(x, rows, _w.Config.EmbeddingLength, w, _w.Config.NormEpsilon, dst);
    }

    /// <summary>
    /// Runs the hooks on the layer's input (on a private copy when the input feeds several layers), then the product.
    /// </summary>
    private void Linear(Span<float> input, int rows, LinearWeight w, Span<float> output, ILinearInputHook[] hooks, bool shared, bool residual = false)
    {
        var a = input[..(rows * w.In)];
        if (hooks.Length > 0)
        {
            if (shared)
            {
                var copy = _hookCopy.AsSpan(0, rows * w.In);
                a.CopyTo(copy);
                a = copy;
            }
            foreach (var hook in hooks) hook.OnInput(w.Name, a, rows, w.In);
        }
        if (w.RoundInputTo is { } t)
        {
            // After the hooks (they see the model's own activations), on a private copy unless the hooks made one.
            if (shared && hooks.Length == 0)
            {
                var copy = _hookCopy.AsSpan(0, rows * w.In);
                a.CopyTo(copy);
                a = copy;
            }
            GgmlActivationRounding.Round(a, t);
        }
        EngineMath.Linear(a, rows, w, output, _engine.Options.Threads, accumulate: residual);
    }

    /// <summary>
    /// Causal multi-head attention of the n new queries over the p0 + n cached positions, one head at a time as two
    /// GEMMs: scores = Q_h·K_gᵀ, masked softmax, out = P·V_g, where query head h reads KV head g = h / (n_head / n_head_kv).
    /// The masked upper triangle is computed and discarded: it costs ≤ 2× on a step that is a few percent of the FLOPs,
    /// and keeps every product a dense, threaded GEMM.
    /// </summary>
    private void Attention(int block, BlockWeights blk, int n, int p0, ReadOnlySpan<float> q, Span<float> att, int threads)
    {
        // Below this many queries P·V runs as row updates instead of a GEMM (the kernels' own small-m cut-off).
        const int SmallBatch = 4;
        int hd = _w.Config.HeadDim, group = blk.Heads / blk.KvHeads, qDim = blk.QDim, t = p0 + n;
        float scale = 1f / MathF.Sqrt(hd);
        var scores = _scores.AsSpan(0, n * t);
        var headOut = _headOut.AsSpan(0, n * hd);
        for (int head = 0; head < blk.Heads; head++)
        {
            int g = head / group;
            var keys = _cache.Keys(block, g)[..(t * hd)];
            var values = _cache.Values(block, g)[..(t * hd)];
            Sgemm.MultiplyTransposedB(q[(head * hd)..], qDim, keys, hd, scores, t, n, t, hd, threads: threads);
            Softmax.ApplyCausal(scores, n, t, p0, scale);
            if (n >= SmallBatch)
            {
                Sgemm.Multiply(scores, values, headOut, n, hd, t, threads: threads);
                for (int i = 0; i < n; i++) headOut.Slice(i * hd, hd).CopyTo(att.Slice(i * qDim + head * hd, hd));
                continue;
            }
            // Decoding: packing V for a GEMM would copy (and allocate) all of it per head to use each value once.
            for (int i = 0; i < n; i++)
            {
                var o = att.Slice(i * qDim + head * hd, hd);
                o.Clear();
                var p = scores.Slice(i * t, t);
                for (int j = 0; j <= p0 + i; j++) TensorPrimitives.MultiplyAdd(values.Slice(j * hd, hd), p[j], o, o);
            }
        }
    }
}
