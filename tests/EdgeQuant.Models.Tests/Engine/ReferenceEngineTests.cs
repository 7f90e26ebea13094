using EdgeQuant.Core.Errors;
using EdgeQuant.Models.Engine;

namespace EdgeQuant.Models.Tests.Engine;

public class ReferenceEngineTests
{
    /// <summary>
    /// Engine (F32) against the double-precision naive transformer. F32 rounding over a few blocks of dot products
    /// of length ≤ 512 leaves relative errors near 1e-6; 2e-5 leaves margin for accumulation order while a wrong
    /// formula (a mis-paired rotation, an off-by-one mask, a wrong KV head) shows up as 1e-2 or worse.
    /// </summary>
    private const double VsNaive = 2e-5;

    /// <summary>The same engine computing the same thing along two routes (batch vs incremental, split micro-batches).</summary>
    private const double SameEngine = 1e-5;

    public static TheoryData<string, TestShape> Shapes => new()
    {
        { "llama gqa1 hd32", new TestShape(HeadCount: 4, HeadCountKv: 4, HeadDim: 32, FeedForward: 70) },
        { "llama gqa2 hd64 tied", new TestShape(HeadCount: 4, HeadCountKv: 2, HeadDim: 64, FeedForward: 173, Tied: true) },
        { "llama gqa4 hd128 odd ffn", new TestShape(HeadCount: 4, HeadCountKv: 1, HeadDim: 128, FeedForward: 171, Blocks: 1) },
        { "qwen2 biases rotate-half", new TestShape(Arch: Architecture.Qwen2, HeadCount: 6, HeadCountKv: 2, HeadDim: 16, FeedForward: 50, QkvBias: true, RopeTheta: 1e6f) },
        { "gpt2", new TestShape(Arch: Architecture.Gpt2, HeadCount: 4, HeadCountKv: 4, HeadDim: 8, FeedForward: 128, Blocks: 3, Tied: true) },
        // A structurally pruned Llama: layer 0 narrower than the config's largest, GQA ratios 2, 2, 1, 4 and FFN widths
        // that differ (HeadCount/HeadCountKv/FeedForward hold the largest, as ModelConfig's convention says).
        { "llama per-layer widths", new TestShape(HeadCount: 4, HeadCountKv: 2, HeadDim: 16, FeedForward: 96, Blocks: 4,
            LayerHeads: [2, 4, 1, 4], LayerKvHeads: [1, 2, 1, 1], LayerFeedForward: [40, 96, 17, 64]) },
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Batched_logits_match_the_naive_reference(string name, TestShape shape)
    {
        using var model = TestModels.Build(shape);
        var tokens = TestModels.RandomTokens(19, shape.Vocab, seed: 3);
        var expected = NaiveTransformer.Logits(model, tokens);
        var engine = ReferenceEngine.Load(model, new EngineOptions { Threads = 2 });
        var actual = engine.CreateSession(32).DecodeAll(tokens);
        double err = TestModels.RelativeL2(actual, expected);
        Assert.True(err <= VsNaive, $"{name}: relative L2 {err:E2} > {VsNaive:E0}");
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Incremental_decoding_equals_full_sequence(string name, TestShape shape)
    {
        using var model = TestModels.Build(shape, seed: 5);
        var tokens = TestModels.RandomTokens(23, shape.Vocab, seed: 8);
        var engine = ReferenceEngine.Load(model, new EngineOptions { Threads = 2 });
        var full = engine.CreateSession(32).DecodeAll(tokens);

        var session = engine.CreateSession(32);
        var stepwise = new float[full.Length];
        for (int i = 0; i < tokens.Length; i++)
        {
            session.DecodeLast([tokens[i]]).CopyTo(stepwise, i * shape.Vocab);
            Assert.Equal(i + 1, session.Length);
        }
        double err = TestModels.RelativeL2(stepwise, full);
        Assert.True(err <= SameEngine, $"{name}: relative L2 {err:E2}");
    }

    [Fact]
    public void Micro_batches_and_chunks_do_not_change_the_result()
    {
        var shape = new TestShape(HeadCount: 4, HeadCountKv: 2, HeadDim: 16);
        using var model = TestModels.Build(shape, seed: 9);
        var tokens = TestModels.RandomTokens(30, shape.Vocab, seed: 10);
        var full = ReferenceEngine.Load(model).CreateSession(40).DecodeAll(tokens);

        var small = ReferenceEngine.Load(model, new EngineOptions { MaxBatch = 7, Threads = 1 }).CreateSession(40).DecodeAll(tokens);
        Assert.True(TestModels.RelativeL2(small, full) <= SameEngine);

        // Three appends of a prefix-continued sequence, logits requested for a few rows of each.
        var session = ReferenceEngine.Load(model).CreateSession(40);
        int[] cuts = [0, 11, 12, 30];
        for (int c = 0; c + 1 < cuts.Length; c++)
        {
            var part = tokens[cuts[c]..cuts[c + 1]];
            int[] rows = part.Length == 1 ? [0] : [0, part.Length - 1];
            var got = new float[rows.Length * shape.Vocab];
            session.Decode(part, rows, got);
            for (int r = 0; r < rows.Length; r++)
            {
                var want = full.AsSpan((cuts[c] + rows[r]) * shape.Vocab, shape.Vocab);
                Assert.True(TestModels.RelativeL2(got.AsSpan(r * shape.Vocab, shape.Vocab), want) <= SameEngine);
            }
        }
        Assert.Equal(30, session.Length);
    }

    [Fact]
    public void Reset_and_truncate_reuse_the_cache()
    {
        var shape = new TestShape();
        using var model = TestModels.Build(shape, seed: 2);
        var a = TestModels.RandomTokens(10, shape.Vocab, seed: 1);
        var b = TestModels.RandomTokens(10, shape.Vocab, seed: 2);
        var engine = ReferenceEngine.Load(model);
        var expectB = engine.CreateSession(16).DecodeAll(b);

        var session = engine.CreateSession(16);
        session.DecodeAll(a);
        session.Reset();
        Assert.True(TestModels.RelativeL2(session.DecodeAll(b), expectB) <= SameEngine);

        // Keep b's first 4 positions, then overwrite the rest with b's own tokens again.
        session.Truncate(4);
        var tail = session.DecodeAll(b[4..]);
        Assert.True(TestModels.RelativeL2(tail, expectB.AsSpan(4 * shape.Vocab)) <= SameEngine);
    }

    [Fact]
    public void Bad_calls_are_rejected_and_leave_the_session_usable()
    {
        var shape = new TestShape();
        using var model = TestModels.Build(shape);
        var engine = ReferenceEngine.Load(model);
        var session = engine.CreateSession(8);

        var e = Assert.Throws<BadInputException>(() => session.DecodeAll([1, shape.Vocab]));
        Assert.Contains($"token id {shape.Vocab} at index 1", e.Message);
        Assert.Throws<BadInputException>(() => session.DecodeAll([-1]));
        Assert.Equal(0, session.Length);

        session.DecodeAll([1, 2, 3, 4, 5]);
        Assert.Throws<ArgumentOutOfRangeException>(() => session.DecodeAll([1, 2, 3, 4]));
        Assert.Equal(5, session.Length);
        Assert.Throws<ArgumentException>(() => session.Decode([1], [0, 0], new float[2 * shape.Vocab]));
        Assert.Throws<ArgumentException>(() => session.Decode([1, 2], [1, 0], new float[2 * shape.Vocab]));
        Assert.Throws<ArgumentException>(() => session.Decode([1, 2], [1], new float[shape.Vocab - 1]));
        Assert.Equal(5, session.Length);
        Assert.Throws<ArgumentOutOfRangeException>(() => engine.CreateSession(0));
        Assert.Throws<ArgumentOutOfRangeException>(() => ReferenceEngine.Load(model, new EngineOptions { Threads = 0 }));
    }

    [Fact]
    public void Cancellation_stops_the_forward_and_keeps_the_previous_length()
    {
        var shape = new TestShape();
        using var model = TestModels.Build(shape);
        var session = ReferenceEngine.Load(model).CreateSession(16);
        session.DecodeAll([1, 2, 3]);
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        Assert.ThrowsAny<OperationCanceledException>(() => session.DecodeAll([4, 5], cts.Token));
        Assert.Equal(3, session.Length);
    }

    [Fact]
    public void A_tensor_of_the_wrong_shape_is_named_in_the_error()
    {
        var shape = new TestShape();
        using var good = TestModels.Build(shape);
        var tensors = good.Tensors.Select(t => t.Name != "blk.1.ffn_down.weight" ? t : new ModelTensor
        {
            Name = t.Name, Shape = [t.Shape[1], t.Shape[0]], Type = t.Type, SourceName = t.SourceName, Storage = t.Storage,
        }).ToList();
        using var bad = new Model(good.Config, tensors, null, good.Provenance);
        var e = Assert.Throws<BadInputException>(() => ReferenceEngine.Load(bad));
        Assert.Contains("blk.1.ffn_down.weight", e.Message);
        Assert.Contains($"[{shape.FeedForward}, {shape.Embedding}]", e.Message);

        using var missing = new Model(good.Config, good.Tensors.Where(t => t.Name != "blk.0.attn_k.weight").ToList(), null, good.Provenance);
        Assert.Contains("blk.0.attn_k.weight", Assert.Throws<BadInputException>(() => ReferenceEngine.Load(missing)).Message);

        using var noKv = new Model(good.Config with { HeadCountKv = 3 }, good.Tensors, null, good.Provenance);
        Assert.Contains("n_head_kv", Assert.Throws<BadInputException>(() => ReferenceEngine.Load(noKv)).Message);
    }

    [Fact]
    public void Gpt2_sessions_are_limited_to_the_learned_positions()
    {
        var shape = new TestShape(Arch: Architecture.Gpt2, HeadCountKv: 4, Positions: 16, Tied: true);
        using var model = TestModels.Build(shape);
        var engine = ReferenceEngine.Load(model);
        Assert.Equal(16, engine.MaxPositions);
        Assert.Throws<ArgumentOutOfRangeException>(() => engine.CreateSession(17));
    }
}
