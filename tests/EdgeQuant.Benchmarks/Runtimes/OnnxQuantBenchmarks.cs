using System.Diagnostics;
using EdgeQuant.Compression.OnnxQuant;
using EdgeQuant.Export.Onnx;
using EdgeQuant.Export.Onnx.Quant;
using EdgeQuant.Fixtures;
using EdgeQuant.Models;
using EdgeQuant.Runtimes;
using EdgeQuant.Runtimes.OnnxRuntime;

namespace EdgeQuant.Benchmarks.Runtimes;

/// <summary>
/// ONNX Runtime speed of the quantization schemes on a random-weight Llama of SmolLM-135M's shape (n_embd 576, 30
/// layers, 9 / 3 heads, FFN 1536, vocab 49152): the FP32 export and the int8-dynamic, int8-static (MinMax ranges from
/// a few sequences of the fixture's own random tokens) and int4-weight exports of the same model, each run by ORT with
/// 2 intra-op threads. Prefill: 512 tokens from an empty cache, logits of the last one (the graph computes the LM head
/// at every position regardless). Decode: 64 single-token steps through the KV cache after a 64-token prompt.
/// Contenders run round-robin so they share the background load; speed-ups are over FP32 of the same graph style
/// (standard attention in 4 query blocks, the default; fused GroupQueryAttention; standard attention in one block).
/// The int8 schemes are measured twice: with their default LM head (quantized by int8-dynamic, FP32 by int8-static)
/// and with the other choice, because the 49152 × 576 head is a fifth of the prefill FLOPs. The F32 GGUF input is generated once into
/// .cache/bench (540 MB; EDGEQUANT_BENCH_CACHE moves it); the ONNX folders are re-exported every run.
/// </summary>
public static class OnnxQuantBenchmarks
{
    private const int Threads = 2, PrefillTokens = 512, DecodePrompt = 64, DecodeSteps = 64, CalibSequences = 4, CalibLength = 256;

    public static void Run()
    {
        try { _ = OrtEnvironment.Version; }
        catch (RuntimeNotFoundException e)
        {
            Console.WriteLine($"skipped: {e.Message}");
            return;
        }
        string cache = Environment.GetEnvironmentVariable("EDGEQUANT_BENCH_CACHE") is { Length: > 0 } c ? c : Path.Combine(RepoRoot(), ".cache", "bench");
        var spec = FixtureSpec.Preset(FixtureArch.Llama, "smollm-135m") with { Seed = 7 };
        string folder = Path.Combine(cache, "smollm-135m-f32-seed7");
        string input = Path.Combine(folder, FixtureMaker.GgufDirName, FixtureMaker.GgufFileName);
        if (!File.Exists(input))
        {
            Console.WriteLine($"writing the SmolLM-135M-shape F32 input to {input} (once) ...");
            string partial = folder + ".partial";
            if (Directory.Exists(partial)) Directory.Delete(partial, recursive: true);
            FixtureMaker.Write(spec, partial, FixtureFormats.Gguf);
            if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
            Directory.Move(partial, folder);
        }
        string outRoot = Path.Combine(cache, "onnx-quant");
        if (Directory.Exists(outRoot)) Directory.Delete(outRoot, recursive: true);
        Directory.CreateDirectory(outRoot);

        var rng = new Random(17);
        var calib = Enumerable.Range(0, CalibSequences).Select(_ => Enumerable.Range(0, CalibLength).Select(_ => rng.Next(3, spec.Vocab)).ToArray()).ToList();
        var withHead = new LayerSelection(includeLmHead: true);
        var fp32Head = new LayerSelection(includeLmHead: false);
        var variants = new (string Label, OnnxQuantizeOptions? Options)[]
        {
            ("fp32", null),
            ("int8-dynamic", new OnnxQuantizeOptions { Scheme = OnnxQuantScheme.Int8Dynamic }),
            ("int8-dynamic fp32-head", new OnnxQuantizeOptions { Scheme = OnnxQuantScheme.Int8Dynamic, Dynamic = new Int8DynamicOptions { Layers = fp32Head } }),
            ("int8-static minmax", new OnnxQuantizeOptions { Scheme = OnnxQuantScheme.Int8Static, Calibration = calib }),
            ("int8-static +head", new OnnxQuantizeOptions { Scheme = OnnxQuantScheme.Int8Static, Calibration = calib, Static = new Int8StaticOptions { Layers = withHead } }),
            ("int4-weight b32", new OnnxQuantizeOptions { Scheme = OnnxQuantScheme.Int4Weight }),
            // The same graphs with attention as ORT's fused GroupQueryAttention (export --fused-attention): compared
            // with the fused FP32 graph, as a user choosing that graph style would compare them.
            ("fp32 gqa", null),
            ("int8-dynamic gqa", new OnnxQuantizeOptions { Scheme = OnnxQuantScheme.Int8Dynamic, FusedAttention = true }),
            ("int8-dynamic fp32-head gqa", new OnnxQuantizeOptions { Scheme = OnnxQuantScheme.Int8Dynamic, Dynamic = new Int8DynamicOptions { Layers = fp32Head }, FusedAttention = true }),
            ("int8-static gqa", new OnnxQuantizeOptions { Scheme = OnnxQuantScheme.Int8Static, Calibration = calib, FusedAttention = true }),
            ("int4-weight b32 gqa", new OnnxQuantizeOptions { Scheme = OnnxQuantScheme.Int4Weight, FusedAttention = true }),
            // Standard attention in one block (--attention-blocks 1, the graph before query blocks): the ratio it gives.
            ("fp32 1-block", null),
            ("int8-dynamic 1-block", new OnnxQuantizeOptions { Scheme = OnnxQuantScheme.Int8Dynamic, AttentionBlocks = 1 }),
        };

        // EDGEQUANT_BENCH_VARIANTS=label,label keeps only those variants (fp32 always stays: it is the baseline);
        // EDGEQUANT_BENCH_ORT_PROFILE=DIR writes ORT's per-operator profile of every run there (slows the runs).
        if (Environment.GetEnvironmentVariable("EDGEQUANT_BENCH_VARIANTS") is { Length: > 0 } only)
        {
            var keep = only.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).ToHashSet(StringComparer.Ordinal);
            variants = variants.Where(v => v.Label == "fp32" || keep.Contains(v.Label)).ToArray();
        }
        string? profileDir = Environment.GetEnvironmentVariable("EDGEQUANT_BENCH_ORT_PROFILE") is { Length: > 0 } pd ? Directory.CreateDirectory(pd).FullName : null;

        var runners = new List<(string Label, OrtLogitsRunner Runner, long Bytes)>();
        try
        {
            using (var model = ModelLoader.Load(input))
            {
                foreach (var (label, options) in variants)
                {
                    string dir = Path.Combine(outRoot, label.Replace(' ', '_').Replace("+", "plus"));
                    var sw = Stopwatch.StartNew();
                    string path;
                    try
                    {
                        if (options is null) path = OnnxExporter.Export(model, dir, new OnnxExportOptions
                        {
                            FusedAttention = label.EndsWith(" gqa", StringComparison.Ordinal),
                            AttentionBlocks = label.EndsWith(" 1-block", StringComparison.Ordinal) ? 1 : OnnxExportOptions.DefaultAttentionBlocks,
                        }).ModelPath;
                        else path = OnnxQuantizer.Quantize(model, dir, options with { Threads = Environment.ProcessorCount }).ModelPath;
                    }
                    catch (Exception e) when (e is not OutOfMemoryException)
                    {
                        Console.WriteLine($"{label,-20} export FAILED: {e.GetType().Name}: {e.Message}");
                        continue;
                    }
                    long bytes = Directory.EnumerateFiles(dir, "model.onnx*").Sum(f => new FileInfo(f).Length);
                    Console.WriteLine($"{label,-20} exported in {sw.Elapsed.TotalSeconds,5:F1} s, model {bytes / 1e6,7:F1} MB");
                    runners.Add((label, OrtLogitsRunner.Open(path, new OrtLogitsRunnerOptions { Session = new OrtSessionSettings
                    {
                        IntraOpThreads = Threads, InterOpThreads = 1,
                        ProfilePrefix = profileDir is null ? null : Path.Combine(profileDir, Path.GetFileName(dir)),
                    } }), bytes));
                }
            }
            if (runners.Count == 0 || runners[0].Label != "fp32") throw new InvalidOperationException("the FP32 export failed; no baseline");

            var tokens = Enumerable.Range(0, PrefillTokens).Select(i => (int)((i * 7919L + 13) % spec.Vocab)).ToArray();
            var logits = new float[spec.Vocab];
            Console.WriteLine($"onnxruntime {OrtEnvironment.Version}, {Threads} intra-op threads, load average {Measure.LoadAverage()}");
            var prefill = Measure.InterleavedMedianSeconds(runners.Select(r => (Action)(() =>
            {
                r.Runner.Reset();
                r.Runner.Evaluate(tokens, 0, [PrefillTokens - 1], logits);
            })).ToArray(), warmup: 1, minRounds: 5, budgetSeconds: 45);

            var decode = Measure.InterleavedMedianSeconds(runners.Select(r => (Action)(() =>
            {
                r.Runner.Reset();
                r.Runner.Evaluate(tokens.AsSpan(0, DecodePrompt), 0, [DecodePrompt - 1], logits);
                for (int s = 0; s < DecodeSteps; s++) r.Runner.Evaluate(tokens.AsSpan(DecodePrompt + s, 1), DecodePrompt + s, [0], logits);
            })).ToArray(), warmup: 1, minRounds: 5, budgetSeconds: 45);
            // The decode action includes its 64-token prompt; that prompt's own cost is taken out with the prefill rate.
            double Step(int i) => Math.Max(1e-9, (decode[i] - prefill[i] * DecodePrompt / PrefillTokens) / DecodeSteps);
            for (int i = 0; i < runners.Count; i++)
            {
                // Each graph style against the FP32 graph of the same style; other styles also against the default FP32 graph.
                string style = new[] { " gqa", " 1-block" }.FirstOrDefault(x => runners[i].Label.EndsWith(x, StringComparison.Ordinal)) ?? "";
                int b = Math.Max(0, runners.FindIndex(r => r.Label == "fp32" + style));
                string baseName = runners[b].Label;
                string vsStandard = b != 0 ? $", {prefill[0] / prefill[i]:F2}x fp32" : "";
                Console.WriteLine($"{runners[i].Label,-26} prefill {PrefillTokens / prefill[i],7:F0} tok/s ({prefill[b] / prefill[i]:F2}x {baseName}{vsStandard})   " +
                                  $"decode {1 / Step(i),6:F1} tok/s ({Step(b) / Step(i):F2}x {baseName})   model {runners[i].Bytes / 1e6:F0} MB");
            }
            Console.WriteLine($"target (issue 8): INT8 prefill >= 1.8x FP32; load average at end {Measure.LoadAverage()}");
        }
        finally
        {
            foreach (var r in runners) r.Runner.Dispose();
            try { Directory.Delete(outRoot, recursive: true); } catch (IOException) { }
        }
    }

    private static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "EdgeQuant.sln"))) return dir.FullName;
        return Directory.GetCurrentDirectory();
    }
}
