using EdgeQuant.Core.Errors;
using EdgeQuant.Runtimes.OnnxRuntime;
using EdgeQuant.Testing;

namespace EdgeQuant.Runtimes.Tests.OnnxRuntime;

/// <summary>
/// The ORT runner against synthetic decoders whose logits reveal what they were fed, so ids, positions, the
/// attention mask length and the KV cache hand-over are each checked against values computed here.
/// </summary>
public sealed class OrtLogitsRunnerTests
{
    private const int Vocab = 64;

    public OrtLogitsRunnerTests() => RuntimeAvailability.Configure();

    [OnnxRuntimeFact]
    public void Modern_signature_gets_ids_positions_mask_and_cache_right_across_chunks()
    {
        using var dir = new TempDir();
        var path = dir.File("probe.onnx");
        File.WriteAllBytes(path, OrtTestModels.ProbeDecoder(Vocab));
        using var runner = OrtLogitsRunner.Open(path, new OrtLogitsRunnerOptions { ContextLength = Vocab });
        Assert.True(runner.HasKvCache);
        Assert.Equal(Vocab, runner.VocabSize);
        Assert.Equal(Vocab, runner.ContextLength);

        int[] tokens = [5, 17, 3, 60, 0, 42, 42, 9, 1];
        int[][] chunks = [[..tokens[..3]], [..tokens[3..4]], [..tokens[4..]]];
        int start = 0;
        foreach (var chunk in chunks)
        {
            var positions = Enumerable.Range(0, chunk.Length).ToArray();
            var logits = new float[chunk.Length * Vocab];
            runner.Evaluate(chunk, start, positions, logits);
            int pastSum = tokens[..start].Sum();
            for (int s = 0; s < chunk.Length; s++)
            {
                var expected = new float[Vocab];
                expected[chunk[s]] += 1;
                expected[start + s] += 10;
                expected[start + chunk.Length - 1] += 100;
                expected[pastSum % Vocab] += 1000;
                Assert.Equal(expected, logits.AsSpan(s * Vocab, Vocab).ToArray());
            }
            start += chunk.Length;
        }

        // After Reset the cache is empty again: positions restart and the past sum is 0.
        runner.Reset();
        var again = new float[Vocab];
        runner.Evaluate([7], 0, [0], again);
        var fresh = new float[Vocab];
        fresh[7] += 1;
        fresh[0] += 10 + 100 + 1000;
        Assert.Equal(fresh, again);
        Assert.Throws<ArgumentException>(() => runner.Evaluate(new int[Vocab], 1, [0], new float[Vocab]));
    }

    [OnnxRuntimeFact]
    public void A_model_without_cache_is_rerun_over_the_history()
    {
        using var session = OrtSession.FromBytes(OrtTestModels.NoCacheDecoder(Vocab));
        using var runner = new OrtLogitsRunner(session, new OrtLogitsRunnerOptions { ContextLength = 16 });
        Assert.False(runner.HasKvCache);
        Assert.Equal(16, runner.ContextLength);
        runner.Evaluate([4, 8], 0, [1], new float[Vocab]);
        var logits = new float[2 * Vocab];
        runner.Evaluate([15, 16, 23], 2, [0, 2], logits);
        Assert.Equal(1f, logits[15]);
        Assert.Equal(1f, logits[Vocab + 23]);
        Assert.Equal(2f, logits.Sum());
        Assert.Throws<ArgumentException>(() => runner.Evaluate(new int[12], 5, [0], new float[Vocab]));
    }

    [OnnxRuntimeFact("onnx/silero-vad/silero_vad_v5.onnx")]
    public void A_model_that_is_not_a_decoder_is_rejected_naming_the_file()
    {
        var path = SharedData.Require("onnx/silero-vad/silero_vad_v5.onnx");
        var e = Assert.Throws<BadInputException>(() => OrtLogitsRunner.Open(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("input_ids", e.Message);
    }
}
