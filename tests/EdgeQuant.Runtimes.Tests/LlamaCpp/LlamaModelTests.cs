using EdgeQuant.Core.Errors;
using EdgeQuant.Runtimes.LlamaCpp;
using EdgeQuant.Runtimes.LlamaCpp.Native;
using EdgeQuant.Testing;

namespace EdgeQuant.Runtimes.Tests.LlamaCpp;

public sealed class LlamaModelTests
{
    // From ../shared/data/REFERENCE.md ("Greedy continuation (F32 KV cache)"), measured with the real llama.cpp.
    private static readonly int[] OnceUponATime = [1, 403, 407, 261, 378];

    private static readonly int[] GreedyReference =
    [
        1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401, 396, 267, 337, 410, 408, 419,
        292, 411, 322, 265, 282, 295, 433, 426, 385, 328, 432, 358, 394, 261, 370, 432, 352, 266, 268, 388, 426, 338, 391,
        266, 267, 337, 335, 312, 432, 398, 312, 286, 267, 414, 270, 333, 415, 426, 13, 438, 310, 439, 419, 357, 336, 432,
        313, 438, 310, 432, 278, 316, 439, 419, 298, 414, 267, 265, 282, 295, 433, 426, 436, 317, 286, 296, 418, 269, 279,
        292, 416, 439, 413, 409, 416, 327, 263, 415, 294, 267, 400,
    ];

    [LlamaCppFact(LlamaTestData.Stories260K)]
    public void Stories260K_loads_with_its_hyperparameters()
    {
        using var model = LlamaModel.Load(SharedData.Require(LlamaTestData.Stories260K));
        // The shared data README documents the model: dim 64, 5 layers, 8 heads / 4 KV heads, vocab 512, SentencePiece.
        Assert.Equal(512, model.VocabSize);
        Assert.Equal(64, model.EmbeddingLength);
        Assert.Equal(5, model.LayerCount);
        Assert.Equal(8, model.HeadCount);
        Assert.Equal(4, model.KvHeadCount);
        Assert.Equal(LlamaVocabType.Spm, model.VocabType);
        Assert.True(model.AddsBos);
        Assert.Equal(1, model.Bos);
        Assert.Equal("llama", model.GetMetadata("general.architecture"));
        Assert.Null(model.GetMetadata("no.such.key"));
        Assert.StartsWith("llama", model.Description, StringComparison.Ordinal);
        Assert.Equal(model.ParameterCount * 4, model.SizeBytes);
    }

    [LlamaCppFact(LlamaTestData.Stories260K)]
    public void Tokenizes_and_detokenizes_like_llama_cpp()
    {
        using var model = LlamaModel.Load(SharedData.Require(LlamaTestData.Stories260K), new LlamaModelOptions { VocabOnly = true });
        Assert.Equal(OnceUponATime, model.Tokenize("Once upon a time"));
        Assert.Equal(OnceUponATime[1..], model.Tokenize("Once upon a time", addSpecial: false));
        // SentencePiece's space prefix comes back as a leading space; BOS is dropped or rendered as asked.
        Assert.Equal(" Once upon a time", model.Detokenize(OnceUponATime, removeSpecial: true));
        Assert.Equal("<s> Once upon a time", model.Detokenize(OnceUponATime, unparseSpecial: true));
        var pieces = string.Concat(OnceUponATime[1..].Select(t => System.Text.Encoding.UTF8.GetString(model.TokenToPiece(t))));
        Assert.Equal(" Once upon a time", pieces);
        Assert.Throws<ArgumentOutOfRangeException>(() => model.TokenToPiece(512));
    }

    [LlamaCppFact(LlamaTestData.Stories260K)]
    public void Greedy_continuation_matches_the_reference_token_ids()
    {
        using var model = LlamaModel.Load(SharedData.Require(LlamaTestData.Stories260K));
        using var ctx = model.CreateContext(LlamaContextOptions.FullPrecision(256, threads: 1));
        var generated = new List<int>(OnceUponATime);
        ctx.Decode(OnceUponATime, 0, [OnceUponATime.Length - 1]);
        var logits = ctx.GetLogits(OnceUponATime.Length - 1);
        while (generated.Count < GreedyReference.Length)
        {
            int next = ArgMax(logits);
            generated.Add(next);
            if (generated.Count == GreedyReference.Length) break;
            ctx.Decode([next], generated.Count - 1, [0]);
            logits = ctx.GetLogits(0);
        }
        Assert.Equal(GreedyReference, generated);
    }

    [LlamaCppFact(LlamaTestData.Stories260K)]
    public void Disposing_the_model_while_a_context_lives_keeps_the_context_working()
    {
        var model = LlamaModel.Load(SharedData.Require(LlamaTestData.Stories260K));
        var ctx = model.CreateContext(LlamaContextOptions.FullPrecision(64, threads: 1));
        ctx.Decode(OnceUponATime, 0, [4]);
        var before = ctx.GetLogits(4).ToArray();

        model.Dispose(); // only marks the model closed: the context still holds it
        Assert.Throws<ObjectDisposedException>(() => model.Tokenize("x"));
        Assert.Throws<ObjectDisposedException>(() => model.CreateContext());

        ctx.ClearMemory();
        ctx.Decode(OnceUponATime, 0, [4]);
        Assert.Equal(before, ctx.GetLogits(4).ToArray());
        ctx.Dispose(); // frees the context, then the model
        ctx.Dispose();
        model.Dispose();
        Assert.Throws<ObjectDisposedException>(() => ctx.ClearMemory());
    }

    [LlamaCppFact(LlamaTestData.Stories260K)]
    public void Decode_rejects_batches_that_do_not_fit()
    {
        using var model = LlamaModel.Load(SharedData.Require(LlamaTestData.Stories260K));
        using var ctx = model.CreateContext(new LlamaContextOptions { ContextSize = 256, BatchSize = 8, Threads = 1 });
        Assert.Equal(256, ctx.ContextSize);
        Assert.Equal(8, ctx.BatchSize);
        Assert.Throws<ArgumentException>(() => ctx.Decode(new int[9], 0, []));
        Assert.Throws<ArgumentException>(() => ctx.Decode(new int[4], 254, []));
        Assert.Throws<ArgumentOutOfRangeException>(() => ctx.Decode([1, 512], 0, []));
        Assert.Throws<ArgumentOutOfRangeException>(() => ctx.Decode([1, 2], 0, [2]));
        ctx.Decode([1, 2], 0, [1]);
        Assert.Throws<ArgumentException>(() => ctx.GetLogits(0)); // not an output of the last decode
    }

    [LlamaCppFact]
    public void Loading_a_file_that_is_not_gguf_names_the_file()
    {
        using var dir = new TempDir();
        var bogus = dir.File("bogus.gguf");
        File.WriteAllText(bogus, "this is not a gguf file at all");
        var e = Assert.Throws<BadInputException>(() => LlamaModel.Load(bogus));
        Assert.Contains(bogus, e.Message, StringComparison.Ordinal);
        Assert.Throws<BadInputException>(() => LlamaModel.Load(dir.File("missing.gguf")));
    }

    [LlamaCppFact(LlamaTestData.Stories260K)]
    public void Log_lines_reach_the_sink_and_none_when_it_is_unset()
    {
        var lines = new List<(GgmlLogLevel Level, string Text)>();
        var previous = LlamaLog.Sink;
        try
        {
            LlamaLog.Sink = (level, text) => { lock (lines) lines.Add((level, text)); };
            using (LlamaModel.Load(SharedData.Require(LlamaTestData.Stories260K))) { }
            lock (lines)
            {
                Assert.Contains(lines, l => l.Text.Contains("llama_model_loader", StringComparison.Ordinal));
                Assert.All(lines, l => Assert.DoesNotContain('\n', l.Text));
            }
            LlamaLog.Sink = null;
            int seen;
            lock (lines) seen = lines.Count;
            using (LlamaModel.Load(SharedData.Require(LlamaTestData.Stories260K))) { }
            lock (lines) Assert.Equal(seen, lines.Count);
        }
        finally
        {
            LlamaLog.Sink = previous;
        }
    }

    [LlamaCppFact(LlamaTestData.Stories260K)]
    public void Load_progress_is_reported_and_cancellation_aborts()
    {
        var reports = new List<float>();
        var progress = new SynchronousProgress<float>(reports.Add);
        using (LlamaModel.Load(SharedData.Require(LlamaTestData.Stories260K), progress: progress)) { }
        Assert.NotEmpty(reports);
        Assert.Equal(1f, reports[^1]);

        using var cts = new CancellationTokenSource();
        cts.Cancel();
        Assert.ThrowsAny<OperationCanceledException>(() =>
            LlamaModel.Load(SharedData.Require(LlamaTestData.Stories260K), cancellationToken: cts.Token));
    }

    [LlamaCppFact]
    public void Runtime_info_names_the_cpu_variant_ggml_loaded()
    {
        var info = LlamaLibrary.EnsureInitialized();
        Assert.NotNull(info.CpuVariant);
        Assert.True(File.Exists(info.CpuVariantPath), info.CpuVariantPath);
        Assert.Contains(info.Devices, d => d.StartsWith("CPU", StringComparison.Ordinal));
        Assert.False(string.IsNullOrWhiteSpace(info.GgmlVersion));
        Assert.Contains("CPU", info.SystemInfo, StringComparison.Ordinal);
    }

    internal static int ArgMax(ReadOnlySpan<float> v)
    {
        int best = 0;
        for (int i = 1; i < v.Length; i++) if (v[i] > v[best]) best = i;
        return best;
    }

    private sealed class SynchronousProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}
