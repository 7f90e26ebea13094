using System.Runtime.InteropServices;
using EdgeQuant.Compression.GgufQuant;
using EdgeQuant.Core.Errors;
using EdgeQuant.Core.Tensors;
using EdgeQuant.Fixtures;
using EdgeQuant.Formats.Gguf;
using EdgeQuant.Models;
using EdgeQuant.Runtimes.LlamaCpp;
using EdgeQuant.Runtimes.LlamaCpp.Native;
using EdgeQuant.Testing;
using Xunit.Abstractions;

namespace EdgeQuant.Compression.Tests.GgufQuant;

/// <summary>Fixture GGUFs written once for the whole-file tests.</summary>
public sealed class PolicyFixtureFiles : IDisposable
{
    private readonly TempDir _dir = new("eq-policy");

    public PolicyFixtureFiles()
    {
        // 8 blocks so that n_layer/8 = 1 (the first-layer rules fire); GQA 4 (the Q2_K attn_v rule); rows of 256.
        Llama8 = FixtureMaker.Write(new FixtureSpec
        {
            Arch = FixtureArch.Llama, Layers = 8, Embd = 256, Heads = 4, KvHeads = 1, Ffn = 256, Vocab = 300,
            ContextLength = 64, Untied = true, Dtype = FixtureDtype.F16, Seed = 11,
        }, Path.Combine(_dir.Path, "llama8"), FixtureFormats.Gguf).GgufPath!;
        // 80 qwen2 blocks: llama.cpp's qwen2 loader calls that 70B whatever the heads (its test mock does not), so
        // attn_v gets Q5_K. Small rows keep it quick; FFN 32 makes ffn_down fall back.
        Qwen80 = FixtureMaker.Write(new FixtureSpec
        {
            Arch = FixtureArch.Qwen2, Layers = 80, Embd = 256, Heads = 4, KvHeads = 4, Ffn = 32, Vocab = 300,
            ContextLength = 64, Dtype = FixtureDtype.F16, Seed = 12,
        }, Path.Combine(_dir.Path, "qwen80"), FixtureFormats.Gguf).GgufPath!;
    }

    public string Llama8 { get; }
    public string Qwen80 { get; }
    public string Out(string name) => _dir.File(name);

    public void Dispose() => _dir.Dispose();
}

/// <summary>
/// Whole files: llama_model_quantize quantizes a fixture GGUF and the tensor types it wrote (read back with
/// GgufReader) must be our plan's, in llama.cpp's write order. This covers what llama_quant_compute_types cannot:
/// the imatrix flag (it resets it), llama.cpp's real loader (model type from the file) and the refusal of Q2_K_S
/// without an imatrix.
/// </summary>
public sealed class QuantizationPolicyFileTests(PolicyFixtureFiles files, ITestOutputHelper output) : IClassFixture<PolicyFixtureFiles>
{
    private sealed record Run(string Label, string FileType, QuantizationPolicyOptions Options, bool ImatrixData = false);

    private static (ModelConfig Config, List<(string Name, long[] Shape, TensorType SourceType)> Tensors) Read(string gguf)
    {
        using var model = ModelLoader.Load(gguf);
        using var file = GgufReader.Read(gguf);
        return (model.Config, file.Tensors.Select(t => (t.Name, t.Ne.ToArray(), t.Type)).ToList());
    }

    /// <summary>Asserts that <paramref name="quantized"/> holds exactly the plan's tensors, types and order.</summary>
    private List<string> Compare(string label, string source, string quantized, QuantFileType fileType, QuantizationPolicyOptions options)
    {
        var (config, tensors) = Read(source);
        var plan = QuantizationPolicy.Plan(config, tensors, fileType, options);
        var order = QuantizationPolicy.LlamaQuantizeOrder(tensors.Select(t => t.Name).ToList());
        using var written = GgufReader.Read(quantized);
        Assert.Equal(order.Select(i => tensors[i].Name), written.Tensors.Select(t => t.Name));
        var problems = new List<string>();
        foreach (var t in written.Tensors)
        {
            var p = plan.Tensors.Single(x => x.Name == t.Name);
            if (p.Type != t.Type) problems.Add($"{label}: {t.Name}: ours {p.Type}, llama.cpp wrote {t.Type}");
        }
        var histogram = plan.Tensors.GroupBy(t => t.Type).OrderBy(g => g.Key).Select(g => $"{g.Key} x{g.Count()}");
        output.WriteLine($"{label}: {string.Join(", ", histogram)}; {plan.Fallbacks} fallbacks; {problems.Count} mismatches");
        return problems;
    }

    private static unsafe void LlamaQuantize(string input, string outputPath, QuantFileType fileType, QuantizationPolicyOptions o, bool imatrixData)
    {
        LlamaLibrary.EnsureInitialized();
        var pinned = new List<GCHandle>();
        var strings = new List<nint>();
        try
        {
            var p = LlamaNative.llama_model_quantize_default_params();
            p.ftype = (LlamaFileType)fileType.LlamaFtype;
            p.nthread = 1;
            p.pure = (byte)(o.Pure ? 1 : 0);
            p.quantize_output_tensor = (byte)(o.LeaveOutputTensor ? 0 : 1);
            p.output_tensor_type = o.OutputTensorType is { } ot ? (GgmlType)(int)ot : GgmlType.Count;
            p.token_embedding_type = o.TokenEmbeddingType is { } et ? (GgmlType)(int)et : GgmlType.Count;

            var rules = new llama_model_tensor_override[o.Overrides.Count + 1];
            for (int i = 0; i < o.Overrides.Count; i++)
            {
                strings.Add(Marshal.StringToCoTaskMemUTF8(o.Overrides[i].Pattern.ToString()));
                rules[i] = new llama_model_tensor_override { pattern = strings[^1], type = (GgmlType)(int)o.Overrides[i].Type };
            }
            rules[^1] = new llama_model_tensor_override { pattern = 0, type = GgmlType.Count };
            pinned.Add(GCHandle.Alloc(rules, GCHandleType.Pinned));
            if (o.Overrides.Count > 0) p.tt_overrides = pinned[^1].AddrOfPinnedObject();

            if (o.HasImatrix)
            {
                // llama.cpp sets has_imatrix for any imatrix list, even an empty one; with ImatrixData every 2-D weight
                // gets flat importance (Q2_K_S refuses tensors without an entry).
                var entries = new List<llama_model_imatrix_data>();
                if (imatrixData)
                {
                    using var file = GgufReader.Read(input);
                    foreach (var t in file.Tensors.Where(t => t.Ne.Count >= 2))
                    {
                        var ones = Enumerable.Repeat(1f, (int)t.Ne[0]).ToArray();
                        pinned.Add(GCHandle.Alloc(ones, GCHandleType.Pinned));
                        strings.Add(Marshal.StringToCoTaskMemUTF8(t.Name));
                        entries.Add(new llama_model_imatrix_data { name = strings[^1], data = pinned[^1].AddrOfPinnedObject(), size = (nuint)ones.Length });
                    }
                }
                entries.Add(default);
                var array = entries.ToArray();
                pinned.Add(GCHandle.Alloc(array, GCHandleType.Pinned));
                p.imatrix = pinned[^1].AddrOfPinnedObject();
            }
            uint rc = LlamaNative.llama_model_quantize(input, outputPath, &p);
            if (rc != 0) throw new InvalidOperationException($"llama_model_quantize {fileType.Name} failed: {string.Join(" | ", LlamaLog.RecentWarningsAndErrors())}");
        }
        finally
        {
            foreach (var h in pinned) h.Free();
            foreach (var s in strings) Marshal.FreeCoTaskMem(s);
        }
    }

    [LlamaCppFact]
    public void LlamaModelQuantizeThroughTheBindingWritesThePlannedTypes()
    {
        var fileType = QuantFileTypes.Parse("Q4_K_M");
        var outPath = files.Out("binding-q4km.gguf");
        LlamaQuantizer.Quantize(files.Llama8, outPath, LlamaFileType.MostlyQ4_K_M, threads: 1);
        var problems = Compare("Q4_K_M (LlamaQuantizer)", files.Llama8, outPath, fileType, new());
        Assert.True(problems.Count == 0, string.Join("\n", problems));
        // Not vacuous: the mix gave use_more_bits layers Q6_K and the rest Q4_K.
        using var written = GgufReader.Read(outPath);
        Assert.Equal(TensorType.Q6_K, written.Tensors.Single(t => t.Name == "blk.0.ffn_down.weight").Type);
        Assert.Equal(TensorType.Q4_K, written.Tensors.Single(t => t.Name == "blk.1.ffn_down.weight").Type);
    }

    private static readonly Run[] Runs =
    [
        new("Q4_0 imatrix", "Q4_0", new() { HasImatrix = true }),
        new("Q5_0 imatrix", "Q5_0", new() { HasImatrix = true }),
        new("Q4_0 no imatrix", "Q4_0", new()),
        new("Q2_K_S imatrix", "Q2_K_S", new() { HasImatrix = true }, ImatrixData: true),
        new("Q3_K_S pure leave-output", "Q3_K_S", new() { Pure = true, LeaveOutputTensor = true }),
        new("Q5_K_M overrides output-embd types", "Q5_K_M", new()
        {
            Overrides = [TensorTypeOverride.Parse("attn_q=q8_0"), TensorTypeOverride.Parse(@"blk\.3\.ffn_down=q5_k")],
            OutputTensorType = TensorType.Q8_0,
            TokenEmbeddingType = TensorType.Q4_K,
        }),
        new("Q2_K", "Q2_K", new()),
        new("Q3_K_L leave-output", "Q3_K_L", new() { LeaveOutputTensor = true }),
    ];

    public static TheoryData<string> RunLabels => new(Runs.Select(r => r.Label));

    [LlamaCppTheory]
    [MemberData(nameof(RunLabels))]
    public void ImatrixPureLeaveOutputAndOverridesMatchWholeFiles(string label)
    {
        var run = Runs.Single(r => r.Label == label);
        var fileType = QuantFileTypes.Parse(run.FileType);
        var outPath = files.Out($"{run.Label.Replace(' ', '-')}.gguf");
        LlamaQuantize(files.Llama8, outPath, fileType, run.Options, run.ImatrixData);
        var problems = Compare(run.Label, files.Llama8, outPath, fileType, run.Options);
        File.Delete(outPath);
        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }

    [Fact]
    public void TheImatrixFlagChangesQ4_0sFirstFfnDown()
    {
        // Not vacuous: with 8 blocks the first ffn_down is Q4_1 with an imatrix and Q4_0 without one.
        var (config, tensors) = Read(files.Llama8);
        var q40 = QuantFileTypes.Parse("Q4_0");
        Assert.Equal(TensorType.Q4_1, QuantizationPolicy.Plan(config, tensors, q40, new() { HasImatrix = true }).Tensors.Single(t => t.Name == "blk.0.ffn_down.weight").Type);
        Assert.Equal(TensorType.Q4_0, QuantizationPolicy.Plan(config, tensors, q40, new()).Tensors.Single(t => t.Name == "blk.0.ffn_down.weight").Type);
    }

    [LlamaCppFact]
    public void Q2_K_SWithoutAnImatrixIsRefusedByBoth()
    {
        var fileType = QuantFileTypes.Parse("Q2_K_S");
        var (config, tensors) = Read(files.Llama8);
        var e = Assert.Throws<BadInputException>(() => QuantizationPolicy.Plan(config, tensors, fileType, new()));
        Assert.Contains("importance matrix", e.Message);
        var outPath = files.Out("q2ks-refused.gguf");
        var native = Assert.Throws<InvalidOperationException>(() => LlamaQuantize(files.Llama8, outPath, fileType, new(), imatrixData: false));
        Assert.Contains("failed", native.Message);
        // llama.cpp refuses while choosing types, before it opens the output.
        Assert.False(File.Exists(outPath));
    }

    [LlamaCppFact]
    public void An80BlockQwen2IsA70BModelForLlamaCpp()
    {
        var fileType = QuantFileTypes.Parse("Q3_K_M");
        var outPath = files.Out("qwen80-q3km.gguf");
        LlamaQuantize(files.Qwen80, outPath, fileType, new(), imatrixData: false);
        var problems = Compare("qwen2 80 blocks Q3_K_M", files.Qwen80, outPath, fileType, new());
        Assert.True(problems.Count == 0, string.Join("\n", problems));
        using var written = GgufReader.Read(outPath);
        // Without the 70B rule blocks 2.. would be Q4_K.
        Assert.All(written.Tensors.Where(t => t.Name.EndsWith("attn_v.weight", StringComparison.Ordinal)), t => Assert.Equal(TensorType.Q5_K, t.Type));
    }

    [LlamaCppFact("models/stories260K/stories260K.gguf")]
    public void Stories260KQuantizesToThePlannedTypes()
    {
        var source = SharedData.Require("models/stories260K/stories260K.gguf");
        var problems = new List<string>();
        foreach (var name in new[] { "Q4_K_M", "Q8_0", "Q2_K" })
        {
            var fileType = QuantFileTypes.Parse(name);
            var outPath = files.Out($"stories-{name}.gguf");
            LlamaQuantize(source, outPath, fileType, new(), imatrixData: false);
            problems.AddRange(Compare($"stories260K {name}", source, outPath, fileType, new()));
            File.Delete(outPath);
        }
        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }
}
