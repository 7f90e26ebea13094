using System.Buffers.Binary;
using System.Text.Json;
using EdgeQuant.Cli.Tests.Eval;
using EdgeQuant.Cli.Tests.Infrastructure;
using EdgeQuant.Fixtures;
using EdgeQuant.Runtimes.LlamaCpp;
using EdgeQuant.Runtimes.LlamaCpp.Native;
using EdgeQuant.Testing;
using EdgeQuant.Verification.Accuracy;
using EdgeQuant.Verification.Reference;
using EdgeQuant.Verification.Reports;

namespace EdgeQuant.Cli.Tests;

/// <summary>stories260K's reference (ctx 256, 4 chunks, made by the CLI) and its llama.cpp Q8_0 / Q4_0 quantizations, shared by the verify tests.</summary>
public sealed class VerifyCommandFixture : IDisposable
{
    public const string Gguf = "models/stories260K/stories260K.gguf";
    public const string Text = "corpus/tinystories-sample.txt";

    private readonly TempDir _dir = new("vacc-verify");
    private readonly Lazy<string> _reference;
    private readonly Lazy<string> _q8;
    private readonly Lazy<string> _q4;

    public VerifyCommandFixture()
    {
        _reference = new(() =>
        {
            var path = _dir.File("ref.eqref");
            var r = CliRunner.Run("reference", SharedData.Require(Gguf), "--text", SharedData.Require(Text), "-o", path, "--ctx", "256",
                "--chunks", "4", "--threads", "1");
            Assert.True(r.ExitCode == 0, r.ToString());
            return path;
        });
        _q8 = new(() => Quantize(LlamaFileType.MostlyQ8_0, "q8_0.gguf"));
        _q4 = new(() => Quantize(LlamaFileType.MostlyQ4_0, "q4_0.gguf"));
    }

    public string Dir => _dir.Path;
    public string Reference => _reference.Value;
    public string Q8 => _q8.Value;
    public string Q4 => _q4.Value;

    private string Quantize(LlamaFileType type, string name)
    {
        var path = _dir.File(name);
        // Made by `edgequant quantize` itself (its bytes equal llama_model_quantize's: QuantizeParityTests).
        var typeName = EdgeQuant.Compression.GgufQuant.QuantFileTypes.FromLlamaFtype((int)type)?.Name ?? throw new ArgumentException(type.ToString());
        var r = CliRunner.Run("quantize", SharedData.Require(Gguf), "-o", path, "--type", typeName, "--threads", "1");
        if (r.ExitCode != 0) throw new InvalidOperationException(r.ToString());
        return path;
    }

    public void Dispose() => _dir.Dispose();
}

/// <summary><c>edgequant verify</c>: the figures it reports (against the library on the same inputs), gates and exit codes, reports, bad input.</summary>
public sealed class VerifyCommandTests(VerifyCommandFixture fx) : IClassFixture<VerifyCommandFixture>
{
    private const string Gguf = VerifyCommandFixture.Gguf;
    private const string Text = VerifyCommandFixture.Text;

    [Fact]
    public void Help_is_approved() => Approvals.Verify("help.verify", CliRunner.Run("verify", "--help").StdOut);

    [LlamaCppFact(Gguf, Text)]
    public void Json_report_holds_the_drift_the_library_computes_for_the_same_candidate()
    {
        var r = CliRunner.Run("verify", fx.Q4, "--reference", fx.Reference, "--threads", "1", "--no-latency", "--json");
        Assert.True(r.ExitCode == 0, r.ToString());
        var report = VerificationReportJson.Deserialize(r.StdOut, "stdout");
        var a = report.Accuracy!;

        using var reference = ReferenceFile.Open(fx.Reference);
        using var runner = LlamaCppRunner.Open(fx.Q4, new LlamaContextOptions { ContextSize = 256, Threads = 1 });
        var expected = DriftEvaluator.Evaluate(runner, reference);
        Assert.Equal(expected.KldMean, a.KldMean, 12);
        Assert.Equal(expected.SameTopP, a.SameTopP, 12);
        Assert.Equal(expected.PplCand, a.PplCand, 12);
        Assert.Equal(expected.PplBase, a.PplBase, 12);
        Assert.Equal(4 * 127, a.NScored);
        Assert.InRange(a.KldMean, 0.02, 0.3); // Q4_0 of a 260K-parameter model drifts visibly (REFERENCE.md: 0.0978 over the whole text)
        Assert.Equal("llamacpp", report.Candidate.Runtime);
        Assert.Equal("gguf", report.Candidate.Format);
        Assert.Equal("full", report.Reference!.Mode);
        Assert.Null(report.Latency);
        Assert.Empty(report.Gates);
        Assert.True(report.Passed);
        Assert.Contains("\"kld_p99_9\"", r.StdOut);
    }

    [LlamaCppFact(Gguf, Text)]
    public void A_failing_gate_is_exit_3_naming_it_and_loose_gates_pass()
    {
        var fail = CliRunner.Run("verify", fx.Q4, "--reference", fx.Reference, "-t", "1", "--no-latency", "--max-kld", "0.01", "--min-top1", "0.5",
            "--max-ppl-increase", "0.5");
        Assert.True(fail.ExitCode == 3, fail.ToString());
        Assert.Single(fail.ErrorLines);
        Assert.StartsWith("edgequant: verification failed: max-kld (kld_mean ", fail.StdErr);
        Assert.DoesNotContain("min-top1", fail.StdErr);
        Assert.Contains("FAIL max-kld", fail.StdOut);
        Assert.Contains("PASS min-top1", fail.StdOut);
        Assert.Contains("Mean    KLD:", fail.StdOut);

        var pass = CliRunner.Run("verify", fx.Q8, "--reference", fx.Reference, "-t", "1", "--no-latency", "--max-kld", "0.01", "--min-top1", "0.9",
            "--max-ppl-increase", "0.02");
        Assert.True(pass.ExitCode == 0, pass.ToString());
        Assert.Equal("", pass.StdErr);
        Assert.Equal(3, pass.StdOut.Split('\n').Count(l => l.StartsWith("PASS ")));
    }

    [LlamaCppFact(Gguf, Text)]
    public void Latency_is_measured_and_gated_and_the_report_folder_holds_every_file()
    {
        var dir = Path.Combine(fx.Dir, "report-latency");
        var r = CliRunner.Run("verify", fx.Q8, "--reference", fx.Reference, "-t", "1", "--latency-tokens", "32", "--min-decode-tps", "1e9",
            "--max-rss-mb", "100000", "--report", dir);
        Assert.True(r.ExitCode == 3, r.ToString());
        Assert.Contains("min-decode-tps (decode_tps ", r.StdErr);
        Assert.DoesNotContain("max-rss-mb", r.StdErr);
        Assert.Equal(["junit.xml", "report.html", "report.json", "report.md"], Directory.GetFiles(dir).Select(Path.GetFileName).Order());
        var report = VerificationReportJson.ReadFile(Path.Combine(dir, "report.json"));
        var l = report.Latency!;
        Assert.Equal(32, l.DecodeTokens);
        Assert.Equal(32, l.TokenMs!.Count);
        Assert.True(l.DecodeTps > 0 && l.PrefillTps > 0 && l.PeakRssMb > 0);
        Assert.Equal(256, l.PrefillTokens); // one batch of the reference's n_ctx
        Assert.Equal(new FileInfo(fx.Q8).Length, l.ModelFileBytes);
        Assert.Equal(2, report.Gates.Count);
        Assert.False(report.Passed);
        Assert.Contains("min-decode-tps", File.ReadAllText(Path.Combine(dir, "junit.xml")));
    }

    [LlamaCppFact(Gguf, Text)]
    public void Latency_gates_without_a_latency_run_fail_as_not_measured()
    {
        var r = CliRunner.Run("verify", fx.Q8, "--reference", fx.Reference, "-t", "1", "--no-latency", "--max-p95-ms", "1000");
        Assert.True(r.ExitCode == 3, r.ToString());
        Assert.Contains("max-p95-ms (token_ms_p95 was not measured)", r.StdErr);
    }

    [LlamaCppFact(Gguf, Text)]
    public void A_top_k_reference_gives_a_lower_bound_kld_and_the_exact_ppl_and_agreement()
    {
        var topk = Path.Combine(fx.Dir, "ref-top16.eqref");
        var made = CliRunner.Run("reference", SharedData.Require(Gguf), "--text", SharedData.Require(Text), "-o", topk, "--ctx", "256",
            "--chunks", "4", "--top-k", "16", "--threads", "1");
        Assert.True(made.ExitCode == 0, made.ToString());
        var full = CliRunner.Run("verify", fx.Q4, "--reference", fx.Reference, "-t", "1", "--no-latency", "--json");
        var approx = CliRunner.Run("verify", fx.Q4, "--reference", topk, "-t", "1", "--no-latency", "--json");
        Assert.True(full.ExitCode == 0 && approx.ExitCode == 0, full + "\n" + approx);
        var f = VerificationReportJson.Deserialize(full.StdOut, "full").Accuracy!;
        var t = VerificationReportJson.Deserialize(approx.StdOut, "top-k").Accuracy!;
        Assert.Contains("lower bound", t.Approximation);
        Assert.Null(f.Approximation);
        Assert.True(t.KldMean <= f.KldMean * 1.001, $"top-16 {t.KldMean} vs full {f.KldMean}");
        Assert.True(t.KldMean >= f.KldMean * 0.5, $"top-16 {t.KldMean} vs full {f.KldMean}");
        Assert.Equal(f.PplCand, t.PplCand, 12);
        // Top-1 from the stored ids (exact) vs from 16-bit codes (ties within 1.2e-4 nats can differ): same figure here.
        Assert.Equal(f.SameTopP, t.SameTopP, 2);
        Assert.Equal(f.PplBase, t.PplBase, 2); // base log-probs: exact floats vs 16-bit codes
    }

    [LlamaCppFact(Gguf, Text)]
    public void The_engine_runs_the_same_gguf_on_the_same_chunks()
    {
        var r = CliRunner.Run("verify", fx.Q4, "--reference", fx.Reference, "--runtime", "engine", "-t", "1", "--no-latency", "--chunks", "1", "--json");
        Assert.True(r.ExitCode == 0, r.ToString());
        var a = VerificationReportJson.Deserialize(r.StdOut, "stdout").Accuracy!;
        Assert.Equal(127, a.NScored);
        Assert.Equal(1, a.NChunks);
        Assert.InRange(a.KldMean, 0.02, 0.3);
    }

    [LlamaCppFact(Gguf, Text)]
    public void Gate_failure_end_to_end_in_a_real_process()
    {
        var r = CliProcess.Run(["verify", fx.Q4, "--reference", fx.Reference, "-t", "1", "--no-latency", "--max-kld", "0.001"],
            timeout: TimeSpan.FromMinutes(5));
        Assert.True(r.ExitCode == 3, r.ToString());
        Assert.Single(r.ErrorLines);
        Assert.Contains("verification failed: max-kld", r.StdErr);
    }

    [LlamaCppFact(Gguf, Text)]
    public void Bad_input_is_exit_2_with_one_line_naming_what_is_wrong()
    {
        var corrupt = Path.Combine(fx.Dir, "corrupt.eqref");
        var bytes = File.ReadAllBytes(fx.Reference);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(24), 300); // n_ctx
        File.WriteAllBytes(corrupt, bytes);

        var other = FixtureMaker.Write(new FixtureSpec { Layers = 1, Embd = 32, Heads = 4, KvHeads = 2, Ffn = 48, Vocab = 300, Seed = 7 },
            Path.Combine(fx.Dir, "fixture"), FixtureFormats.Gguf);

        (string[] Args, string Expect)[] cases =
        [
            (["verify", fx.Q4, "--reference", corrupt, "--no-latency"], "corrupt.eqref: file length at byte offset"),
            (["verify", fx.Q4, "--reference", Path.Combine(fx.Dir, "none.eqref")], "no such reference file"),
            (["verify", Path.Combine(fx.Dir, "none.gguf"), "--reference", fx.Reference], "no such model"),
            (["verify", fx.Q4, "--reference", fx.Reference, "--min-top1", "90"], "fraction"),
            (["verify", fx.Q4, "--reference", fx.Reference, "--max-kld", "-1"], "--max-kld"),
            (["verify", fx.Q4, "--reference", fx.Reference, "--chunks", "0"], "--chunks"),
            (["verify", fx.Q4, "--reference", fx.Reference, "--latency-tokens", "200"], "do not fit"),
            (["verify", other.GgufPath!, "--reference", fx.Reference, "--no-latency", "-t", "1"], "vocabulary of 512 tokens"),
            (["verify", fx.Q4, "--reference", fx.Reference, "--report", fx.Reference], "is a file"),
        ];
        foreach (var (args, expect) in cases)
        {
            var r = CliRunner.Run(args);
            Assert.True(r.ExitCode == 2, string.Join(' ', args) + "\n" + r);
            Assert.Single(r.ErrorLines);
            Assert.Contains(expect, r.StdErr);
        }

        // Too few scored tokens for statistics: a reference of 1 chunk of 16 (7 positions), made through the library.
        var tiny = Path.Combine(fx.Dir, "tiny.eqref");
        using (var f = ReferenceFile.Open(fx.Reference))
        {
            var h = f.Header with { NCtx = 16, NChunks = 1 };
            using var w = new ReferenceWriter(tiny, h, f.Tokens[..16]);
            var logits = new float[512];
            for (int i = 0; i < 7; i++) w.Add(logits, 0);
            w.Complete();
        }
        var few = CliRunner.Run("verify", fx.Q4, "--reference", tiny, "--no-latency", "-t", "1");
        Assert.True(few.ExitCode == 2, few.ToString());
        Assert.Contains("only 7 scored tokens", few.StdErr);
    }
}

/// <summary>
/// The ONNX Runtime path end to end: the random GPT-2 (<c>past.onnx</c>, 1,000 logits, KV cache) as its own reference
/// and candidate. Its real 50,257-token tokenizer cannot tokenize text into its 1,000 ids, so the reference is built
/// through the library from seeded ids below 1,000 (GPT-2 adds no BOS); verify then finds its tokenizer.json beside it.
/// </summary>
public sealed class VerifyOnnxRuntimeTests
{
    private const string Gpt2Dir = "onnx/tiny-random-gpt2";

    [OnnxRuntimeFact(Gpt2Dir + "/past.onnx", Gpt2Dir + "/tokenizer.json")]
    public void Tiny_gpt2_against_itself_in_onnx_runtime_has_zero_kld_and_full_agreement()
    {
        using var dir = new TempDir("vacc-ort");
        var model = SharedData.Require(Gpt2Dir + "/past.onnx");
        var reference = dir.File("gpt2.eqref");
        var rng = new Random(17);
        var tokens = Enumerable.Range(0, 4 * 64 + 10).Select(_ => rng.Next(1000)).ToArray();
        using (var runner = EdgeQuant.Runtimes.OnnxRuntime.OrtLogitsRunner.Open(model, new EdgeQuant.Runtimes.OnnxRuntime.OrtLogitsRunnerOptions
        {
            Session = new EdgeQuant.Runtimes.OnnxRuntime.OrtSessionSettings { IntraOpThreads = 1, InterOpThreads = 1 },
        }))
        {
            ReferenceBuilder.Build(runner, tokens, null, new ReferenceBuildOptions(64, 4, null, "past.onnx", ModelHash.Compute(model),
                ModelHash.OfText("random ids")), reference);
        }

        var r = CliRunner.Run("verify", model, "--reference", reference, "-t", "1", "--latency-tokens", "16", "--max-kld", "1e-4",
            "--min-top1", "1", "--json");
        Assert.True(r.ExitCode == 0, r.ToString());
        var report = VerificationReportJson.Deserialize(r.StdOut, "stdout");
        Assert.Equal("onnxruntime", report.Candidate.Runtime);
        Assert.Equal("onnx", report.Candidate.Format);
        var a = report.Accuracy!;
        Assert.Equal(4 * 31, a.NScored);
        Assert.Equal(1.0, a.SameTopP);
        Assert.InRange(a.KldMean, -1e-5, 1e-5);
        Assert.InRange(Math.Abs(a.LnPplRatio), 0, 1e-4);
        Assert.Equal(16, report.Latency!.DecodeTokens);
        Assert.True(report.Latency.DecodeTps > 0);
    }
}
