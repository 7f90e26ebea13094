using EdgeQuant.Core.Errors;
using EdgeQuant.Runtimes;
using EdgeQuant.Verification.Accuracy;
using EdgeQuant.Verification.Reference;
using EdgeQuant.Verification.Tests.Reference;

namespace EdgeQuant.Verification.Tests.Accuracy;

/// <summary>The chunk protocol of <see cref="DriftEvaluator"/> with a scripted runner: what it feeds, what it asks for, what it refuses.</summary>
public class DriftEvaluatorTests
{
    /// <summary>Returns the synthetic candidate's logits chunk by chunk and records every call.</summary>
    private sealed class ScriptedRunner(RefTestData.Synthetic s, int vocab, int context) : ILogitsRunner
    {
        private int _chunk = -1;
        public List<int[]> Fed { get; } = [];
        public List<int[]> Asked { get; } = [];
        public int Resets { get; private set; }
        public string Name => "scripted";
        public int VocabSize => vocab;
        public int ContextLength => context;
        public TimeSpan LastRunTime => TimeSpan.Zero;

        public void Evaluate(ReadOnlySpan<int> tokens, int startPos, ReadOnlySpan<int> outputPositions, Span<float> logits)
        {
            Assert.Equal(0, startPos);
            Fed.Add(tokens.ToArray());
            Asked.Add(outputPositions.ToArray());
            _chunk++;
            for (int k = 0; k < outputPositions.Length; k++) s.CandLogits[_chunk * outputPositions.Length + k].CopyTo(logits.Slice(k * vocab, vocab));
        }

        public void Reset() => Resets++;
        public void Dispose() { }
    }

    [Fact]
    public void Each_chunk_starts_from_an_empty_cache_with_BOS_and_asks_for_the_second_half()
    {
        var s = RefTestData.Make(vocab: 90, nCtx: 32, nChunks: 8, topK: null, seed: 21, bos: 5);
        using var f = ReferenceFile.FromBytes(s.Bytes, "r.eqref");
        var runner = new ScriptedRunner(s, 90, 32);
        var progress = new List<DriftProgress>();
        var report = DriftEvaluator.Evaluate(runner, f, progress: new Progress(progress));
        Assert.Equal(8, runner.Resets);
        for (int c = 0; c < 8; c++)
        {
            var expected = s.Tokens.AsSpan(c * 32, 32).ToArray();
            expected[0] = 5;
            Assert.Equal(expected, runner.Fed[c]);
            Assert.Equal(Enumerable.Range(16, 15), runner.Asked[c]);
        }
        Assert.Equal(8 * 15, report.NScored);
        Assert.Equal(Enumerable.Range(1, 8), progress.Select(p => p.ChunksDone));
        Assert.Equal(report.KldMean, progress[^1].MeanKld, 12);

        // The same figures as the accumulator fed directly.
        var acc = new KldAccumulator();
        for (int r = 0; r < s.CandLogits.Length; r++) acc.AddFull(s.CandLogits[r], s.Targets[r], f.Full(r / 15, r % 15));
        Assert.Equal(acc.Finish(8, 32, 15).KldMean, report.KldMean);
    }

    [Fact]
    public void Fewer_chunks_can_be_asked_for_and_must_still_reach_100_positions()
    {
        var s = RefTestData.Make(vocab: 60, nCtx: 32, nChunks: 8, topK: null, seed: 22);
        using var f = ReferenceFile.FromBytes(s.Bytes, "r.eqref");
        Assert.Equal(7 * 15, DriftEvaluator.Evaluate(new ScriptedRunner(s, 60, 32), f, maxChunks: 7).NScored);
        var e = Assert.Throws<BadInputException>(() => DriftEvaluator.Evaluate(new ScriptedRunner(s, 60, 32), f, maxChunks: 6));
        Assert.Contains("only 90 scored tokens", e.Message);
    }

    [Fact]
    public void A_different_vocabulary_or_a_short_context_is_bad_input()
    {
        var s = RefTestData.Make(vocab: 60, nCtx: 32, nChunks: 8, topK: null, seed: 23);
        using var f = ReferenceFile.FromBytes(s.Bytes, "r.eqref");
        Assert.Contains("vocabulary of 60", Assert.Throws<BadInputException>(() => DriftEvaluator.Evaluate(new ScriptedRunner(s, 61, 32), f)).Message);
        Assert.Contains("context of 16", Assert.Throws<BadInputException>(() => DriftEvaluator.Evaluate(new ScriptedRunner(s, 60, 16), f)).Message);
    }

    [Fact]
    public void A_NaN_logit_from_the_candidate_is_named_rather_than_averaged()
    {
        var s = RefTestData.Make(vocab: 60, nCtx: 32, nChunks: 8, topK: null, seed: 24);
        s.CandLogits[20][7] = float.NaN;
        using var f = ReferenceFile.FromBytes(s.Bytes, "r.eqref");
        var e = Assert.Throws<InternalFailureException>(() => DriftEvaluator.Evaluate(new ScriptedRunner(s, 60, 32), f));
        Assert.Contains("chunk 1, position 21", e.Message);
    }

    private sealed class Progress(List<DriftProgress> sink) : IProgress<DriftProgress>
    {
        public void Report(DriftProgress value) => sink.Add(value);
    }
}
