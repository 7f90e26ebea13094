using System.Diagnostics;
using System.Text.RegularExpressions;
using EdgeQuant.Compression.OnnxQuant;
using EdgeQuant.Core.Errors;
using EdgeQuant.Core.Tensors;
using EdgeQuant.Models;

namespace EdgeQuant.Export.Onnx.Quant;

/// <summary>What <see cref="OnnxQuantizer.Quantize"/> does: one scheme, its options, and the calibration it may need.</summary>
public sealed record OnnxQuantizeOptions
{
    /// <summary>Attention as ORT's fused GroupQueryAttention (<see cref="OnnxExportOptions.FusedAttention"/>).</summary>
    public bool FusedAttention { get; init; }

    /// <summary>Query blocks of standard-op attention (<see cref="OnnxExportOptions.AttentionBlocks"/>).</summary>
    public int AttentionBlocks { get; init; } = OnnxExportOptions.DefaultAttentionBlocks;

    public OnnxQuantScheme Scheme { get; init; } = OnnxQuantScheme.Int8Dynamic;

    public Int8DynamicOptions Dynamic { get; init; } = new();

    public Int8StaticOptions Static { get; init; } = new();

    public Int4WeightOptions Int4 { get; init; } = new();

    /// <summary>Calibration sequences: needed by int8-static (unless <see cref="Ranges"/> is given) and by SmoothQuant.</summary>
    public IReadOnlyList<int[]>? Calibration { get; init; }

    /// <summary>SHA-256 of the calibration inputs, recorded in the ranges and the model's metadata.</summary>
    public string? CalibrationSha256 { get; init; }

    /// <summary>SmoothQuant migration strength α in [0, 1] (null: no smoothing).</summary>
    public double? SmoothAlpha { get; init; }

    /// <summary>int8-static: reuse these ranges instead of calibrating.</summary>
    public ActivationRanges? Ranges { get; init; }

    /// <summary>int8-static: also write the ranges used to this JSON file (after the model folder is in place).</summary>
    public string? RangesOut { get; init; }

    /// <summary>Quantize linear weights stored in a ggml block type (dequantized first), instead of refusing them.</summary>
    public bool AllowRequantize { get; init; }

    public bool AllowNonFinite { get; init; }

    public bool Overwrite { get; init; }

    public int Threads { get; init; } = Environment.ProcessorCount;
}

/// <summary>A stage of <see cref="OnnxQuantizer.Quantize"/>: "smoothing", "calibrating" or "exporting", with (done, total) steps.</summary>
public readonly record struct OnnxQuantizeProgress(string Stage, int Done, int Total);

/// <summary>One linear layer of the decoder as the exporter will meet it (hook names as the engine's).</summary>
/// <param name="Layer">attn_q … ffn_down of a block, or <c>output</c> (GPT-2's fused attn_qkv is listed as attn_q/k/v).</param>
/// <param name="HookLayer">The engine's name for its input (GPT-2: <c>blk.N.attn_qkv</c>).</param>
public sealed record OnnxLinearLayerInfo(string Layer, string HookLayer, string WeightName, int OutDim, int InDim);

/// <param name="Quantized">Layers the scheme wrote in its quantized pattern (graph order).</param>
/// <param name="Excluded">Linear layers left as FP32 MatMuls (excluded, the LM head by default, or declined by the scheme).</param>
/// <param name="FolderBytes">All files of the folder (model, external data, tokenizer, config).</param>
public sealed record OnnxQuantizeResult(string Folder, string ModelPath, string Scheme, IReadOnlyList<string> Quantized, IReadOnlyList<string> Excluded,
    long WeightBytes, long FolderBytes, long ModelFileBytes, bool Smoothed, ActivationRanges? Ranges, string? RangesPath, TimeSpan Elapsed);

/// <summary>
/// <c>edgequant quantize --format onnx</c>: checks that the scheme applies to the model, optionally smooths it
/// (SmoothQuant), calibrates activation ranges (int8-static), and exports the decoder through <see cref="OnnxExporter"/>
/// with the scheme's <see cref="IOnnxLinearLowering"/>. The exporter writes a temporary sibling folder and renames it, so
/// a refusal, a failure or a cancellation leaves nothing behind; refusals come before any long work.
/// </summary>
public static class OnnxQuantizer
{
    /// <summary>MatMulNBits' smallest block is 16 weights: a narrower input dimension would be all padding.</summary>
    public const int Int4MinInputDim = 16;

    private static readonly Regex BlockLinear = new(@"^blk\.(\d+)\.(attn_q|attn_k|attn_v|attn_qkv|attn_output|ffn_gate|ffn_up|ffn_down)\.weight$",
        RegexOptions.CultureInvariant);

    public static string SchemeName(OnnxQuantScheme s) => s switch
    {
        OnnxQuantScheme.Int8Dynamic => "int8-dynamic",
        OnnxQuantScheme.Int8Static => "int8-static",
        OnnxQuantScheme.Int4Weight => "int4-weight",
        _ => throw new ArgumentOutOfRangeException(nameof(s)),
    };

    public static OnnxQuantScheme ParseScheme(string text) => text.ToLowerInvariant() switch
    {
        "int8-dynamic" or "int8_dynamic" => OnnxQuantScheme.Int8Dynamic,
        "int8-static" or "int8_static" or "qdq" => OnnxQuantScheme.Int8Static,
        "int4-weight" or "int4_weight" or "int4" => OnnxQuantScheme.Int4Weight,
        _ => throw new BadInputException($"--scheme: '{text}' is not one of int8-dynamic, int8-static, int4-weight"),
    };

    /// <summary>The scheme's layer selection.</summary>
    public static LayerSelection Selection(OnnxQuantizeOptions o) => o.Scheme switch
    {
        OnnxQuantScheme.Int8Dynamic => o.Dynamic.Layers,
        OnnxQuantScheme.Int8Static => o.Static.Layers,
        _ => o.Int4.Layers,
    };

    /// <summary>
    /// The decoder's linear layers in graph order, from the model's tensors: per block attn_q/k/v (GPT-2's fused
    /// attn_qkv split in three, as the exporter does), attn_output, ffn_gate, ffn_up, ffn_down; then the LM head.
    /// </summary>
    public static IReadOnlyList<OnnxLinearLayerInfo> LinearLayers(Model model)
    {
        var c = model.Config;
        var byBlock = new SortedDictionary<int, List<OnnxLinearLayerInfo>>();
        string[] order = ["attn_q", "attn_k", "attn_v", "attn_qkv", "attn_output", "ffn_gate", "ffn_up", "ffn_down"];
        foreach (var t in model.Tensors)
        {
            var m = BlockLinear.Match(t.Name);
            if (!m.Success || t.Shape.Length != 2) continue;
            int block = int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
            string kind = m.Groups[2].Value, prefix = $"blk.{block}.";
            if (!byBlock.TryGetValue(block, out var list)) byBlock[block] = list = [];
            int outDim = checked((int)t.Shape[0]), inDim = checked((int)t.Shape[1]);
            if (kind == "attn_qkv")
            {
                // GPT-2: the exporter splits the fused rows into three equal parts, all fed the hook's one input.
                foreach (var part in new[] { "attn_q", "attn_k", "attn_v" })
                    list.Add(new OnnxLinearLayerInfo(prefix + part, prefix + kind, prefix + part + ".weight", outDim / 3, inDim));
            }
            else list.Add(new OnnxLinearLayerInfo(prefix + kind, prefix + kind, t.Name, outDim, inDim));
        }
        var layers = new List<OnnxLinearLayerInfo>();
        foreach (var (_, list) in byBlock)
            layers.AddRange(list.OrderBy(l => Array.IndexOf(order, l.Layer[(l.Layer.LastIndexOf('.') + 1)..])));
        layers.Add(new OnnxLinearLayerInfo("output", "output", "output.weight", c.VocabSize, c.EmbeddingLength));
        return layers;
    }

    /// <summary>
    /// Refuses (exit 2, before any long work) what the scheme cannot do for this model: an --exclude naming no layer, a
    /// selection leaving nothing to quantize, 4-bit blocks on inputs narrower than <see cref="Int4MinInputDim"/>, ggml
    /// block-quantized weights (unless <see cref="OnnxQuantizeOptions.AllowRequantize"/>), static ranges missing a layer.
    /// </summary>
    public static IReadOnlyList<OnnxLinearLayerInfo> CheckSupported(Model model, OnnxQuantizeOptions o)
    {
        string src = model.Provenance.SourcePath;
        string scheme = SchemeName(o.Scheme);
        var c = model.Config;
        if (c.Architecture is not (Architecture.Llama or Architecture.Qwen2 or Architecture.Gpt2))
            throw new BadInputException($"{src}: architecture {c.Architecture} cannot be exported to ONNX, so --scheme {scheme} does not apply (supported: llama, mistral, qwen2, gpt2)");
        var layers = LinearLayers(model);
        var selection = Selection(o);
        var names = layers.Select(l => l.Layer).Concat(layers.Where(l => l.HookLayer != l.Layer).Select(l => l.HookLayer).Distinct()).ToList();
        selection.Validate(names);
        var chosen = layers.Where(l => selection.Includes(l.Layer)).ToList();
        if (chosen.Count == 0)
            throw new BadInputException($"--exclude: '{selection.Exclude}' excludes every linear layer: --scheme {scheme} would quantize nothing");
        if (o.Scheme == OnnxQuantScheme.Int4Weight && chosen.FirstOrDefault(l => l.InDim < Int4MinInputDim) is { } narrow)
            throw new BadInputException($"{src}: layer '{narrow.Layer}' has {narrow.InDim} inputs; --scheme int4-weight needs at least {Int4MinInputDim} (exclude it with --exclude)");
        if (!o.AllowRequantize)
            foreach (var l in chosen)
            {
                string tensor = l.Layer == "output" && model.Find("output.weight") is null ? "token_embd.weight"
                    : l.HookLayer != l.Layer ? l.HookLayer + ".weight" : l.WeightName;
                if (model.Find(tensor) is { } t && TensorTypes.Get(t.Type).IsQuantized)
                    throw new BadInputException($"{src}: tensor '{tensor}' is already quantized ({TensorTypes.Get(t.Type).Name}); quantizing it again loses more accuracy than quantizing the original (pass --allow-requantize to do it anyway)");
            }
        if (o.Scheme == OnnxQuantScheme.Int8Static)
        {
            if (o.Ranges is null && (o.Calibration is null || o.Calibration.Count == 0))
                throw new BadInputException("--scheme int8-static needs activation ranges: pass --calib FILES (or --ranges F.json from an earlier run)");
            if (o.Ranges is { } r) CheckRanges(r, chosen, model);
        }
        if (o.SmoothAlpha is { } a)
        {
            if (!(a >= 0 && a <= 1)) throw new BadInputException($"--smooth-alpha: {a} is outside [0, 1]");
            if (o.Scheme == OnnxQuantScheme.Int4Weight)
                throw new BadInputException("--smooth-alpha: SmoothQuant moves activation outliers into the weights; --scheme int4-weight does not quantize activations");
            if (o.Calibration is null || o.Calibration.Count == 0) throw new BadInputException("--smooth-alpha needs calibration text: pass --calib FILES");
        }
        if (o.Calibration is { } seqs)
            foreach (var s in seqs)
            {
                if (s.Length > c.ContextLength)
                    throw new BadInputException($"--calib-seq-len: {s.Length} exceeds the model's context length {c.ContextLength}");
                foreach (int id in s)
                    if ((uint)id >= (uint)c.VocabSize) throw new BadInputException($"calibration token {id} is outside the model's vocabulary of {c.VocabSize}");
            }
        return layers;
    }

    private static void CheckRanges(ActivationRanges r, IEnumerable<OnnxLinearLayerInfo> chosen, Model model)
    {
        string from = r.SourcePath ?? "--ranges";
        foreach (var l in chosen)
            if (!r.Layers.ContainsKey(l.HookLayer) && !r.Layers.ContainsKey(l.Layer))
                throw new BadInputException($"{from}: no activation range for layer '{l.HookLayer}' (ranges of another model? they were collected on {r.ModelFile ?? "an unnamed model"})");
    }

    public static OnnxQuantizeResult Quantize(Model model, string outputDir, OnnxQuantizeOptions options, IProgress<OnnxQuantizeProgress>? progress = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        if (options.Threads < 1) throw new BadInputException($"--threads: {options.Threads} must be positive");
        var started = Stopwatch.StartNew();
        ExportPaths.CheckOutput(model.Provenance.SourcePath, outputDir, options.Overwrite);
        if (options.RangesOut is { } ro)
        {
            if (options.Scheme != OnnxQuantScheme.Int8Static) throw new BadInputException("--ranges-out: only --scheme int8-static has activation ranges");
            if (Directory.Exists(ro)) throw new BadInputException($"--ranges-out: {ro} is a folder");
            if (File.Exists(ro) && !options.Overwrite) throw new BadInputException($"--ranges-out: {ro} exists (pass --force to replace it)");
        }
        var layers = CheckSupported(model, options);

        Model working = model;
        try
        {
            if (options.SmoothAlpha is { } alpha)
            {
                progress?.Report(new OnnxQuantizeProgress("smoothing", 0, 1));
                working = SmoothQuant.Apply(model, options.Calibration!, alpha, options.Threads, cancellationToken);
                progress?.Report(new OnnxQuantizeProgress("smoothing", 1, 1));
            }

            ActivationRanges? ranges = null;
            IOnnxLinearLowering lowering;
            switch (options.Scheme)
            {
                case OnnxQuantScheme.Int8Dynamic:
                    lowering = new Int8DynamicLowering(options.Dynamic);
                    break;
                case OnnxQuantScheme.Int8Static:
                    ranges = options.Ranges;
                    if (ranges is null)
                    {
                        var relay = progress is null ? null : new Relay<(int Done, int Total)>(p => progress.Report(new OnnxQuantizeProgress("calibrating", p.Done, p.Total)));
                        ranges = ActivationCalibrator.Collect(working, options.Calibration!, options.Static, options.Threads, relay, cancellationToken);
                        ranges = WithCalibration(ranges, options.CalibrationSha256);
                    }
                    lowering = new QdqLowering(ranges, options.Static);
                    break;
                default:
                    lowering = new MatMulNBitsLowering(options.Int4);
                    break;
            }

            cancellationToken.ThrowIfCancellationRequested();
            var counting = new CountingLowering(lowering, options.SmoothAlpha, options.CalibrationSha256);
            var result = OnnxExporter.Export(working, outputDir, new OnnxExportOptions
            {
                Overwrite = options.Overwrite,
                AllowNonFinite = options.AllowNonFinite,
                Linear = counting,
                FusedAttention = options.FusedAttention,
                AttentionBlocks = options.AttentionBlocks,
                TensorWritten = progress is null ? null : (done, total) => progress.Report(new OnnxQuantizeProgress("exporting", done, total)),
            }, cancellationToken);

            string? rangesPath = null;
            if (options.RangesOut is { } path && ranges is not null)
            {
                // After the model folder is in place, so a refused or failed run leaves neither (Write renames a temporary).
                ranges.Write(path);
                rangesPath = path;
            }

            var quantized = counting.Quantized;
            var quantizedSet = quantized.ToHashSet(StringComparer.Ordinal);
            var excluded = layers.Select(l => l.Layer).Where(l => !quantizedSet.Contains(l)).ToList();
            long folderBytes = Directory.EnumerateFiles(result.Folder, "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length);
            long modelBytes = new FileInfo(result.ModelPath).Length
                + (result.ExternalData ? new FileInfo(Path.Combine(result.Folder, OnnxExporter.ExternalDataFileName)).Length : 0);
            return new OnnxQuantizeResult(result.Folder, result.ModelPath, lowering.Scheme, quantized, excluded, result.WeightBytes, folderBytes, modelBytes,
                options.SmoothAlpha is not null, ranges, rangesPath, started.Elapsed);
        }
        finally
        {
            if (!ReferenceEquals(working, model)) working.Dispose();
        }
    }

    private static ActivationRanges WithCalibration(ActivationRanges r, string? sha) =>
        sha is null || r.CalibrationSha256 is not null ? r : new ActivationRanges(r.Method, r.Layers)
        {
            ModelName = r.ModelName, ModelFile = r.ModelFile, ModelSha256 = r.ModelSha256, Percentile = r.Percentile, Bins = r.Bins,
            Symmetric = r.Symmetric, Sequences = r.Sequences, Tokens = r.Tokens, CalibrationSha256 = sha, SourcePath = r.SourcePath,
        };

    private sealed class Relay<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }

    /// <summary>Records which layers the scheme quantized and adds the pipeline's own metadata to the scheme's.</summary>
    private sealed class CountingLowering(IOnnxLinearLowering inner, double? smoothAlpha, string? calibrationSha256) : IOnnxLinearLowering
    {
        private readonly List<string> _quantized = [];

        public IReadOnlyList<string> Quantized => _quantized;

        public string Scheme => inner.Scheme;

        public string? Emit(OnnxGraphBuilder b, OnnxLinear linear)
        {
            var y = inner.Emit(b, linear);
            if (y is not null) _quantized.Add(linear.Layer);
            return y;
        }

        public IEnumerable<KeyValuePair<string, string>> Metadata
        {
            get
            {
                var keys = new HashSet<string>(StringComparer.Ordinal);
                foreach (var kv in inner.Metadata)
                    if (keys.Add(kv.Key)) yield return kv;
                var ours = new List<KeyValuePair<string, string>> { new("edgequant.quantized_layers", _quantized.Count.ToString(System.Globalization.CultureInfo.InvariantCulture)) };
                if (smoothAlpha is { } a) ours.Add(new("edgequant.smooth_alpha", a.ToString("R", System.Globalization.CultureInfo.InvariantCulture)));
                if (calibrationSha256 is not null) ours.Add(new("edgequant.calibration_sha256", calibrationSha256));
                foreach (var kv in ours)
                    if (keys.Add(kv.Key)) yield return kv;
            }
        }
    }
}
