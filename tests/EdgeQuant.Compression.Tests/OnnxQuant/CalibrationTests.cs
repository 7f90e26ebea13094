using EdgeQuant.Compression.OnnxQuant;
using EdgeQuant.Core.Errors;
using EdgeQuant.Fixtures;
using EdgeQuant.Models;
using EdgeQuant.Models.Engine;
using EdgeQuant.Models.Tokenizers;
using EdgeQuant.Runtimes.Evaluation;
using EdgeQuant.Testing;
using Xunit.Abstractions;

namespace EdgeQuant.Compression.Tests.OnnxQuant;

/// <summary>Activation calibration and SmoothQuant through the reference engine (stories260K, and a GPT-2 fixture for LayerNorm).</summary>
public sealed class CalibrationTests(ITestOutputHelper output)
{
    private const string Stories = "models/stories260K/stories260K.gguf";
    private const string Text = "corpus/tinystories-sample.txt";

    private static List<int[]> Sequences(Model model, int count, int length, int skip = 0)
    {
        var tokenizer = Tokenizer.FromModel(model);
        var tokens = tokenizer.Encode(Perplexity.PrepareText(File.ReadAllText(SharedData.Require(Text))));
        var list = new List<int[]>();
        for (int s = 0; s < count; s++)
        {
            var seq = tokens.AsSpan((skip + s) * length, length).ToArray();
            seq[0] = tokenizer.BosId!.Value;
            list.Add(seq);
        }
        return list;
    }

    /// <summary>Independent: every input's min and max, and count, straight from the hook.</summary>
    private sealed class MinMaxCapture : ILinearInputHook
    {
        public Dictionary<string, (float Min, float Max, long N)> Seen { get; } = new(StringComparer.Ordinal);

        public void OnInput(string layer, Span<float> input, int rows, int cols)
        {
            var (mn, mx, n) = Seen.GetValueOrDefault(layer, (float.PositiveInfinity, float.NegativeInfinity, 0L));
            foreach (float v in input[..(rows * cols)])
            {
                mn = Math.Min(mn, v);
                mx = Math.Max(mx, v);
            }
            Seen[layer] = (mn, mx, n + (long)rows * cols);
        }
    }

    [SharedDataFact(Stories, Text)]
    public void MinMax_ranges_equal_the_captured_extremes_and_shared_inputs_share_them()
    {
        using var model = ModelLoader.Load(SharedData.Require(Stories));
        var seqs = Sequences(model, 4, 128);
        var ranges = ActivationCalibrator.Collect(model, seqs, new Int8StaticOptions { Method = CalibrationMethod.MinMax }, 2, null, CancellationToken.None);

        var engine = ReferenceEngine.Load(model, new EngineOptions { Threads = 2 });
        var capture = new MinMaxCapture();
        using (engine.AddHook(capture))
        {
            var session = engine.CreateSession(128);
            foreach (var s in seqs)
            {
                session.Reset();
                session.Decode(s, [], []);
            }
        }
        Assert.Equal(engine.LinearLayers.Count - 1, ranges.Layers.Count); // all but the LM head
        Assert.False(ranges.Layers.ContainsKey("output"));
        foreach (var (layer, r) in ranges.Layers)
        {
            var (mn, mx, n) = capture.Seen[layer];
            Assert.Equal(new LayerRange(mn, mx, mn, mx, n), r);
        }
        Assert.Same(ranges.Layers["blk.1.attn_q"], ranges.Layers["blk.1.attn_v"]);
        Assert.Same(ranges.Layers["blk.1.ffn_gate"], ranges.Layers["blk.1.ffn_up"]);
        Assert.Equal(4 * 128, ranges.Tokens);

        var withHead = ActivationCalibrator.Collect(model, seqs[..1], new Int8StaticOptions { Layers = new LayerSelection(includeLmHead: true) }, 2, null, CancellationToken.None);
        Assert.Equal(128L * model.Config.EmbeddingLength, withHead.Layers["output"].Samples);
    }

    [SharedDataFact(Stories, Text)]
    public void Every_method_gives_ranges_inside_the_data_and_is_deterministic()
    {
        using var model = ModelLoader.Load(SharedData.Require(Stories));
        var seqs = Sequences(model, 4, 128);
        foreach (var method in new[] { CalibrationMethod.Percentile, CalibrationMethod.Entropy, CalibrationMethod.Mse })
        {
            var o = new Int8StaticOptions { Method = method };
            var a = ActivationCalibrator.Collect(model, seqs, o, 2, null, CancellationToken.None);
            var b = ActivationCalibrator.Collect(model, seqs, o, 1, null, CancellationToken.None);
            int narrower = 0;
            foreach (var (layer, r) in a.Layers)
            {
                Assert.Equal(r, b.Layers[layer]);
                Assert.True(r.Min <= r.RangeMin && r.RangeMin < r.RangeMax && r.RangeMax <= r.Max, $"{method} {layer}: {r}");
                if (r.RangeMax - r.RangeMin < 0.999 * (r.Max - r.Min)) narrower++;
            }
            output.WriteLine($"{method}: {narrower}/{a.Layers.Count} ranges clipped; blk.0.ffn_down {a.Layers["blk.0.ffn_down"]}");
            Assert.True(narrower > 0, $"{method} clipped nothing");
        }
    }

    [SharedDataFact(Stories, Text)]
    public void Bad_calibration_input_is_refused()
    {
        using var model = ModelLoader.Load(SharedData.Require(Stories));
        var o = new Int8StaticOptions();
        Assert.Throws<BadInputException>(() => ActivationCalibrator.Collect(model, [], o, 1, null, CancellationToken.None));
        Assert.Throws<BadInputException>(() => ActivationCalibrator.Collect(model, [[]], o, 1, null, CancellationToken.None));
        Assert.Throws<BadInputException>(() => ActivationCalibrator.Collect(model, [new int[model.Config.ContextLength + 1]], o, 1, null, CancellationToken.None));
        Assert.Throws<BadInputException>(() => ActivationCalibrator.Collect(model, [[1, model.Config.VocabSize]], o, 1, null, CancellationToken.None));
        Assert.Throws<BadInputException>(() => ActivationCalibrator.Collect(model, [[1, 2]], o with { EntropyBins = 100 }, 1, null, CancellationToken.None));
        Assert.Throws<BadInputException>(() => SmoothQuant.Apply(model, [[1, 2]], 1.5, 1, CancellationToken.None));
    }

    private static double RelativeL2(float[] a, float[] b)
    {
        double num = 0, den = 0;
        for (int i = 0; i < a.Length; i++)
        {
            num += (double)(a[i] - b[i]) * (a[i] - b[i]);
            den += (double)b[i] * b[i];
        }
        return Math.Sqrt(num / den);
    }

    private static float[] Logits(Model model, int[] tokens) =>
        ReferenceEngine.Load(model, new EngineOptions { Threads = 2 }).CreateSession(tokens.Length).DecodeAll(tokens);

    /// <summary>Per-channel max |x| of one layer's input over the sequences.</summary>
    private static float[] ChannelMax(Model model, IReadOnlyList<int[]> seqs, string layer)
    {
        var engine = ReferenceEngine.Load(model, new EngineOptions { Threads = 2 });
        float[]? max = null;
        using (engine.AddHook(new DelegateHook((l, x, rows, cols) =>
               {
                   if (l != layer) return;
                   max ??= new float[cols];
                   for (int i = 0; i < rows * cols; i++) max[i % cols] = Math.Max(max[i % cols], Math.Abs(x[i]));
               })))
        {
            var session = engine.CreateSession(seqs.Max(s => s.Length));
            foreach (var s in seqs)
            {
                session.Reset();
                session.Decode(s, [], []);
            }
        }
        return max!;
    }

    /// <summary>Per input column, max |W_ij| over the rows of all the given [out, in] weights.</summary>
    private static float[] ColumnMax(Model model, params string[] weights)
    {
        int d = (int)model.Get(weights[0]).Shape[1];
        var max = new float[d];
        foreach (var name in weights)
        {
            var w = model.Get(name).ToFloat32();
            for (int i = 0; i < w.Length; i++) max[i % d] = Math.Max(max[i % d], Math.Abs(w[i]));
        }
        return max;
    }

    private delegate void HookAction(string layer, Span<float> x, int rows, int cols);

    private sealed class DelegateHook(HookAction action) : ILinearInputHook
    {
        public void OnInput(string layer, Span<float> input, int rows, int cols) => action(layer, input, rows, cols);
    }

    [SharedDataFact(Stories, Text)]
    public void SmoothQuant_keeps_the_logits_and_meets_activation_and_weight_maxima_halfway()
    {
        using var model = ModelLoader.Load(SharedData.Require(Stories));
        var calib = Sequences(model, 4, 128);
        var held = Sequences(model, 1, 200, skip: 10)[0];
        var before = Logits(model, held);
        using var smoothed = SmoothQuant.Apply(model, calib, 0.5, 2, CancellationToken.None);
        double rel = RelativeL2(Logits(smoothed, held), before);
        output.WriteLine($"stories260K α=0.5: logits rel. L2 {rel:E2}");
        Assert.InRange(rel, 0, 1e-5);
        // With α = 0.5 the smoothed inputs and weights meet halfway: per channel, max|X'_j| = max|W'_j| = sqrt(max|X_j| · max|W_j|)
        // on the calibration data.
        foreach (var (hook, weights) in new[] { ("blk.0.ffn_gate", new[] { "blk.0.ffn_gate.weight", "blk.0.ffn_up.weight" }),
                     ("blk.3.attn_q", new[] { "blk.3.attn_q.weight", "blk.3.attn_k.weight", "blk.3.attn_v.weight" }) })
        {
            var x0 = ChannelMax(model, calib, hook);
            var w0 = ColumnMax(model, weights);
            var x1 = ChannelMax(smoothed, calib, hook);
            var w1 = ColumnMax(smoothed, weights);
            for (int j = 0; j < x0.Length; j++)
            {
                double expected = Math.Sqrt((double)x0[j] * w0[j]);
                Assert.InRange(x1[j], expected * (1 - 1e-4), expected * (1 + 1e-4));
                Assert.InRange(w1[j], expected * (1 - 1e-4), expected * (1 + 1e-4));
            }
            output.WriteLine($"{hook}: max/mean channel absmax of the input {x0.Max() / x0.Average():F2} -> {x1.Max() / x1.Average():F2}");
        }
        Assert.NotEqual(model.Get("blk.0.attn_norm.weight").ToFloat32(), smoothed.Get("blk.0.attn_norm.weight").ToFloat32());

        // α = 0 still rescales (by 1 / max|W_j|) and must stay exact too.
        using var zero = SmoothQuant.Apply(model, calib, 0, 1, CancellationToken.None);
        Assert.InRange(RelativeL2(Logits(zero, held), before), 0, 1e-5);
    }

    [Fact]
    public void SmoothQuant_is_exact_on_gpt2_layernorm_with_bias()
    {
        using var temp = new TempDir("eq-smooth");
        var spec = new FixtureSpec { Arch = FixtureArch.Gpt2, Layers = 2, Embd = 64, Heads = 4, KvHeads = 4, Ffn = 256, Vocab = 320, ContextLength = 64, Seed = 35 };
        var written = FixtureMaker.Write(spec, temp.Path, FixtureFormats.Gguf);
        using var model = ModelLoader.Load(written.GgufPath!);
        var rng = new Random(5);
        var calib = Enumerable.Range(0, 3).Select(_ => Enumerable.Range(0, 48).Select(_ => rng.Next(spec.Vocab)).ToArray()).ToList();
        var held = Enumerable.Range(0, 60).Select(_ => rng.Next(spec.Vocab)).ToArray();
        using var smoothed = SmoothQuant.Apply(model, calib, 0.8, 1, CancellationToken.None);
        Assert.NotEqual(model.Get("blk.1.ffn_norm.bias").ToFloat32(), smoothed.Get("blk.1.ffn_norm.bias").ToFloat32());
        Assert.NotEqual(model.Get("blk.1.attn_qkv.weight").ToFloat32(), smoothed.Get("blk.1.attn_qkv.weight").ToFloat32());
        double rel = RelativeL2(Logits(smoothed, held), Logits(model, held));
        output.WriteLine($"gpt2 fixture α=0.8: logits rel. L2 {rel:E2}");
        Assert.InRange(rel, 0, 1e-5);
    }
}
