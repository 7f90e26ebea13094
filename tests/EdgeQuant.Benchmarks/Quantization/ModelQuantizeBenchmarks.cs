using System.Diagnostics;
using EdgeQuant.Compression.GgufQuant;
using EdgeQuant.Export;
using EdgeQuant.Fixtures;
using EdgeQuant.Formats.Gguf;
using EdgeQuant.Models;
using EdgeQuant.Runtimes;
using EdgeQuant.Runtimes.LlamaCpp;
using EdgeQuant.Runtimes.LlamaCpp.Native;

namespace EdgeQuant.Benchmarks.Quantization;

/// <summary>
/// Whole-model quantization wall time: a random-weight model of TinyLlama-1.1B's shape (n_embd 2048, 22 layers, 32/4
/// heads, FFN 5632, vocab 32000) stored F16, quantized to Q8_0, Q4_0 and Q4_K_M by <c>llama_model_quantize</c> (the
/// pinned libllama) and by <see cref="GgufQuantizer"/> with the same thread count, alternating, from the same file (in
/// the page cache for both). Each pair's outputs are compared tensor by tensor, so the figure is for identical work.
/// The input is generated once into .cache/bench (2.2 GB; set EDGEQUANT_BENCH_CACHE to move it).
/// </summary>
public static class ModelQuantizeBenchmarks
{
    public static void Run()
    {
        try { LlamaLibrary.EnsureInitialized(); }
        catch (RuntimeNotFoundException e)
        {
            Console.WriteLine($"skipped: {e.Message}");
            return;
        }
        string cache = Environment.GetEnvironmentVariable("EDGEQUANT_BENCH_CACHE") is { Length: > 0 } c ? c : Path.Combine(RepoRoot(), ".cache", "bench");
        var spec = FixtureSpec.Preset(FixtureArch.Llama, "tinyllama-1.1b") with { Dtype = FixtureDtype.F16, Seed = 11 };
        string folder = Path.Combine(cache, "tinyllama-1.1b-f16-seed11");
        string input = Path.Combine(folder, FixtureMaker.GgufDirName, FixtureMaker.GgufFileName);
        if (!File.Exists(input))
        {
            Console.WriteLine($"writing the TinyLlama-shape F16 input to {input} (once) ...");
            FixtureMaker.Write(spec, folder, FixtureFormats.Gguf);
        }
        int threads = Environment.ProcessorCount;
        string outDir = Path.Combine(cache, "out");
        Directory.CreateDirectory(outDir);
        using (var warm = File.OpenRead(input)) warm.CopyTo(Stream.Null); // into the page cache before either side reads it
        Console.WriteLine($"input {new FileInfo(input).Length / 1e9:F2} GB F16, {threads} threads each, load average {Measure.LoadAverage()}");

        foreach (var name in new[] { "Q8_0", "Q4_0", "Q4_K_M" })
        {
            var type = QuantFileTypes.Parse(name);
            string theirs = Path.Combine(outDir, $"llama-{name}.gguf"), ours = Path.Combine(outDir, $"eq-{name}.gguf");
            var llamaTimes = new List<double>();
            var ourTimes = new List<double>();
            int rounds = name == "Q4_K_M" ? 1 : 2;
            for (int round = 0; round < rounds; round++)
            {
                var sw = Stopwatch.StartNew();
                LlamaQuantizer.Quantize(input, theirs, (LlamaFileType)type.LlamaFtype, new LlamaQuantizeOptions { Threads = threads });
                llamaTimes.Add(sw.Elapsed.TotalSeconds);
                sw.Restart();
                using (var model = ModelLoader.Load(input))
                    GgufQuantizer.Quantize(model, ours, new GgufQuantizeOptions { FileType = type, Threads = threads, Overwrite = true });
                ourTimes.Add(sw.Elapsed.TotalSeconds);
            }
            string same = SameTensors(ours, theirs);
            double l = llamaTimes.Min(), o = ourTimes.Min();
            Console.WriteLine($"{name,-7} llama_model_quantize {l,7:F2} s   edgequant {o,7:F2} s   speed {l / o:F2}x llama.cpp   ({same}; best of {rounds}, load {Measure.LoadAverage()})");
            File.Delete(theirs);
            File.Delete(ours);
        }
    }

    private static string SameTensors(string a, string b)
    {
        using var x = GgufReader.Read(a);
        using var y = GgufReader.Read(b);
        if (x.Tensors.Count != y.Tensors.Count) return "DIFFERENT tensor count";
        for (int i = 0; i < x.Tensors.Count; i++)
        {
            var (tx, ty) = (x.Tensors[i], y.Tensors[i]);
            if (tx.Name != ty.Name || tx.Type != ty.Type) return $"DIFFERENT: {tx.Name} {tx.Type} vs {ty.Name} {ty.Type}";
            long offset = 0;
            while (offset < tx.ByteLength)
            {
                int n = (int)Math.Min(1 << 30, tx.ByteLength - offset);
                if (!x.File.Span(tx.AbsoluteOffset + offset, n, "a").SequenceEqual(y.File.Span(ty.AbsoluteOffset + offset, n, "b")))
                    return $"DIFFERENT bytes in {tx.Name}";
                offset += n;
            }
        }
        return $"all {x.Tensors.Count} tensors byte-identical";
    }

    private static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "EdgeQuant.sln"))) return dir.FullName;
        return Directory.GetCurrentDirectory();
    }
}
