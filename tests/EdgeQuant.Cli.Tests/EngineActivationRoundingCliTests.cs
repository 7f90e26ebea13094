using EdgeQuant.Cli.Tests.Eval;
using EdgeQuant.Cli.Tests.Infrastructure;
using EdgeQuant.Testing;
using EdgeQuant.Verification.Reports;

namespace EdgeQuant.Cli.Tests;

/// <summary>
/// `verify --runtime engine` on stories260K's Q8_0 GGUF: by default the engine rounds activations as llama.cpp's CPU
/// backend does and its KLD lands on llama.cpp's (same reference, same chunks); `--engine-exact` drops that rounding,
/// which at Q8_0 is half of llama.cpp's error, so its KLD falls well below.
/// </summary>
public sealed class EngineActivationRoundingCliTests(VerifyCommandFixture fx) : IClassFixture<VerifyCommandFixture>
{
    private AccuracyReportLike Run(params string[] extra)
    {
        var r = CliRunner.Run(["verify", fx.Q8, "--reference", fx.Reference, "-t", "1", "--no-latency", "--json", .. extra]);
        Assert.True(r.ExitCode == 0, r.ToString());
        var report = VerificationReportJson.Deserialize(r.StdOut, "stdout");
        return new AccuracyReportLike(report.Candidate.RuntimeName, report.Accuracy!.KldMean, report.Accuracy.PplCand);
    }

    private sealed record AccuracyReportLike(string Runtime, double Kld, double Ppl);

    [LlamaCppFact(VerifyCommandFixture.Gguf, VerifyCommandFixture.Text)]
    public void Engine_rounds_like_llama_cpp_by_default_and_not_with_engine_exact()
    {
        var llama = Run("--runtime", "llamacpp");
        var rounded = Run("--runtime", "engine");
        var exact = Run("--runtime", "engine", "--engine-exact");

        Assert.Contains("ggml activation rounding", rounded.Runtime);
        Assert.DoesNotContain("rounding", exact.Runtime);
        Assert.True(Math.Abs(rounded.Kld / llama.Kld - 1) <= 0.02, $"engine {rounded.Kld} vs llama.cpp {llama.Kld}");
        Assert.True(Math.Abs(rounded.Ppl / llama.Ppl - 1) <= 0.02, $"engine PPL {rounded.Ppl} vs llama.cpp {llama.Ppl}");
        Assert.InRange(exact.Kld, llama.Kld / 3, llama.Kld * 0.7);
    }
}
