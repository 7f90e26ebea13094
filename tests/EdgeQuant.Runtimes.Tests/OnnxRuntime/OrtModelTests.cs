using EdgeQuant.Runtimes.OnnxRuntime;
using EdgeQuant.Testing;
using Xunit.Abstractions;

namespace EdgeQuant.Runtimes.Tests.OnnxRuntime;

/// <summary>Real ONNX models from ../shared/data run through the binding.</summary>
public sealed class OrtModelTests(ITestOutputHelper output)
{
    private const string Gpt2 = "onnx/tiny-random-gpt2/past.onnx";
    private const string SileroV5 = "onnx/silero-vad/silero_vad_v5.onnx";
    private const string SileroLegacy = "onnx/silero-vad/silero_vad_legacy.onnx";

    /// <summary>
    /// Incremental decoding must reproduce full-sequence logits. 1e-5 absolute: both paths run the same fp32 kernels
    /// over the same numbers, only the attention's reduction lengths/blocking differ, so differences stay at a few
    /// ulp of logits of magnitude ~1 (measured max is printed).
    /// </summary>
    private const float KvSelfConsistency = 1e-5f;

    private static int[] Tokens(int count, int vocab)
    {
        var rng = new Random(20240601);
        return Enumerable.Range(0, count).Select(_ => rng.Next(vocab)).ToArray();
    }

    [OnnxRuntimeFact(Gpt2)]
    public void Gpt2_kv_cache_step_by_step_equals_the_full_sequence()
    {
        RuntimeAvailability.Require(NativeLibraries.OnnxRuntime);
        using var runner = OrtLogitsRunner.Open(SharedData.Require(Gpt2), new OrtLogitsRunnerOptions { Session = new OrtSessionSettings { IntraOpThreads = 1 } });
        Assert.True(runner.HasKvCache);
        Assert.Equal(1000, runner.VocabSize);
        Assert.Equal(512, runner.ContextLength); // genai_config.json beside the model
        Assert.StartsWith("onnxruntime 1.30.0", runner.Name);
        int n = 32, v = runner.VocabSize;
        var tokens = Tokens(n, v);
        var all = Enumerable.Range(0, n).ToArray();

        var full = new float[n * v];
        runner.Evaluate(tokens, 0, all, full);
        Assert.True(runner.LastRunTime > TimeSpan.Zero);
        Assert.All(full, x => Assert.True(float.IsFinite(x)));
        // Rows must differ between positions, or the comparison below would prove nothing.
        Assert.NotEqual(full.AsSpan(0, v).ToArray(), full.AsSpan(v, v).ToArray());

        runner.Reset();
        var stepped = new float[n * v];
        for (int i = 0; i < n; i++)
            runner.Evaluate(tokens.AsSpan(i, 1), i, [0], stepped.AsSpan(i * v, v));
        float maxStep = MaxAbsDiff(full, stepped);

        runner.Reset();
        var chunked = new float[n * v];
        runner.Evaluate(tokens.AsSpan(0, 5), 0, [0, 1, 2, 3, 4], chunked.AsSpan(0, 5 * v));
        runner.Evaluate(tokens.AsSpan(5), 5, Enumerable.Range(0, n - 5).ToArray(), chunked.AsSpan(5 * v));
        float maxChunk = MaxAbsDiff(full, chunked);
        output.WriteLine($"max |full - stepped| = {maxStep:G3}, max |full - chunked| = {maxChunk:G3}");
        Assert.True(maxStep <= KvSelfConsistency, $"step-by-step logits differ from full-sequence logits by {maxStep}");
        Assert.True(maxChunk <= KvSelfConsistency, $"chunked logits differ from full-sequence logits by {maxChunk}");

        // Selected positions come back in order.
        runner.Reset();
        var some = new float[2 * v];
        runner.Evaluate(tokens, 0, [3, 30], some);
        Assert.Equal(full.AsSpan(3 * v, v).ToArray(), some.AsSpan(0, v).ToArray());
        Assert.Equal(full.AsSpan(30 * v, v).ToArray(), some.AsSpan(v, v).ToArray());

        // Contract violations are rejected before any native call.
        Assert.Throws<ArgumentException>(() => runner.Evaluate(tokens.AsSpan(0, 1), 5, [0], new float[v]));
        Assert.Throws<ArgumentException>(() => runner.Evaluate([v], n, [0], new float[v]));
        Assert.Throws<ArgumentException>(() => runner.Evaluate(tokens.AsSpan(0, 2), n, [1, 0], new float[2 * v]));
        Assert.Throws<ArgumentException>(() => runner.Evaluate(tokens.AsSpan(0, 2), n, [0], new float[2 * v]));
    }

    private static float MaxAbsDiff(float[] a, float[] b)
    {
        float max = 0;
        for (int i = 0; i < a.Length; i++) max = Math.Max(max, Math.Abs(a[i] - b[i]));
        return max;
    }

    [OnnxRuntimeFact(SileroV5)]
    public void Silero_vad_v5_runs_on_512_samples_with_its_state()
    {
        using var session = OrtSession.FromFile(SharedData.Require(SileroV5));
        var audio = Chirp(512);
        var state = new float[2 * 1 * 128];
        for (int chunk = 0; chunk < 3; chunk++)
        {
            using var input = OrtValue.CreateTensor(audio, [1, 512]);
            using var stateIn = OrtValue.CreateTensor(state, [2, 1, 128]);
            using var sr = OrtValue.CreateTensor(new long[] { 16000 }, []);
            using var result = session.Run(("input", input), ("state", stateIn), ("sr", sr));
            var p = result["output"];
            Assert.Equal([1L, 1L], p.Shape);
            float probability = p.GetTensorData<float>()[0];
            Assert.InRange(probability, 0f, 1f);
            var next = result["stateN"];
            Assert.Equal([2L, 1L, 128L], next.Shape);
            var nextState = next.GetTensorData<float>().ToArray();
            Assert.All(nextState, x => Assert.True(float.IsFinite(x)));
            // The recurrent state must move once it has seen audio.
            Assert.NotEqual(state, nextState);
            state = nextState;
            output.WriteLine($"silero v5 chunk {chunk}: p(speech) = {probability:F4}");
        }
    }

    [OnnxRuntimeFact(SileroLegacy)]
    public void Silero_vad_legacy_runs_on_512_samples_with_its_state()
    {
        using var session = OrtSession.FromFile(SharedData.Require(SileroLegacy));
        Assert.Equal(["input", "sr", "h", "c"], session.Inputs.Select(i => i.Name));
        Assert.Equal(["batch", "sequence"], session.Inputs[0].SymbolicShape);
        using var input = OrtValue.CreateTensor(Chirp(512), [1, 512]);
        using var sr = OrtValue.CreateTensor(new long[] { 16000 }, []);
        using var h = OrtValue.CreateTensor(new float[2 * 64], [2, 1, 64]);
        using var c = OrtValue.CreateTensor(new float[2 * 64], [2, 1, 64]);
        using var result = session.Run(("input", input), ("sr", sr), ("h", h), ("c", c));
        Assert.Equal(["output", "hn", "cn"], result.Names);
        Assert.InRange(result["output"].GetTensorData<float>()[0], 0f, 1f);
        Assert.Equal([2L, 1L, 64L], result["hn"].Shape);
        Assert.Equal([2L, 1L, 64L], result["cn"].Shape);
        Assert.Contains(result["hn"].GetTensorData<float>().ToArray(), x => x != 0f);
    }

    [OnnxRuntimeFact(SileroLegacy)]
    public void A_real_model_rewritten_through_the_projects_onnx_schema_runs_identically()
    {
        var path = SharedData.Require(SileroLegacy);
        var original = File.ReadAllBytes(path);
        var parsed = EdgeQuant.Formats.Onnx.Proto.ModelProto.Parser.ParseFrom(original);
        Assert.NotEmpty(parsed.Graph.Node);
        Assert.NotEmpty(parsed.Graph.Initializer);
        var rewritten = Google.Protobuf.MessageExtensions.ToByteArray(parsed);

        float[] Run(byte[] model)
        {
            using var session = OrtSession.FromBytes(model, new OrtSessionSettings { IntraOpThreads = 1 });
            using var input = OrtValue.CreateTensor(Chirp(512), [1, 512]);
            using var sr = OrtValue.CreateTensor(new long[] { 16000 }, []);
            using var h = OrtValue.CreateTensor(new float[2 * 64], [2, 1, 64]);
            using var c = OrtValue.CreateTensor(new float[2 * 64], [2, 1, 64]);
            using var result = session.Run(("input", input), ("sr", sr), ("h", h), ("c", c));
            return result.SelectMany(v => v.GetTensorData<float>().ToArray()).ToArray();
        }

        Assert.Equal(Run(original), Run(rewritten));
    }

    /// <summary>A deterministic dummy signal (a rising tone), so the VAD sees non-silent input.</summary>
    private static float[] Chirp(int n) =>
        Enumerable.Range(0, n).Select(i => 0.3f * MathF.Sin(2 * MathF.PI * (200f + i) * i / 16000f)).ToArray();
}
