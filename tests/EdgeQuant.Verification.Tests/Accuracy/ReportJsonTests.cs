using System.Text.Json;
using EdgeQuant.Core.Errors;
using EdgeQuant.Verification.Reports;

namespace EdgeQuant.Verification.Tests.Accuracy;

public class ReportJsonTests
{
    private static VerificationReport Sample() => new()
    {
        Candidate = new CandidateInfo("m.gguf", "gguf", "llamacpp", "llama.cpp (icelake)", 1234, 1),
        Accuracy = new AccuracyReport
        {
            NScored = 381, NChunks = 3, NCtx = 256,
            PplBase = 6.0, PplBaseUnc = 0.1, PplCand = 6.3, PplCandUnc = 0.11, LnPplRatio = 0.0488, LnPplRatioUnc = 0.004,
            KldMean = 0.1, KldMeanUnc = 0.01, KldMax = 2, KldP99_9 = 1.9, KldP99 = 1.5, KldP95 = 0.5, KldP90 = 0.3, KldMedian = 0.05,
            SameTopP = 0.83, SameTopPUnc = 0.02, DeltaPMean = -0.01, DeltaPMeanUnc = 0.002, DeltaPRms = 0.05, DeltaPRmsUnc = 0.003,
            ChunkKld = [0.1, 0.2, double.NaN],
        },
        Gates = [new GateResult("max-kld", "kld_mean", "<=", 0.05, 0.1, "nats", false)],
    };

    [Fact]
    public void Accuracy_fields_carry_llama_perplexity_names_in_snake_case_with_unc_twins_and_units()
    {
        var json = VerificationReportJson.Serialize(Sample());
        using var doc = JsonDocument.Parse(json);
        var acc = doc.RootElement.GetProperty("accuracy");
        string[] names = ["ppl_base", "ppl_cand", "ln_ppl_ratio", "kld_mean", "kld_p99_9", "kld_p99", "kld_p95", "kld_p90", "kld_median",
            "same_top_p", "delta_p_mean", "delta_p_rms"];
        var units = doc.RootElement.GetProperty("units");
        foreach (var n in names)
        {
            Assert.True(acc.TryGetProperty(n, out _), n);
            Assert.True(units.TryGetProperty(n, out _), "unit of " + n);
        }
        foreach (var n in new[] { "ppl_base", "ppl_cand", "ln_ppl_ratio", "kld_mean", "same_top_p", "delta_p_mean", "delta_p_rms" })
            Assert.True(acc.TryGetProperty(n + "_unc", out _), n + "_unc");
        Assert.Equal(0.83, acc.GetProperty("same_top_p").GetDouble());
        Assert.Equal(1, doc.RootElement.GetProperty("schema_version").GetInt32());
        Assert.False(doc.RootElement.GetProperty("passed").GetBoolean());
        Assert.False(doc.RootElement.TryGetProperty("latency", out _)); // null sections are omitted
        Assert.Equal("NaN", acc.GetProperty("chunk_kld")[2].GetString());
    }

    [Fact]
    public void Round_trip_keeps_every_figure()
    {
        var r = Sample() with { Latency = new LatencyReport { DecodeTps = 123.5, TokenMsP95 = 9.5, TokenMs = [8, 9, 10] } };
        var back = VerificationReportJson.Deserialize(VerificationReportJson.Serialize(r), "r.json");
        Assert.Equal(r.Accuracy!.KldP99_9, back.Accuracy!.KldP99_9);
        Assert.Equal(r.Accuracy.DeltaPRmsUnc, back.Accuracy.DeltaPRmsUnc);
        Assert.True(double.IsNaN(back.Accuracy.ChunkKld[2]));
        Assert.Equal(9.5, back.Latency!.TokenMsP95);
        Assert.Equal(r.Gates, back.Gates);
        Assert.False(back.Passed);
    }

    [Fact]
    public void Another_document_or_a_future_schema_is_refused()
    {
        var e = Assert.Throws<FileFormatException>(() => VerificationReportJson.Deserialize("""{"schema":"other","candidate":{"path":"a","format":"gguf","runtime":"x","runtime_name":"x","file_bytes":1,"threads":1}}""", "x.json"));
        Assert.Contains("schema", e.Message);
        var json = VerificationReportJson.Serialize(Sample()).Replace("\"schema_version\": 1", "\"schema_version\": 99");
        Assert.Throws<FileFormatException>(() => VerificationReportJson.Deserialize(json, "x.json"));
        Assert.Throws<FileFormatException>(() => VerificationReportJson.Deserialize("[1,2", "x.json"));
    }
}
