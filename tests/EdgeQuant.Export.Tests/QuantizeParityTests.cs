using EdgeQuant.Compression.GgufQuant;
using EdgeQuant.Compression.Imatrix;
using EdgeQuant.Core.Tensors;
using EdgeQuant.Fixtures;
using EdgeQuant.Formats.Gguf;
using EdgeQuant.Models;
using EdgeQuant.Runtimes.LlamaCpp;
using EdgeQuant.Runtimes.LlamaCpp.Native;
using EdgeQuant.Testing;
using Xunit.Abstractions;

namespace EdgeQuant.Export.Tests;

/// <summary>
/// Models written once for the parity tests: random-weight Llama fixtures in F16 whose rows are multiples of 256
/// (every K-quant applies) and whose rows are not (llama.cpp's fallbacks), plus a Qwen2 fixture with biases.
/// </summary>
public sealed class QuantizeFixtures : IDisposable
{
    private readonly TempDir _dir = new("eq-quant-parity");

    public QuantizeFixtures()
    {
        // 8 layers so that use_more_bits picks different layers than the plain ones (n/8, 7n/8, every third).
        Aligned = FixtureMaker.Write(new FixtureSpec { Layers = 8, Embd = 256, Heads = 4, KvHeads = 2, Ffn = 768, Vocab = 512, Untied = true, Dtype = FixtureDtype.F16, Seed = 61 },
            _dir.File("aligned"), FixtureFormats.Gguf).GgufPath!;
        // Rows of 160 and 416: multiples of 32, not of 256, so the K-quants fall back per tensor.
        Unaligned = FixtureMaker.Write(new FixtureSpec { Layers = 4, Embd = 160, Heads = 5, KvHeads = 1, Ffn = 416, Vocab = 300, Dtype = FixtureDtype.F16, Seed = 62 },
            _dir.File("unaligned"), FixtureFormats.Gguf).GgufPath!;
        Qwen2 = FixtureMaker.Write(new FixtureSpec { Arch = FixtureArch.Qwen2, Layers = 3, Embd = 256, Heads = 4, KvHeads = 2, Ffn = 512, Vocab = 300, Dtype = FixtureDtype.F32, Seed = 63 },
            _dir.File("qwen2"), FixtureFormats.Gguf).GgufPath!;
    }

    public string Aligned { get; }
    public string Unaligned { get; }
    public string Qwen2 { get; }

    public string Path(string name) => _dir.File(name);

    public void Dispose() => _dir.Dispose();
}

/// <summary>
/// <c>GgufQuantizer</c> against the real <c>llama_model_quantize</c> (libllama of @node-llama-cpp/linux-x64@3.22.1): for
/// the issue's types, with and without --pure, with and without an importance matrix, every tensor of our output has
/// llama.cpp's type and llama.cpp's bytes, in llama.cpp's order.
/// </summary>
public class QuantizeParityTests(QuantizeFixtures fixtures, ITestOutputHelper output) : IClassFixture<QuantizeFixtures>
{
    private const string Stories = "models/stories260K/stories260K.gguf";

    public static readonly string[] Types = ["Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K_M", "Q4_K_S", "Q4_K_M", "Q5_K_M", "Q6_K"];

    public static TheoryData<string, bool> TypesAndPure()
    {
        var data = new TheoryData<string, bool>();
        foreach (var t in Types) { data.Add(t, false); data.Add(t, true); }
        return data;
    }

    public static TheoryData<string> TypeNames()
    {
        var data = new TheoryData<string>();
        foreach (var t in Types) data.Add(t);
        return data;
    }

    [LlamaCppExportTheory]
    [MemberData(nameof(TypesAndPure))]
    public void Aligned_fixture_equals_llama_cpp(string type, bool pure) =>
        Compare(fixtures.Aligned, type, new QuantizationPolicyOptions { Pure = pure }, new LlamaQuantizeOptions { Threads = 1, Pure = pure }, imatrix: false);

    [LlamaCppExportTheory]
    [MemberData(nameof(TypeNames))]
    public void Aligned_fixture_with_imatrix_equals_llama_cpp(string type) =>
        Compare(fixtures.Aligned, type, new QuantizationPolicyOptions(), new LlamaQuantizeOptions { Threads = 1 }, imatrix: true);

    [LlamaCppExportTheory]
    [MemberData(nameof(TypesAndPure))]
    public void Unaligned_fixture_equals_llama_cpp(string type, bool pure) =>
        Compare(fixtures.Unaligned, type, new QuantizationPolicyOptions { Pure = pure }, new LlamaQuantizeOptions { Threads = 1, Pure = pure }, imatrix: pure);

    [LlamaCppExportTheory]
    [MemberData(nameof(TypeNames))]
    public void Qwen2_fixture_equals_llama_cpp(string type) =>
        Compare(fixtures.Qwen2, type, new QuantizationPolicyOptions(), new LlamaQuantizeOptions { Threads = 1 }, imatrix: true);

    [LlamaCppExportTheory]
    [MemberData(nameof(TypeNames))]
    public void Stories260K_equals_llama_cpp(string type)
    {
        var stories = SharedData.Require(Stories);
        Compare(stories, type, new QuantizationPolicyOptions(), new LlamaQuantizeOptions { Threads = 1 }, imatrix: false);
        Compare(stories, type, new QuantizationPolicyOptions { Pure = true }, new LlamaQuantizeOptions { Threads = 1, Pure = true }, imatrix: true);
    }

    [LlamaCppExportFact]
    public void Output_and_embedding_options_and_overrides_equal_llama_cpp()
    {
        Compare(fixtures.Aligned, "Q4_K_M", new QuantizationPolicyOptions { LeaveOutputTensor = true },
            new LlamaQuantizeOptions { Threads = 1, QuantizeOutputTensor = false }, imatrix: false);
        Compare(fixtures.Aligned, "Q4_K_M",
            new QuantizationPolicyOptions { OutputTensorType = TensorType.Q8_0, TokenEmbeddingType = TensorType.Q4_0 },
            new LlamaQuantizeOptions { Threads = 1, OutputTensorType = GgmlType.Q8_0, TokenEmbeddingType = GgmlType.Q4_0 }, imatrix: false);
        Compare(fixtures.Aligned, "Q4_K_M",
            new QuantizationPolicyOptions { Overrides = [new(new("attn_v"), TensorType.Q8_0), new(new(@"blk\.[0-3]\.ffn_(up|gate)"), TensorType.Q5_K)] },
            new LlamaQuantizeOptions { Threads = 1, TensorTypeOverrides = [("attn_v", GgmlType.Q8_0), (@"blk\.[0-3]\.ffn_(up|gate)", GgmlType.Q5_K)] }, imatrix: true);
    }

    /// <summary>A random positive importance per column for every 2-D weight except the embedding (which llama-imatrix never sees).</summary>
    private static Dictionary<string, float[]> RandomImportance(string gguf, int seed)
    {
        using var file = GgufReader.Read(gguf);
        var rng = new Random(seed);
        var result = new Dictionary<string, float[]>(StringComparer.Ordinal);
        foreach (var t in file.Tensors)
        {
            if (t.Ne.Count < 2 || t.Name == "token_embd.weight") continue;
            var w = new float[t.Ne[0]];
            // Squared activations: mostly small, a few columns far larger (outlier features), some never active.
            for (int i = 0; i < w.Length; i++)
                w[i] = i % 37 == 5 ? 0f : (float)(Math.Pow(rng.NextDouble(), 3) * (i % 11 == 0 ? 50 : 1));
            result[t.Name] = w;
        }
        return result;
    }

    private void Compare(string input, string typeName, QuantizationPolicyOptions ours, LlamaQuantizeOptions theirs, bool imatrix)
    {
        var fileType = QuantFileTypes.Parse(typeName);
        var tag = $"{System.IO.Path.GetFileName(System.IO.Path.GetDirectoryName(input))}-{typeName}-{Guid.NewGuid():N}";
        string oursPath = fixtures.Path($"{tag}-ours.gguf"), theirsPath = fixtures.Path($"{tag}-llama.gguf");
        Dictionary<string, float[]>? importance = imatrix ? RandomImportance(input, typeName.GetHashCode(StringComparison.Ordinal) & 0xFFFF) : null;
        try
        {
            using (var model = ModelLoader.Load(input))
            {
                var im = importance is null ? null : ImportanceMatrix.FromSums(importance.Select(kv => (kv.Key, kv.Value, new long[] { 1 })), ["parity-test"], 1, 1);
                GgufQuantizer.Quantize(model, oursPath, new GgufQuantizeOptions { FileType = fileType, Policy = ours, Imatrix = im, Threads = 2 });
            }
            LlamaRuntime.Configure();
            LlamaQuantizer.Quantize(input, theirsPath, (LlamaFileType)fileType.LlamaFtype, theirs with { Imatrix = importance });

            using var a = GgufReader.Read(oursPath);
            using var b = GgufReader.Read(theirsPath);
            Assert.Equal(b.Tensors.Select(t => t.Name), a.Tensors.Select(t => t.Name));
            var types = new SortedDictionary<string, int>(StringComparer.Ordinal);
            for (int i = 0; i < b.Tensors.Count; i++)
            {
                var tb = b.Tensors[i];
                var ta = a.Tensors[i];
                Assert.True(tb.Type == ta.Type, $"{typeName}: {tb.Name} is {ta.Type} in ours, {tb.Type} in llama.cpp's");
                Assert.Equal(tb.Ne, ta.Ne);
                var da = a.TensorData(ta).ToArray();
                var db = b.TensorData(tb).ToArray();
                if (!da.SequenceEqual(db))
                {
                    int at = 0;
                    while (at < da.Length && da[at] == db[at]) at++;
                    Assert.Fail($"{typeName}: {tb.Name} ({tb.Type}) differs from llama.cpp's at byte {at} of {db.Length}");
                }
                var key = TensorTypes.Get(tb.Type).Name;
                types[key] = types.GetValueOrDefault(key) + 1;
            }
            Assert.True(a.Find("general.file_type")!.TryGetInt64(out long ft) && ft == fileType.LlamaFtype, "general.file_type");
            output.WriteLine($"{System.IO.Path.GetFileName(input)} {typeName}{(ours.Pure ? " pure" : "")}{(imatrix ? " imatrix" : "")}: {b.Tensors.Count} tensors equal; " +
                string.Join(", ", types.Select(kv => $"{kv.Key} x{kv.Value}")));
        }
        finally
        {
            File.Delete(oursPath);
            File.Delete(theirsPath);
        }
    }
}
