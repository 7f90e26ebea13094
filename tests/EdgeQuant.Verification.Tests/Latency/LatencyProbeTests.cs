using EdgeQuant.Core.Errors;
using EdgeQuant.Runtimes.LlamaCpp;
using EdgeQuant.Testing;
using EdgeQuant.Verification.Latency;
using Xunit.Abstractions;

namespace EdgeQuant.Verification.Tests.Latency;

public sealed class LatencyProbeTests(ITestOutputHelper output)
{
    private const string Stories = "models/stories260K/stories260K.gguf";
    private const string Gpt2 = "onnx/tiny-random-gpt2/past.onnx";

    /// <summary>
    /// Figures derived from the samples must agree with the samples to rounding: these are identities of the
    /// definitions, so the only slack is floating-point summation order (1e-9 relative).
    /// </summary>
    private const double IdentityTolerance = 1e-9;

    [LatencyLlamaCppFact(Stories)]
    public void LlamaCpp_stories260K_one_thread_gives_consistent_figures_and_llama_cpp_greedy_tokens()
    {
        LatencyTestRuntimes.Configure();
        var path = SharedData.Require(Stories);
        int[] prompt;
        using (var vocab = LlamaModel.Load(path, new LlamaModelOptions { VocabOnly = true }))
            prompt = vocab.Tokenize("Once upon a time", addSpecial: true);
        var options = new LatencyOptions { ContextSize = 256, DecodeTokens = 48, PromptTokens = prompt, Threads = 1, PrefillRuns = 2 };

        var f = LatencyProbe.Measure(path, RuntimeKind.Auto, options);
        output.WriteLine($"{f.RuntimeName}: load {f.LoadMs:F1} ms, cold prefill {f.ColdPrefillMs:F2} ms, prefill {f.PrefillTokensPerSecond:F0} tok/s, " +
            $"ttft {f.TimeToFirstTokenMs:F2} ms, decode {f.DecodeTokensPerSecond:F0} tok/s (p50 {f.DecodeP50Ms:F3} p95 {f.DecodeP95Ms:F3} p99 {f.DecodeP99Ms:F3} ms), " +
            $"peak RSS {f.PeakRssBytes / 1048576.0:F1} MiB ({f.PeakRssScope}), cpu {f.CpuModel}");

        Assert.Equal(RuntimeKind.LlamaCpp, f.Runtime);
        Assert.StartsWith("llama.cpp", f.RuntimeName);
        Assert.Equal(1, f.Threads);
        Assert.Equal(new FileInfo(path).Length, f.ModelFileBytes);
        Assert.Equal(256, f.ContextSize);
        Assert.True(f.RuntimeContextLength >= 256);
        Assert.Equal(prompt.Length, f.PromptTokens);
        Assert.Equal(256, f.PrefillTokens);

        Assert.Equal(48, f.DecodeTokens);
        Assert.Equal(48, f.DecodeMs.Count);
        Assert.All(f.DecodeMs, ms => Assert.True(ms > 0 && double.IsFinite(ms)));
        double sumMs = f.DecodeMs.Sum();
        AssertRel(f.DecodeMs.Count / (sumMs / 1000.0), f.DecodeTokensPerSecond);
        AssertRel(1000.0 / f.DecodeMeanMs, f.DecodeTokensPerSecond);
        AssertRel(sumMs / 48, f.DecodeMeanMs);
        var sorted = f.DecodeMs.Order().ToArray();
        AssertRel((sorted[23] + sorted[24]) / 2, f.DecodeP50Ms); // even count: the mean of the two middle values
        Assert.Equal(sorted[0], f.DecodeMinMs);
        Assert.Equal(sorted[^1], f.DecodeMaxMs);
        Assert.True(f.DecodeMinMs <= f.DecodeP50Ms && f.DecodeP50Ms <= f.DecodeP95Ms && f.DecodeP95Ms <= f.DecodeP99Ms && f.DecodeP99Ms <= f.DecodeMaxMs);

        Assert.Equal(2, f.PrefillMs.Count);
        AssertRel((f.PrefillMs[0] + f.PrefillMs[1]) / 2, f.PrefillMedianMs);
        AssertRel(256 / (f.PrefillMedianMs / 1000.0), f.PrefillTokensPerSecond);
        Assert.True(f.LoadMs > 0 && f.ColdPrefillMs > 0 && f.TimeToFirstTokenMs > 0);

        Assert.NotNull(f.PeakRssBytes);
        Assert.Equal("probe", f.PeakRssScope);
        Assert.InRange(f.PeakRssBytes!.Value, 16L << 20, 16L << 30);
        Assert.True(f.PeakRssBytes >= ProcessMemory.CurrentRssBytes()! - (64L << 20), "the peak is at least about today's RSS");
        Assert.False(string.IsNullOrWhiteSpace(f.CpuModel));

        // The probe's greedy continuation is llama.cpp's: the same loop written here on the binding directly.
        Assert.Equal(GreedyWithLlamaCpp(path, prompt, 49), f.GeneratedTokens);

        var report = f.ToReport();
        Assert.Equal(f.DecodeTokensPerSecond, report.DecodeTps);
        Assert.Equal(f.DecodeP95Ms, report.TokenMsP95);
        Assert.Equal(f.TimeToFirstTokenMs, report.TtftMs);
        Assert.Equal(f.PeakRssBytes / 1048576.0, report.PeakRssMb);
        Assert.Equal(f.DecodeMs, report.TokenMs);
    }

    [LatencyLlamaCppFact(Stories)]
    public void Engine_on_the_same_gguf_generates_the_same_greedy_start_as_llama_cpp()
    {
        var path = SharedData.Require(Stories);
        int[] prompt = [1, 403, 407, 261, 378]; // "Once upon a time" (REFERENCE.md)
        var f = LatencyProbe.Measure(path, RuntimeKind.Engine, new LatencyOptions
        {
            ContextSize = 64, DecodeTokens = 16, PromptTokens = prompt, Threads = 1, PrefillRuns = 1, WarmupDecodeTokens = 2,
        });
        output.WriteLine($"{f.RuntimeName}: decode {f.DecodeTokensPerSecond:F0} tok/s, prefill {f.PrefillTokensPerSecond:F0} tok/s");
        Assert.Equal(RuntimeKind.Engine, f.Runtime);
        Assert.Equal(1, f.Threads);
        // REFERENCE.md's greedy ids after the prompt (llama.cpp, F32 KV cache), which the F32 engine reproduces.
        int[] expected = [432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401, 396, 267, 337, 410];
        Assert.Equal(expected, f.GeneratedTokens);
        AssertRel(1000.0 / f.DecodeMeanMs, f.DecodeTokensPerSecond);
    }

    [LatencyOnnxRuntimeFact(Gpt2)]
    public void OnnxRuntime_tiny_gpt2_synthetic_prompt_is_seeded_and_figures_are_consistent()
    {
        var path = SharedData.Require(Gpt2);
        var options = new LatencyOptions { ContextSize = 64, DecodeTokens = 20, Threads = 1, PrefillRuns = 3, Seed = 7 };
        var a = LatencyProbe.Measure(path, RuntimeKind.Auto, options);
        var b = LatencyProbe.Measure(path, RuntimeKind.OnnxRuntime, options);
        output.WriteLine($"{a.RuntimeName}: prefill {a.PrefillTokensPerSecond:F0} tok/s, decode {a.DecodeTokensPerSecond:F0} tok/s, ttft {a.TimeToFirstTokenMs:F2} ms");
        Assert.Equal(RuntimeKind.OnnxRuntime, a.Runtime);
        Assert.StartsWith("onnxruntime", a.RuntimeName);
        Assert.Equal(32, a.PromptTokens); // min(n_ctx / 2, n_ctx - decode)
        Assert.Equal(a.GeneratedTokens, b.GeneratedTokens); // same seed, greedy: the same run
        Assert.Equal(21, a.GeneratedTokens.Count);
        Assert.All(a.GeneratedTokens, t => Assert.InRange(t, 0, 999));
        AssertRel(LatencyStatistics.Median(a.PrefillMs), a.PrefillMedianMs);
        Assert.Equal(a.PrefillMs.Order().ElementAt(1), a.PrefillMedianMs); // odd count: the middle sample itself
        AssertRel(1000.0 / a.DecodeMeanMs, a.DecodeTokensPerSecond);
        Assert.Equal(new FileInfo(path).Length, a.ModelFileBytes);
    }

    [LatencyLlamaCppFact(Stories)]
    public void Bad_requests_are_bad_input()
    {
        var path = SharedData.Require(Stories);
        var tooLong = new LatencyOptions { ContextSize = 64, DecodeTokens = 60, PromptLength = 8 };
        Assert.Contains("does not fit the context of 64", Assert.Throws<BadInputException>(() => LatencyProbe.Measure(path, RuntimeKind.LlamaCpp, tooLong)).Message);
        var outside = new LatencyOptions { ContextSize = 64, DecodeTokens = 4, PromptTokens = [1, 5000], Threads = 1 };
        Assert.Contains("outside the vocabulary of 512", Assert.Throws<BadInputException>(() => LatencyProbe.Measure(path, RuntimeKind.LlamaCpp, outside)).Message);
        Assert.Throws<BadInputException>(() => LatencyProbe.Measure(path + ".missing", RuntimeKind.Auto, new LatencyOptions()));
        Assert.Throws<BadInputException>(() => LatencyProbe.Measure(path, RuntimeKind.Auto, new LatencyOptions { Threads = 0 }));
        using var dir = new TempDir();
        var notGguf = dir.File("model.gguf");
        File.WriteAllText(notGguf, "not a gguf");
        Assert.Contains("not one", Assert.Throws<BadInputException>(() => LatencyProbe.Measure(notGguf, RuntimeKind.LlamaCpp, new LatencyOptions { ContextSize = 64, DecodeTokens = 4 })).Message);
    }

    [Fact]
    public void Percentiles_interpolate_between_closest_ranks()
    {
        // Worked by hand from the definition h = (n-1)p/100: [1,2,3,4] -> p50 h=1.5 -> 2.5; p95 h=2.85 -> 3.85.
        double[] x = [4, 1, 3, 2];
        Assert.Equal(2.5, LatencyStatistics.Percentile(x, 50), 12);
        Assert.Equal(3.85, LatencyStatistics.Percentile(x, 95), 12);
        Assert.Equal(1, LatencyStatistics.Percentile(x, 0));
        Assert.Equal(4, LatencyStatistics.Percentile(x, 100));
        Assert.Equal(7, LatencyStatistics.Percentile([7.0], 99));
        Assert.Throws<ArgumentException>(() => LatencyStatistics.Percentile([], 50));
        Assert.Throws<ArgumentOutOfRangeException>(() => LatencyStatistics.Percentile(x, double.NaN));
    }

    [Fact]
    public void Status_fields_parse_in_kB()
    {
        const string status = "Name:\tdotnet\nVmPeak:\t 3000 kB\nVmHWM:\t  123456 kB\nVmRSS:\t   654 kB\n";
        Assert.Equal(123456, ProcessMemory.ParseStatusKb(status, "VmHWM"));
        Assert.Equal(654, ProcessMemory.ParseStatusKb(status, "VmRSS"));
        Assert.Null(ProcessMemory.ParseStatusKb(status, "VmSwap"));
        Assert.Null(ProcessMemory.ParseStatusKb("VmHWM: lots kB", "VmHWM"));
        if (OperatingSystem.IsLinux())
        {
            // One snapshot: the kernel reports VmHWM as at least VmRSS at the moment of reading.
            var now = File.ReadAllText("/proc/self/status");
            Assert.True(ProcessMemory.ParseStatusKb(now, "VmHWM") >= ProcessMemory.ParseStatusKb(now, "VmRSS"));
            Assert.NotNull(ProcessMemory.PeakRssBytes());
        }
    }

    private static int[] GreedyWithLlamaCpp(string path, int[] prompt, int count)
    {
        using var model = LlamaModel.Load(path);
        using var ctx = model.CreateContext(new LlamaContextOptions { ContextSize = 256, Threads = 1 });
        var ids = new List<int>();
        var logitsIndex = new[] { prompt.Length - 1 };
        ctx.Decode(prompt, 0, logitsIndex);
        int pos = prompt.Length;
        int last = Best(ctx.GetLogits(prompt.Length - 1));
        ids.Add(last);
        while (ids.Count < count)
        {
            ctx.Decode([last], pos++, [0]);
            last = Best(ctx.GetLogits(0));
            ids.Add(last);
        }
        return ids.ToArray();

        static int Best(ReadOnlySpan<float> l)
        {
            int b = 0;
            for (int i = 1; i < l.Length; i++) if (l[i] > l[b]) b = i;
            return b;
        }
    }

    private static void AssertRel(double expected, double? actual)
    {
        Assert.NotNull(actual);
        Assert.True(Math.Abs(expected - actual!.Value) <= IdentityTolerance * Math.Abs(expected),
            $"expected {expected:R}, got {actual:R}");
    }
}
