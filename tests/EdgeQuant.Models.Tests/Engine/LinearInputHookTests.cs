using EdgeQuant.Models.Engine;

namespace EdgeQuant.Models.Tests.Engine;

public class LinearInputHookTests
{
    private sealed class CountingHook : ILinearInputHook
    {
        public List<(string Layer, int Rows, int Cols, float Sum)> Calls { get; } = [];

        public void OnInput(string layer, Span<float> input, int rows, int cols)
        {
            Assert.Equal(rows * cols, input.Length);
            float s = 0;
            foreach (var v in input) s += v;
            Calls.Add((layer, rows, cols, s));
        }
    }

    private sealed class ZeroingHook(string target) : ILinearInputHook
    {
        public int Hits { get; private set; }

        public void OnInput(string layer, Span<float> input, int rows, int cols)
        {
            if (layer != target) return;
            Hits++;
            input.Clear();
        }
    }

    [Theory]
    [InlineData(Architecture.Llama)]
    [InlineData(Architecture.Gpt2)]
    public void A_counting_hook_sees_every_linear_layer_once_per_forward_with_its_shape(Architecture arch)
    {
        var shape = new TestShape(Arch: arch, HeadCount: 4, HeadCountKv: arch == Architecture.Gpt2 ? 4 : 2, HeadDim: 8, FeedForward: 37, Blocks: 3);
        using var model = TestModels.Build(shape);
        var engine = ReferenceEngine.Load(model);
        var hook = new CountingHook();
        using (engine.AddHook(hook))
        {
            var session = engine.CreateSession(16);
            session.Decode([1, 2, 3, 4, 5], [1, 4], new float[2 * shape.Vocab]);
        }

        string[] perBlock = arch == Architecture.Gpt2
            ? ["attn_qkv", "attn_output", "ffn_up", "ffn_down"]
            : ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"];
        var expected = Enumerable.Range(0, shape.Blocks).SelectMany(b => perBlock.Select(p => $"blk.{b}.{p}")).Append("output").ToList();
        Assert.Equal(expected, hook.Calls.Select(c => c.Layer).ToList());
        Assert.Equal(expected, engine.LinearLayers);

        int d = shape.Embedding, q = shape.HeadCount * shape.HeadDim;
        foreach (var (layer, rows, cols, _) in hook.Calls)
        {
            int wantCols = layer.EndsWith("attn_output") ? q : layer.EndsWith("ffn_down") ? shape.FeedForward : d;
            Assert.Equal(layer == "output" ? 2 : 5, rows);
            Assert.Equal(wantCols, cols);
        }

        // Removed hooks see nothing more.
        int before = hook.Calls.Count;
        engine.CreateSession(4).DecodeAll([1]);
        Assert.Equal(before, hook.Calls.Count);
    }

    [Fact]
    public void Layers_sharing_an_input_see_the_same_values_and_micro_batches_call_again()
    {
        var shape = new TestShape(Blocks: 1);
        using var model = TestModels.Build(shape);
        var engine = ReferenceEngine.Load(model, new EngineOptions { MaxBatch = 4 });
        var hook = new CountingHook();
        using var _ = engine.AddHook(hook);
        engine.CreateSession(16).DecodeAll([1, 2, 3, 4, 5, 6, 7]);
        var q = hook.Calls.Where(c => c.Layer == "blk.0.attn_q").ToList();
        var k = hook.Calls.Where(c => c.Layer == "blk.0.attn_k").ToList();
        Assert.Equal([4, 3], q.Select(c => c.Rows));
        Assert.Equal(q.Select(c => c.Sum), k.Select(c => c.Sum));
    }

    /// <summary>
    /// Zeroing a layer's input must act exactly like zeroing that layer's weight (no biases in this model), and only
    /// that layer: attn_q's replacement must not leak into attn_k/attn_v, which read the same normalized input.
    /// </summary>
    [Theory]
    [InlineData("blk.1.attn_q")]
    [InlineData("blk.0.attn_v")]
    [InlineData("blk.1.ffn_gate")]
    [InlineData("blk.0.ffn_down")]
    [InlineData("blk.1.attn_output")]
    public void A_zeroing_hook_equals_zeroing_that_layers_weight(string layer)
    {
        var shape = new TestShape(FeedForward: 40);
        using var model = TestModels.Build(shape, seed: 4);
        var tokens = TestModels.RandomTokens(9, shape.Vocab, seed: 4);

        var engine = ReferenceEngine.Load(model);
        var plain = engine.CreateSession(16).DecodeAll(tokens);
        var hook = new ZeroingHook(layer);
        float[] hooked;
        using (engine.AddHook(hook)) hooked = engine.CreateSession(16).DecodeAll(tokens);
        Assert.Equal(1, hook.Hits);

        var zeroed = model.Tensors.Select(t => t.Name != layer + ".weight" ? t : new ModelTensor
        {
            Name = t.Name, Shape = t.Shape, Type = t.Type, SourceName = t.SourceName,
            Storage = new ArrayTensorStorage(new byte[t.ByteLength]),
        }).ToList();
        using var zeroModel = new Model(model.Config, zeroed, null, model.Provenance);
        var expected = ReferenceEngine.Load(zeroModel).CreateSession(16).DecodeAll(tokens);

        Assert.True(TestModels.RelativeL2(hooked, expected) <= 1e-6, $"{layer}: hooked run differs from the zero-weight model");
        Assert.True(TestModels.RelativeL2(plain, expected) > 1e-3, $"{layer}: zeroing had no visible effect, so the test proves nothing");
    }
}
