using System.Runtime.InteropServices;
using EdgeQuant.Compression.Imatrix;
using EdgeQuant.Core.Errors;
using EdgeQuant.Fixtures;
using EdgeQuant.Models;
using EdgeQuant.Models.Engine;
using EdgeQuant.Models.Tokenizers;
using EdgeQuant.Testing;

namespace EdgeQuant.Compression.Tests.Imatrix;

/// <summary>
/// What the collector gathers, checked against sums of squares the test computes itself: from the weights (layer 0's
/// attention input is the RMS-normed token embedding) and from the engine's inputs captured by a second hook.
/// </summary>
public sealed class ImatrixCollectorTests
{
    private const string Stories = "models/stories260K/stories260K.gguf";
    private const string Text = "corpus/tinystories-sample.txt";

    /// <summary>
    /// Float sums over a few hundred rows against a double-precision recomputation: the float accumulation's relative
    /// error grows like rows x 2^-24 (~3e-5 for 384 rows, worst case); the engine's RMSNorm matches ggml's, not double.
    /// </summary>
    private const double SumTolerance = 5e-5;

    private static float[] Floats(Model m, string name) => MemoryMarshal.Cast<byte, float>(m.Get(name).RawBytes()).ToArray();

    /// <summary>Records every input the engine hands the hooks, per layer, in call order.</summary>
    private sealed class Recorder : ILinearInputHook
    {
        public Dictionary<string, List<float[]>> Rows { get; } = new();

        public void OnInput(string layer, Span<float> input, int rows, int cols)
        {
            if (!Rows.TryGetValue(layer, out var list)) Rows[layer] = list = new();
            for (int r = 0; r < rows; r++) list.Add(input.Slice(r * cols, cols).ToArray());
        }
    }

    [SharedDataFact(Stories, Text)]
    public void Stories260K_layer0_attention_sums_are_the_squared_rms_normed_embeddings()
    {
        using var model = ModelLoader.Load(SharedData.Require(Stories));
        var text = File.ReadAllText(SharedData.Require(Text))[..20000];
        var tokenizer = Tokenizer.FromModel(model);
        var tokens = tokenizer.Encode(text, addSpecial: true, parseSpecial: false);
        const int ctx = 128, chunks = 3;
        var m = ImatrixRunner.Collect(model, tokens, new ImatrixRunOptions { Context = ctx, Chunks = chunks, Threads = 1, Datasets = ["tiny.txt"] }, null,
            CancellationToken.None);

        var c = model.Config;
        int d = c.EmbeddingLength;
        var embd = Floats(model, "token_embd.weight");
        var norm = Floats(model, "blk.0.attn_norm.weight");
        var expected = new double[d];
        for (int ch = 0; ch < chunks; ch++)
        {
            for (int i = 0; i < ctx; i++)
            {
                // llama-imatrix replaces each chunk's first token by BOS.
                int t = i == 0 ? tokenizer.BosId!.Value : tokens[ch * ctx + i];
                double ss = 0;
                for (int j = 0; j < d; j++) ss += (double)embd[t * d + j] * embd[t * d + j];
                double scale = 1 / Math.Sqrt(ss / d + c.NormEpsilon);
                for (int j = 0; j < d; j++)
                {
                    double y = embd[t * d + j] * scale * norm[j];
                    expected[j] += y * y;
                }
            }
        }
        var q = m.Entry("blk.0.attn_q.weight")!;
        Assert.Equal([(double)(chunks * ctx)], q.Counts.ToArray());
        for (int j = 0; j < d; j++)
            Assert.True(Math.Abs(q.Sums[j] - expected[j]) <= SumTolerance * expected[j], $"column {j}: {q.Sums[j]} vs {expected[j]}");
        // attn_q/k/v read one input, so their sums are the same numbers; ffn_gate and ffn_up likewise.
        Assert.Equal(q.Sums.ToArray(), m.Entry("blk.0.attn_k.weight")!.Sums.ToArray());
        Assert.Equal(q.Sums.ToArray(), m.Entry("blk.0.attn_v.weight")!.Sums.ToArray());
        Assert.Equal(m.Entry("blk.4.ffn_gate.weight")!.Sums.ToArray(), m.Entry("blk.4.ffn_up.weight")!.Sums.ToArray());

        var expectedNames = Enumerable.Range(0, c.BlockCount)
            .SelectMany(l => new[] { "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down" }.Select(n => $"blk.{l}.{n}.weight"))
            .Order(StringComparer.Ordinal);
        Assert.Equal(expectedNames, m.TensorNames);
        Assert.Equal(c.FeedForwardLength, m.Entry("blk.2.ffn_down.weight")!.Columns);
        Assert.Equal(chunks, m.ChunkCount);
        Assert.Equal(ctx, m.ChunkSize);
        Assert.Equal(["tiny.txt"], m.Datasets);
        // Normalized as llama-quantize would: the mean square per column.
        var imp = m.ImportanceFor("blk.0.attn_q.weight")!;
        for (int j = 0; j < d; j++) Assert.Equal(q.Sums[j] / (float)(chunks * ctx), imp[j]);
    }

    [Fact]
    public void Random_fixture_sums_equal_the_float_sums_of_the_inputs_the_engine_passed()
    {
        using var dir = new TempDir();
        var spec = new FixtureSpec { Layers = 2, Embd = 32, Heads = 4, KvHeads = 2, Ffn = 48, Vocab = 300, Untied = true, Seed = 5 };
        var path = FixtureMaker.Write(spec, dir.Path, FixtureFormats.Gguf).GgufPath!;
        using var model = ModelLoader.Load(path);
        var rng = new Random(3);
        var tokens = Enumerable.Range(0, 100).Select(_ => rng.Next(3, 300)).ToArray();

        // The same chunks through an engine with only a recorder, then the expected sums in plain float arithmetic.
        var engine = ReferenceEngine.Load(model, new EngineOptions { Threads = 1 });
        var recorder = new Recorder();
        using (engine.AddHook(recorder))
        {
            var session = engine.CreateSession(32);
            for (int ch = 0; ch < 3; ch++)
            {
                var chunk = tokens.AsSpan(ch * 32, 32).ToArray();
                chunk[0] = 1; // the fixture's BOS
                session.Reset();
                var rows = Enumerable.Range(0, 32).ToArray();
                session.Decode(chunk, rows, new float[32 * 300]);
            }
        }

        var m = ImatrixRunner.Collect(model, tokens, new ImatrixRunOptions { Context = 32, Chunks = 3, Threads = 1, ProcessOutput = true, Bos = 1 }, null,
            CancellationToken.None);
        Assert.Equal(recorder.Rows.Keys.Select(k => k + ".weight").Order(StringComparer.Ordinal), m.TensorNames);
        Assert.Contains("output.weight", m.TensorNames);
        foreach (var (layer, rows) in recorder.Rows)
        {
            var acc = new float[rows[0].Length];
            foreach (var x in rows)
                for (int j = 0; j < acc.Length; j++) acc[j] += x[j] * x[j];
            var e = m.Entry(layer + ".weight")!;
            Assert.Equal(acc, e.Sums.ToArray());
            Assert.Equal([(double)rows.Count], e.Counts.ToArray());
        }
        Assert.Equal(96.0, m.Entry("output.weight")!.Counts[0]);
    }

    [Fact]
    public void Output_is_collected_only_on_request_and_never_when_tied()
    {
        using var dir = new TempDir();
        var spec = new FixtureSpec { Layers = 1, Embd = 16, Heads = 2, KvHeads = 1, Ffn = 24, Vocab = 300, Seed = 9 };
        var tied = FixtureMaker.Write(spec, dir.File("tied"), FixtureFormats.Gguf).GgufPath!;
        var untied = FixtureMaker.Write(spec with { Untied = true }, dir.File("untied"), FixtureFormats.Gguf).GgufPath!;
        var tokens = Enumerable.Range(0, 64).Select(i => 3 + i % 200).ToArray();
        ImportanceMatrix Run(string p, bool output)
        {
            using var model = ModelLoader.Load(p);
            return ImatrixRunner.Collect(model, tokens, new ImatrixRunOptions { Context = 32, Threads = 1, ProcessOutput = output, ComputePerplexity = false }, null,
                CancellationToken.None);
        }
        Assert.DoesNotContain("output.weight", Run(untied, false).TensorNames);
        Assert.Contains("output.weight", Run(untied, true).TensorNames);
        // llama.cpp's tied output is token_embd.weight, which collect_imatrix does not take.
        var t = Run(tied, true);
        Assert.DoesNotContain("output.weight", t.TensorNames);
        Assert.DoesNotContain("token_embd.weight", t.TensorNames);
        Assert.Equal(7, t.TensorNames.Count);
    }

    [Fact]
    public void Gpt2_collects_the_fused_qkv_input()
    {
        using var dir = new TempDir();
        var spec = FixtureSpec.Preset(FixtureArch.Gpt2, "tiny") with { Vocab = 300 };
        var path = FixtureMaker.Write(spec, dir.Path, FixtureFormats.Gguf).GgufPath!;
        using var model = ModelLoader.Load(path);
        var tokens = Enumerable.Range(0, 40).Select(i => i * 7 % 300).ToArray();
        var m = ImatrixRunner.Collect(model, tokens, new ImatrixRunOptions { Context = 20, Threads = 1 }, null, CancellationToken.None);
        Assert.Equal(["blk.0.attn_output.weight", "blk.0.attn_qkv.weight", "blk.0.ffn_down.weight", "blk.0.ffn_up.weight"], m.TensorNames);
        Assert.Equal(4 * spec.Embd, m.Entry("blk.0.ffn_down.weight")!.Columns);
        Assert.Equal(40.0, m.Entry("blk.0.attn_qkv.weight")!.Counts[0]);
    }

    [Fact]
    public void Micro_batches_llama_imatrix_would_not_collect_are_left_out()
    {
        // -c 512: four chunks per 2048-token batch, micro-batches of 128 positions x 4 sequences: all collected.
        Assert.All(ImatrixRunner.MicroBatchPlan(512, 6), r => Assert.Equal([(0, 512, true)], r));
        // -c 2052 > 2048: one sequence, micro-batches of 512 from the chunk start; the last 4 tokens form a
        // micro-batch of 4 rows, which collect_imatrix declines.
        Assert.All(ImatrixRunner.MicroBatchPlan(2052, 2), r => Assert.Equal([(0, 2048, true), (2048, 4, false)], r));
        // -c 8: 256 sequences per batch, 2 positions of each per micro-batch (512 rows); a last batch of 3 chunks
        // makes micro-batches of 3 x 170 positions: 8 positions in one piece of 24 rows, collected.
        Assert.Equal([(0, 8, true)], ImatrixRunner.MicroBatchPlan(8, 259)[258]);
        // -c 4 with 3 chunks: one micro-batch of 12 rows, not collected.
        Assert.Equal([(0, 4, false)], ImatrixRunner.MicroBatchPlan(4, 3)[0]);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_context_just_above_2048_leaves_out_each_chunk_s_last_4_tokens(bool perplexity)
    {
        using var dir = new TempDir();
        var spec = new FixtureSpec { Layers = 1, Embd = 16, Heads = 2, KvHeads = 1, Ffn = 24, Vocab = 300, Seed = 4 };
        using var model = ModelLoader.Load(FixtureMaker.Write(spec, dir.Path, FixtureFormats.Gguf).GgufPath!);
        var tokens = Enumerable.Range(0, 2 * 2052).Select(i => 3 + i * 13 % 290).ToArray();
        var m = ImatrixRunner.Collect(model, tokens, new ImatrixRunOptions { Context = 2052, Threads = 1, ComputePerplexity = perplexity }, null,
            CancellationToken.None);
        Assert.All(m.TensorNames, n => Assert.Equal(2 * 2048.0, m.Entry(n)!.Counts[0]));
        // llama-imatrix's chunk count is the largest row count over the chunk size: 4096 / 2052.
        Assert.Equal(1, m.ChunkCount);
    }

    [Fact]
    public void Too_short_a_text_and_cancellation_are_reported()
    {
        using var dir = new TempDir();
        var spec = new FixtureSpec { Layers = 1, Embd = 16, Heads = 2, KvHeads = 1, Ffn = 24, Vocab = 300 };
        using var model = ModelLoader.Load(FixtureMaker.Write(spec, dir.Path, FixtureFormats.Gguf).GgufPath!);
        var e = Assert.Throws<BadInputException>(() =>
            ImatrixRunner.Collect(model, new int[63], new ImatrixRunOptions { Context = 32 }, null, CancellationToken.None));
        Assert.Contains("64", e.Message);
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        Assert.ThrowsAny<OperationCanceledException>(() =>
            ImatrixRunner.Collect(model, new int[64], new ImatrixRunOptions { Context = 32 }, null, cts.Token));
    }
}
