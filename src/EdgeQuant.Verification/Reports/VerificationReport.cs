using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Serialization;
using EdgeQuant.Core.Errors;

namespace EdgeQuant.Verification.Reports;

/// <summary>
/// What <c>edgequant verify</c> measured, as one schema-versioned document: <c>report.json</c>, <c>verify --json</c>,
/// and the input of the Markdown/HTML/JUnit renderers and of <c>compare</c>. Snake_case on the wire
/// (<see cref="VerificationReportJson"/>); every figure's unit is in <see cref="Units"/> under the figure's JSON name.
/// </summary>
/// <remarks>
/// Sections are nullable so that each stage fills its own: the accuracy statistics (<see cref="Accuracy"/>) and the
/// latency probe (<see cref="Latency"/>) are independent, and a report with only one of them is still valid.
/// A reader must refuse a <see cref="SchemaVersion"/> it does not know; additive changes keep the version.
/// </remarks>
public sealed record VerificationReport
{
    /// <summary>Names the document kind, so a stray JSON file is recognised as not a verification report.</summary>
    public const string SchemaName = "edgequant.verification";

    /// <summary>Bumped when a field changes meaning or is removed (adding a field keeps it).</summary>
    public const int CurrentSchemaVersion = 1;

    public string Schema { get; init; } = SchemaName;
    public int SchemaVersion { get; init; } = CurrentSchemaVersion;

    /// <summary>When the report was written (UTC, ISO 8601).</summary>
    public DateTimeOffset CreatedUtc { get; init; } = DateTimeOffset.UtcNow;

    /// <summary>The edgequant version that wrote it.</summary>
    public string ToolVersion { get; init; } = typeof(VerificationReport).Assembly.GetName().Version?.ToString() ?? "unknown";

    public required CandidateInfo Candidate { get; init; }
    public ReferenceInfo? Reference { get; init; }
    public AccuracyReport? Accuracy { get; init; }

    /// <summary>Filled by the latency probe; null when it did not run.</summary>
    public LatencyReport? Latency { get; init; }

    /// <summary>Every gate that was set, in the gate table's order (<c>Gates/GateCatalog</c>); empty when none was.</summary>
    public IReadOnlyList<GateResult> Gates { get; init; } = [];

    /// <summary>True when every gate passed (true with no gates).</summary>
    public bool Passed => Gates.All(g => g.Passed);

    public EnvironmentInfo? Environment { get; init; }

    /// <summary>Unit of each figure, keyed by its JSON name (e.g. <c>kld_mean</c> → <c>nats</c>).</summary>
    public IReadOnlyDictionary<string, string> Units { get; init; } = ReportUnits.All;
}

/// <summary>The model being verified and how it was run.</summary>
/// <param name="Path">As given on the command line.</param>
/// <param name="Format"><c>gguf</c>, <c>onnx</c>, <c>hf</c>, <c>llama2c</c>.</param>
/// <param name="Runtime">The runtime chosen: <c>llamacpp</c>, <c>onnxruntime</c> or <c>engine</c>.</param>
/// <param name="RuntimeName">The runner's own label, e.g. <c>llama.cpp (icelake)</c>.</param>
/// <param name="FileBytes">Size on disk (a folder: the sum of its files).</param>
/// <param name="Threads">Threads the runtime was given.</param>
public sealed record CandidateInfo(
    string Path,
    string Format,
    string Runtime,
    string RuntimeName,
    long FileBytes,
    int Threads);

/// <summary>The <c>.eqref</c> file the candidate was compared with.</summary>
/// <param name="Mode"><c>full</c> (16-bit log-probs of the whole vocabulary) or <c>top_k</c>.</param>
/// <param name="TopK">K in <c>top_k</c> mode, null in full mode.</param>
/// <param name="ModelSha256">Hex SHA-256 of the reference model's bytes, as stored in the file.</param>
/// <param name="TextSha256">Hex SHA-256 of the text as tokenized (after llama-perplexity's newline trim).</param>
/// <param name="BytesPerScoredToken">File size over scored positions: what the reference costs to ship.</param>
public sealed record ReferenceInfo(
    string Path,
    string Model,
    string ModelSha256,
    string TextSha256,
    string Mode,
    int? TopK,
    int NCtx,
    int NChunks,
    int NVocab,
    long FileBytes,
    double BytesPerScoredToken);

/// <summary>
/// Drift of the candidate from the reference on the reference's tokens, with llama-perplexity's KLD-mode
/// definitions and uncertainties (see <c>Accuracy/AccuracyStatistics</c>). Names follow llama-perplexity's labels
/// in snake_case; probabilities (same_top_p, delta_p_*) are fractions, not percent.
/// </summary>
public sealed record AccuracyReport
{
    /// <summary>Positions scored (chunks × (n_ctx/2 − 1)).</summary>
    public required int NScored { get; init; }
    public required int NChunks { get; init; }
    public required int NCtx { get; init; }

    [JsonPropertyName("ppl_base")] public required double PplBase { get; init; }
    [JsonPropertyName("ppl_base_unc")] public required double PplBaseUnc { get; init; }
    [JsonPropertyName("ppl_cand")] public required double PplCand { get; init; }
    [JsonPropertyName("ppl_cand_unc")] public required double PplCandUnc { get; init; }

    /// <summary>Mean ln(PPL(cand)/PPL(base)); its ± accounts for the correlation of the two NLL series.</summary>
    [JsonPropertyName("ln_ppl_ratio")] public required double LnPplRatio { get; init; }
    [JsonPropertyName("ln_ppl_ratio_unc")] public required double LnPplRatioUnc { get; init; }

    /// <summary>Correlation of the per-token NLLs of candidate and base (llama-perplexity's Cor(ln PPL(Q), ln PPL(base))).</summary>
    [JsonPropertyName("ln_ppl_cor")] public double LnPplCor { get; init; }

    /// <summary>PPL(cand)/PPL(base) − 1: what <c>--max-ppl-increase</c> gates.</summary>
    [JsonPropertyName("ppl_increase")] public double PplIncrease => PplBase > 0 ? PplCand / PplBase - 1 : double.NaN;

    [JsonPropertyName("kld_mean")] public required double KldMean { get; init; }
    [JsonPropertyName("kld_mean_unc")] public required double KldMeanUnc { get; init; }
    [JsonPropertyName("kld_max")] public required double KldMax { get; init; }
    [JsonPropertyName("kld_p99_9")] public required double KldP99_9 { get; init; }
    [JsonPropertyName("kld_p99")] public required double KldP99 { get; init; }
    [JsonPropertyName("kld_p95")] public required double KldP95 { get; init; }
    [JsonPropertyName("kld_p90")] public required double KldP90 { get; init; }
    [JsonPropertyName("kld_median")] public required double KldMedian { get; init; }
    [JsonPropertyName("kld_p10")] public double KldP10 { get; init; }
    [JsonPropertyName("kld_p5")] public double KldP5 { get; init; }
    [JsonPropertyName("kld_p1")] public double KldP1 { get; init; }
    [JsonPropertyName("kld_min")] public double KldMin { get; init; }

    /// <summary>Fraction of positions whose most likely token is the same in candidate and base.</summary>
    [JsonPropertyName("same_top_p")] public required double SameTopP { get; init; }
    [JsonPropertyName("same_top_p_unc")] public required double SameTopPUnc { get; init; }

    /// <summary>Mean of p_cand(target) − p_base(target).</summary>
    [JsonPropertyName("delta_p_mean")] public required double DeltaPMean { get; init; }
    [JsonPropertyName("delta_p_mean_unc")] public required double DeltaPMeanUnc { get; init; }
    [JsonPropertyName("delta_p_rms")] public required double DeltaPRms { get; init; }
    [JsonPropertyName("delta_p_rms_unc")] public required double DeltaPRmsUnc { get; init; }
    [JsonPropertyName("delta_p_max")] public double DeltaPMax { get; init; }
    [JsonPropertyName("delta_p_min")] public double DeltaPMin { get; init; }

    /// <summary>Null for a full reference; for a top-K reference, how the KLD was approximated.</summary>
    public string? Approximation { get; init; }

    /// <summary>Mean KLD of each chunk, in chunk order (the HTML report plots it).</summary>
    [JsonPropertyName("chunk_kld")] public IReadOnlyList<double> ChunkKld { get; init; } = [];

    /// <summary>Wall time of the candidate's forward passes over all chunks.</summary>
    public double EvalSeconds { get; init; }
}

/// <summary>
/// Cost of running the candidate on this machine. Every member is nullable: the latency probe fills what it
/// measured and leaves the rest null (omitted from JSON).
/// </summary>
public sealed record LatencyReport
{
    /// <summary>Model load (file to ready-to-decode).</summary>
    public double? LoadMs { get; init; }

    /// <summary>Prompt tokens per second for one batch of n_ctx tokens.</summary>
    public double? PrefillTps { get; init; }

    /// <summary>Tokens in the prefill batch.</summary>
    public int? PrefillTokens { get; init; }

    /// <summary>Time to first token: prefill of the prompt plus the first sampled token.</summary>
    public double? TtftMs { get; init; }

    /// <summary>Generated tokens per second, one token per decode call.</summary>
    public double? DecodeTps { get; init; }

    /// <summary>Tokens generated for the per-token figures.</summary>
    public int? DecodeTokens { get; init; }

    [JsonPropertyName("token_ms_p50")] public double? TokenMsP50 { get; init; }
    [JsonPropertyName("token_ms_p95")] public double? TokenMsP95 { get; init; }
    [JsonPropertyName("token_ms_p99")] public double? TokenMsP99 { get; init; }

    /// <summary>Every per-token latency, in generation order (the HTML report plots its distribution).</summary>
    [JsonPropertyName("token_ms")] public IReadOnlyList<double>? TokenMs { get; init; }

    /// <summary>Peak resident set size of the process (VmHWM).</summary>
    public double? PeakRssMb { get; init; }

    public long? ModelFileBytes { get; init; }
    public int? Threads { get; init; }
    public string? CpuModel { get; init; }
}

/// <summary>One threshold set on the command line and how the candidate did.</summary>
/// <param name="Name">The option that set it, without dashes: <c>max-kld</c>, <c>min-top1</c>, …</param>
/// <param name="Metric">The report field it reads, e.g. <c>kld_mean</c>.</param>
/// <param name="Comparison"><c>&lt;=</c> (a maximum) or <c>&gt;=</c> (a minimum).</param>
/// <param name="Actual">The measured value; null when it was not measured (the gate then fails).</param>
public sealed record GateResult(
    string Name,
    string Metric,
    string Comparison,
    double Threshold,
    double? Actual,
    string Unit,
    bool Passed,
    string? Note = null);

/// <summary>Where the figures were measured.</summary>
public sealed record EnvironmentInfo(
    string Os,
    string Architecture,
    string? CpuModel,
    int LogicalCores,
    string DotnetVersion,
    string? MachineName = null)
{
    /// <summary>This process's machine; the CPU model from /proc/cpuinfo on Linux (null elsewhere or when unreadable).</summary>
    public static EnvironmentInfo Capture() => new(
        RuntimeInformation.OSDescription,
        RuntimeInformation.OSArchitecture.ToString().ToLowerInvariant(),
        ReadCpuModel(),
        System.Environment.ProcessorCount,
        RuntimeInformation.FrameworkDescription);

    /// <summary>
    /// The <c>model name</c> line of /proc/cpuinfo (x86), or <c>Hardware</c>/<c>CPU part</c> on ARM boards whose
    /// kernels print no model name.
    /// </summary>
    public static string? ReadCpuModel()
    {
        try
        {
            if (!File.Exists("/proc/cpuinfo")) return null;
            string? fallback = null;
            foreach (var line in File.ReadLines("/proc/cpuinfo"))
            {
                int colon = line.IndexOf(':');
                if (colon < 0) continue;
                var key = line[..colon].Trim();
                var value = line[(colon + 1)..].Trim();
                if (value.Length == 0) continue;
                if (key.Equals("model name", StringComparison.OrdinalIgnoreCase)) return value;
                if (fallback is null && (key == "Hardware" || key == "CPU part")) fallback = value;
            }
            return fallback;
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }
}

/// <summary>The unit of every figure in a <see cref="VerificationReport"/>, keyed by JSON name.</summary>
public static class ReportUnits
{
    public const string Ratio = "ratio";
    public const string Nats = "nats";
    public const string Fraction = "fraction";
    public const string Count = "count";
    public const string Milliseconds = "ms";
    public const string Seconds = "s";
    public const string TokensPerSecond = "tokens/s";
    public const string Megabytes = "MiB";
    public const string Bytes = "bytes";

    public static IReadOnlyDictionary<string, string> All { get; } = new SortedDictionary<string, string>(StringComparer.Ordinal)
    {
        // Perplexity is exp(mean NLL in nats): a dimensionless branching factor.
        ["ppl_base"] = Ratio, ["ppl_base_unc"] = Ratio, ["ppl_cand"] = Ratio, ["ppl_cand_unc"] = Ratio,
        ["ln_ppl_ratio"] = Nats, ["ln_ppl_ratio_unc"] = Nats, ["ln_ppl_cor"] = Ratio, ["ppl_increase"] = Fraction,
        ["kld_mean"] = Nats, ["kld_mean_unc"] = Nats, ["kld_max"] = Nats, ["kld_p99_9"] = Nats, ["kld_p99"] = Nats,
        ["kld_p95"] = Nats, ["kld_p90"] = Nats, ["kld_median"] = Nats, ["kld_p10"] = Nats, ["kld_p5"] = Nats,
        ["kld_p1"] = Nats, ["kld_min"] = Nats, ["chunk_kld"] = Nats,
        ["same_top_p"] = Fraction, ["same_top_p_unc"] = Fraction,
        ["delta_p_mean"] = Fraction, ["delta_p_mean_unc"] = Fraction, ["delta_p_rms"] = Fraction, ["delta_p_rms_unc"] = Fraction,
        ["delta_p_max"] = Fraction, ["delta_p_min"] = Fraction,
        ["n_scored"] = Count, ["n_chunks"] = Count, ["n_ctx"] = Count, ["n_vocab"] = Count, ["eval_seconds"] = Seconds,
        ["load_ms"] = Milliseconds, ["prefill_tps"] = TokensPerSecond, ["prefill_tokens"] = Count, ["ttft_ms"] = Milliseconds,
        ["decode_tps"] = TokensPerSecond, ["decode_tokens"] = Count, ["token_ms_p50"] = Milliseconds, ["token_ms_p95"] = Milliseconds,
        ["token_ms_p99"] = Milliseconds, ["token_ms"] = Milliseconds, ["peak_rss_mb"] = Megabytes,
        ["model_file_bytes"] = Bytes, ["file_bytes"] = Bytes, ["bytes_per_scored_token"] = Bytes, ["threads"] = Count,
    };

    /// <summary>The unit of <paramref name="metric"/>, or "1" for a figure without one.</summary>
    public static string Of(string metric) => All.TryGetValue(metric, out var u) ? u : "1";
}

/// <summary>The JSON form of <see cref="VerificationReport"/>: snake_case, indented, nulls omitted, NaN as "NaN".</summary>
public static class VerificationReportJson
{
    public static JsonSerializerOptions Options { get; } = CreateOptions();

    public static string Serialize(VerificationReport report) => JsonSerializer.Serialize(report, Options);

    /// <summary>Writes <c>report.json</c> into <paramref name="directory"/> (created if needed) through a temp file and a rename.</summary>
    /// <returns>The path written.</returns>
    public static string WriteFile(VerificationReport report, string directory, string fileName = "report.json")
    {
        Directory.CreateDirectory(directory);
        var path = System.IO.Path.Combine(directory, fileName);
        var temp = path + ".tmp-" + System.Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
        try
        {
            File.WriteAllText(temp, Serialize(report) + "\n");
            File.Move(temp, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
        return path;
    }

    /// <summary>Reads a report, refusing another document kind or a schema version this build does not know.</summary>
    public static VerificationReport Deserialize(string json, string sourceName)
    {
        VerificationReport? report;
        try
        {
            report = JsonSerializer.Deserialize<VerificationReport>(json, Options);
        }
        catch (JsonException e)
        {
            throw new FileFormatException(sourceName, e.Path ?? "$", e.BytePositionInLine, $"not a verification report: {e.Message}", e);
        }
        if (report is null) throw new FileFormatException(sourceName, "$", null, "empty document (null)");
        if (report.Schema != VerificationReport.SchemaName)
            throw new FileFormatException(sourceName, "schema", null, $"'{report.Schema}' is not '{VerificationReport.SchemaName}'");
        if (report.SchemaVersion < 1 || report.SchemaVersion > VerificationReport.CurrentSchemaVersion)
            throw new FileFormatException(sourceName, "schema_version", null,
                $"version {report.SchemaVersion} is not supported (this edgequant reads 1..{VerificationReport.CurrentSchemaVersion})");
        return report;
    }

    public static VerificationReport ReadFile(string path)
    {
        if (!File.Exists(path)) throw new BadInputException($"{path}: no such report file");
        return Deserialize(File.ReadAllText(path), path);
    }

    private static JsonSerializerOptions CreateOptions()
    {
        var o = new JsonSerializerOptions
        {
            PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
            DictionaryKeyPolicy = null,
            WriteIndented = true,
            DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
            // A statistic over too few values is NaN; it must survive the round trip rather than fail serialization.
            NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
            Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        };
        o.Converters.Add(new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower));
        o.MakeReadOnly(populateMissingResolver: true);
        return o;
    }
}
