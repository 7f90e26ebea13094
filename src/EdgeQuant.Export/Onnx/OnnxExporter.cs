using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using EdgeQuant.Core.Errors;
using EdgeQuant.Core.Tensors;
using EdgeQuant.Formats.Onnx.Proto;
using EdgeQuant.Models;
using EdgeQuant.Models.Loading;
using EdgeQuant.Models.Tokenizers;
using static EdgeQuant.Export.Onnx.OnnxGraphBuilder;
using Architecture = EdgeQuant.Models.Architecture;
using DataType = EdgeQuant.Formats.Onnx.Proto.TensorProto.Types.DataType;

namespace EdgeQuant.Export.Onnx;

public sealed record OnnxExportOptions
{
    /// <summary>Replace an existing output folder.</summary>
    public bool Overwrite { get; init; }

    /// <summary>Write NaN/Inf weights instead of refusing them.</summary>
    public bool AllowNonFinite { get; init; }

    /// <summary>Default-domain opset, 17..21 (17: every op used exists there, and Debian's onnx 1.12 checker knows it).</summary>
    public int Opset { get; init; } = DefaultOpset;

    /// <summary>
    /// Weights larger than this (in bytes, all together) go to <c>model.onnx.data</c> beside the model. Default: just
    /// under protobuf's 2 GiB limit; tests lower it to exercise the external-data path on small models.
    /// </summary>
    public long ExternalDataThresholdBytes { get; init; } = InlineLimitBytes;

    /// <summary>Called after each weight is written with (weights written, weights in all), for progress displays.</summary>
    public Action<int, int>? TensorWritten { get; init; }

    /// <summary>How linear layers become nodes; null: FP32 MatMul on a transposed initializer.</summary>
    public IOnnxLinearLowering? Linear { get; init; }

    /// <summary>Storage of the weights that stay float.</summary>
    public OnnxWeightType WeightType { get; init; } = OnnxWeightType.Float32;

    /// <summary>
    /// Past/present KV inputs and outputs (Optimum's decoder-with-past signature). Without them the graph takes the
    /// whole sequence on every call (<c>OrtLogitsRunner</c> re-runs the history), as some deployment tools want.
    /// </summary>
    public bool KvCache { get; init; } = true;

    /// <summary>
    /// Attention as ONNX Runtime's fused com.microsoft <c>GroupQueryAttention</c> (causal, rotary inside, KV cache in
    /// BNSH like the standard graph) instead of standard ops. Runs only in ONNX Runtime; assumes right padding
    /// (sequence lengths from attention_mask) and positions past_length + i, so position_ids is unused.
    /// </summary>
    public bool FusedAttention { get; init; }

    /// <summary>
    /// Standard-op attention splits the new positions into this many query blocks (1..16); block i attends only to the
    /// keys up to its own last position, so a causal prefill computes and normalizes about (n+1)/2n of the score
    /// matrix instead of all of it (with 4 blocks, 0.63×). The result is the same attention up to float rounding;
    /// 1 gives the single-block graph. A call with one new position (a decode step) takes the single-block branch of an
    /// <c>If</c>, so decoding pays nothing for the blocks. Ignored with <see cref="FusedAttention"/>.
    /// </summary>
    public int AttentionBlocks { get; init; } = DefaultAttentionBlocks;

    public const int DefaultAttentionBlocks = 4, MaxAttentionBlocks = 16;

    /// <summary>
    /// Refuses a block count outside 1..<see cref="MaxAttentionBlocks"/>, or one given together with fused attention
    /// (<paramref name="blocks"/> null: not given).
    /// </summary>
    public static void CheckAttentionBlocks(int? blocks, bool fusedAttention)
    {
        if (blocks is null) return;
        if (fusedAttention) throw new BadInputException("--attention-blocks applies to standard-op attention, not --fused-attention");
        if (blocks is < 1 or > MaxAttentionBlocks) throw new BadInputException($"--attention-blocks: {blocks} is outside 1..{MaxAttentionBlocks}");
    }
}

/// <param name="Folder">The output folder.</param>
/// <param name="ModelPath">The folder's model.onnx.</param>
/// <param name="WeightCount">Model tensors written as initializers.</param>
/// <param name="WeightBytes">Initializer bytes (inline and external).</param>
/// <param name="ExternalData">True when the weights are in model.onnx.data.</param>
public sealed record OnnxExportResult(string Folder, string ModelPath, int WeightCount, long WeightBytes, bool ExternalData, Architecture Architecture);

/// <summary>
/// <see cref="Model"/> → folder with <c>model.onnx</c> (an FP32 decoder with a KV cache, Optimum / onnxruntime-genai
/// names), <c>tokenizer.json</c> + <c>tokenizer_config.json</c> and <c>genai_config.json</c>. Standard ONNX ops only,
/// so any ONNX runtime can run it. See docs/onnx-export.md for the graph.
/// </summary>
public static class OnnxExporter
{
    public const string ModelFileName = "model.onnx";
    public const string ExternalDataFileName = "model.onnx.data";
    public const string GenaiConfigFileName = "genai_config.json";

    // Symbolic dimension names, as Optimum writes them.
    private const string Batch = "batch_size", Seq = "sequence_length", Past = "past_sequence_length", Total = "total_sequence_length";

    public static OnnxExportResult Export(Model model, string outputDir, OnnxExportOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new OnnxExportOptions();
        if (options.Opset is < 17 or > 21) throw new BadInputException($"--opset: {options.Opset} is outside 17..21");
        // The default count is always set, so only its range is checked here (fused attention ignores it).
        OnnxExportOptions.CheckAttentionBlocks(options.AttentionBlocks, fusedAttention: false);
        var c = model.Config;
        string src = model.Provenance.SourcePath;
        if (c.Architecture is not (Architecture.Llama or Architecture.Qwen2 or Architecture.Gpt2))
            throw new BadInputException($"{src}: architecture {c.Architecture} cannot be exported to ONNX (supported: llama, mistral, qwen2, gpt2)");
        ExportPaths.CheckOutput(src, outputDir, options.Overwrite);
        if (File.Exists(outputDir)) throw new BadInputException($"{outputDir}: is a file; an ONNX export writes a folder");
        Validate(c, src);
        if (options.FusedAttention && c.HeadDim % 16 != 0)
            throw new BadInputException($"{src}: head_dim {c.HeadDim} is not a multiple of 16, which ONNX Runtime's GroupQueryAttention requires; export without --fused-attention");
        var tokenizer = model.Tokenizer is null ? null : Tokenizer.FromModel(model);

        string full = Path.GetFullPath(outputDir).TrimEnd(Path.DirectorySeparatorChar);
        string parent = Path.GetDirectoryName(full) ?? ".";
        Directory.CreateDirectory(parent);
        string temp = Path.Combine(parent, $".{Path.GetFileName(full)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        Directory.CreateDirectory(temp);
        try
        {
            var graph = new GraphWriter(model, options, cancellationToken);
            using (var b = new OnnxGraphBuilder(SafeName(model), options.Opset))
            {
                if (graph.EstimatedBytes > options.ExternalDataThresholdBytes) b.UseExternalData(temp, ExternalDataFileName);
                graph.Write(b);
                foreach (var (k, v) in Provenance(model, options)) b.Metadata(k, v);
                if (options.Linear is not null)
                    foreach (var (k, v) in options.Linear.Metadata) b.Metadata(k, v);
                var proto = b.Build("edgequant", ExportTypes.ToolVersion, $"{c.Architecture} decoder exported by EdgeQuant from {Path.GetFileName(Path.TrimEndingDirectorySeparator(src))}");
                OnnxGraphBuilder.Save(proto, Path.Combine(temp, ModelFileName));
                tokenizer?.WriteHuggingFace(temp);
                WriteGenaiConfig(Path.Combine(temp, GenaiConfigFileName), c, tokenizer, options.KvCache);
                var result = new OnnxExportResult(full, Path.Combine(full, ModelFileName), graph.WeightCount, b.InlineBytes + b.ExternalBytes,
                    b.ExternalDataFile is not null, c.Architecture);
                ExportPaths.ReplaceFolder(temp, full, options.Overwrite);
                return result;
            }
        }
        catch
        {
            ExportPaths.TryDeleteFolder(temp);
            throw;
        }
    }

    private static void Validate(ModelConfig c, string src)
    {
        void Check(bool ok, string what)
        {
            if (!ok) throw new BadInputException($"{src}: model config {what} cannot be exported to ONNX");
        }
        Check(c.VocabSize > 0 && c.EmbeddingLength > 0 && c.BlockCount > 0 && c.FeedForwardLength > 0, "sizes (vocab, n_embd, n_layer, n_ff)");
        CanonicalTensors.CheckLayerWidths(c, src);
        Check(c.HeadCount > 0 && c.HeadCountKv > 0 && (c.HasPerLayerWidths || c.HeadCount % c.HeadCountKv == 0), $"n_head {c.HeadCount} / n_head_kv {c.HeadCountKv}");
        Check(c.HeadDim > 0 && (c.Architecture == Architecture.Gpt2 || c.HeadDim % 2 == 0), $"head_dim {c.HeadDim}");
        Check(c.NormEpsilon > 0 && float.IsFinite(c.NormEpsilon), $"norm epsilon {c.NormEpsilon}");
        Check(c.Architecture == Architecture.Gpt2 || (c.RopeTheta > 1 && float.IsFinite(c.RopeTheta)), $"rope_theta {c.RopeTheta}");
        Check(c.Architecture != Architecture.Gpt2 || c.HeadCountKv == c.HeadCount, "GPT-2 with grouped-query attention");
    }

    private static string SafeName(Model model) =>
        model.Provenance.Name ?? Path.GetFileNameWithoutExtension(Path.TrimEndingDirectorySeparator(model.Provenance.SourcePath));

    private static IEnumerable<(string, string)> Provenance(Model model, OnnxExportOptions options)
    {
        var c = model.Config;
        yield return ("edgequant.version", ExportTypes.ToolVersion);
        yield return ("edgequant.source_format", model.Provenance.Format.ToString());
        yield return ("edgequant.source_file", Path.GetFileName(Path.TrimEndingDirectorySeparator(model.Provenance.SourcePath)));
        yield return ("edgequant.source_architecture", c.SourceArchitecture);
        yield return ("edgequant.architecture", c.Architecture.ToString().ToLowerInvariant());
        yield return ("edgequant.dtype", options.Linear?.Scheme ?? (options.WeightType == OnnxWeightType.Float16 ? "fp16" : "fp32"));
        // Q/K rows are written in rotate-half order whatever the source layout; a reader mapping weights back needs to know.
        if (c.Architecture != Architecture.Gpt2) yield return ("edgequant.rope_layout", "rotate_half");
        // genai_config.json holds one num_key_value_heads (the largest is written there): the per-layer widths of a
        // structurally pruned model go here, comma-separated, one entry per layer (genai_config refuses unknown keys).
        if (c.HasPerLayerWidths)
        {
            string List(Func<int, int> of) => string.Join(",", Enumerable.Range(0, c.BlockCount).Select(of));
            yield return ("edgequant.layer_num_attention_heads", List(c.HeadsIn));
            yield return ("edgequant.layer_num_key_value_heads", List(c.KvHeadsIn));
            yield return ("edgequant.layer_intermediate_size", List(c.FeedForwardIn));
        }
        yield return ("edgequant.weight_layout", "MatMul weights stored transposed [in, out] under llama.cpp tensor names");
    }

    /// <summary>onnxruntime-genai's genai_config.json shape, with the fields <c>OrtLogitsRunner</c> reads (vocab_size, context_length).</summary>
    private static void WriteGenaiConfig(string path, ModelConfig c, Tokenizer? tokenizer, bool kvCache)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteStartObject("model");
            if (tokenizer?.BosId is { } bos) w.WriteNumber("bos_token_id", bos);
            w.WriteNumber("context_length", c.ContextLength);
            w.WriteStartObject("decoder");
            w.WriteString("filename", ModelFileName);
            w.WriteNumber("head_size", c.HeadDim);
            w.WriteNumber("hidden_size", c.EmbeddingLength);
            w.WriteStartObject("inputs");
            w.WriteString("input_ids", "input_ids");
            w.WriteString("attention_mask", "attention_mask");
            w.WriteString("position_ids", "position_ids");
            if (kvCache)
            {
                w.WriteString("past_key_names", "past_key_values.%d.key");
                w.WriteString("past_value_names", "past_key_values.%d.value");
            }
            w.WriteEndObject();
            w.WriteStartObject("outputs");
            w.WriteString("logits", "logits");
            if (kvCache)
            {
                w.WriteString("present_key_names", "present.%d.key");
                w.WriteString("present_value_names", "present.%d.value");
            }
            w.WriteEndObject();
            // One value each: with per-layer widths the largest (the per-layer lists are in model.onnx's metadata).
            w.WriteNumber("num_attention_heads", Enumerable.Range(0, c.BlockCount).Max(c.HeadsIn));
            w.WriteNumber("num_hidden_layers", c.BlockCount);
            w.WriteNumber("num_key_value_heads", Enumerable.Range(0, c.BlockCount).Max(c.KvHeadsIn));
            w.WriteEndObject();
            if (tokenizer?.EosId is { } eos) w.WriteNumber("eos_token_id", eos);
            if (tokenizer?.PaddingId is { } pad) w.WriteNumber("pad_token_id", pad);
            w.WriteString("type", c.Architecture.ToString().ToLowerInvariant());
            w.WriteNumber("vocab_size", c.VocabSize);
            w.WriteEndObject();
            w.WriteStartObject("search");
            w.WriteNumber("max_length", c.ContextLength);
            w.WriteEndObject();
            w.WriteEndObject();
        }
        File.WriteAllBytes(path, ms.ToArray());
    }

    /// <summary>Emits the decoder graph for one model; reads one tensor at a time.</summary>
    private sealed class GraphWriter(Model model, OnnxExportOptions options, CancellationToken ct)
    {
        private readonly ModelConfig _c = model.Config;
        private readonly string _src = model.Provenance.SourcePath;
        private readonly bool _gpt2 = model.Config.Architecture == Architecture.Gpt2;
        private OnnxGraphBuilder _b = null!;
        private int _written;
        private string? _mask, _cos, _sin;

        public int WeightCount { get; private set; }

        private int TotalWeights => model.Tensors.Count;

        /// <summary>F32 bytes of every weight, plus the transposed copy a tied output matrix needs.</summary>
        public long EstimatedBytes =>
            model.Tensors.Sum(t => t.ElementCount * 4L) + (model.Find("output.weight") is null || _c.TiedEmbeddings ? (long)_c.VocabSize * _c.EmbeddingLength * 4 : 0);

        public void Write(OnnxGraphBuilder b)
        {
            _b = b;
            var c = _c;
            int hd = c.HeadDim;
            b.Input("input_ids", DataType.Int64, Batch, Seq);
            b.Input("attention_mask", DataType.Int64, Batch, Total);
            b.Input("position_ids", DataType.Int64, Batch, Seq);
            for (int l = 0; l < CachedLayers; l++)
            {
                b.Input($"past_key_values.{l}.key", DataType.Float, Batch, (long)c.KvHeadsIn(l), Past, (long)hd);
                b.Input($"past_key_values.{l}.value", DataType.Float, Batch, (long)c.KvHeadsIn(l), Past, (long)hd);
            }

            string embd = Weight("token_embd.weight", [c.VocabSize, c.EmbeddingLength], transpose: false);
            string x = b.Op("Gather", "embed", [embd, "input_ids"]);
            if (_gpt2)
            {
                var pe = model.Get("position_embd.weight");
                if (pe.Shape.Length != 2 || pe.Shape[1] != c.EmbeddingLength || pe.Shape[0] < 1)
                    throw new BadInputException($"{_src}: tensor 'position_embd.weight' has shape [{string.Join(", ", pe.Shape)}], expected [n_ctx, {c.EmbeddingLength}]");
                string pos = Weight("position_embd.weight", pe.Shape, transpose: false);
                x = b.Op("Add", "embed", [x, b.Op("Gather", "embed_positions", [pos, "position_ids"])]);
            }
            if (options.FusedAttention) BuildFusedAttentionInputs();
            else
            {
                BuildMask();
                if (!_gpt2) BuildRope();
            }

            for (int l = 0; l < c.BlockCount; l++)
            {
                ct.ThrowIfCancellationRequested();
                x = Block(l, x);
            }

            string h = Norm(x, "output_norm");
            bool separate = !c.TiedEmbeddings && model.Find("output.weight") is not null;
            // A tied model may still list output.weight as an alias of the embedding (llama2.c's shared classifier).
            if (!separate) _used.Add("output.weight");
            float[] headRows;
            if (separate) headRows = Read("output.weight", [c.VocabSize, c.EmbeddingLength]);
            else
            {
                _used.Add("token_embd.weight");
                headRows = model.Get("token_embd.weight").ToFloat32();
            }
            string? bias = model.Find("output.bias") is null ? null : Weight("output.bias", [c.VocabSize], transpose: false);
            string logits = Linear(h, "output", "lm_head", headRows, c.VocabSize, c.EmbeddingLength, bias, "output.weight");
            b.Node("Identity", [logits], ["logits"], "lm_head/Identity");
            b.Output("logits", DataType.Float, Batch, Seq, (long)c.VocabSize);
            for (int l = 0; l < CachedLayers; l++)
            {
                b.Output($"present.{l}.key", DataType.Float, Batch, (long)c.KvHeadsIn(l), Total, (long)hd);
                b.Output($"present.{l}.value", DataType.Float, Batch, (long)c.KvHeadsIn(l), Total, (long)hd);
            }
            var unused = model.Tensors.Select(t => t.Name).Where(n => !_used.Contains(n)).ToList();
            if (unused.Count > 0)
                throw new BadInputException($"{_src}: tensor '{unused[0]}' has no place in the ONNX {c.Architecture} graph{(unused.Count > 1 ? $" (and {unused.Count - 1} more)" : "")}");
        }

        private readonly HashSet<string> _used = new(StringComparer.Ordinal);

        /// <summary>Layers with past/present KV values in the signature: all, or none without a KV cache.</summary>
        private int CachedLayers => options.KvCache ? _c.BlockCount : 0;

        /// <summary>
        /// The layer's keys or values over past and new positions: Concat(past, new) as present.N.key|value, or just the
        /// new ones when the graph has no cache.
        /// </summary>
        private string CacheConcat(int l, string kind, string current, string nodeName) =>
            options.KvCache
                ? _b.Node("Concat", [$"past_key_values.{l}.{kind}", current], [$"present.{l}.{kind}"], nodeName, "", Attr("axis", 2L))
                : current;

        /// <summary>
        /// Additive attention mask [batch, 1, seq, total]: 0 where key j may be seen by query i (j ≤ past + i, by
        /// index, and attention_mask[j] = 1), float.MinValue elsewhere — finite, so a fully padded row stays a
        /// (meaningless) uniform softmax instead of NaN.
        /// </summary>
        private void BuildMask()
        {
            var b = _b;
            string seq = b.Op("Shape", "mask/seq", ["input_ids"], Attr("start", 1L), Attr("end", 2L));
            // Without a cache no position precedes the fed ones.
            string past = options.KvCache ? b.Op("Shape", "mask/past", ["past_key_values.0.key"], Attr("start", 2L), Attr("end", 3L)) : b.Int64s([0]);
            string total = b.Op("Add", "mask/total", [past, seq]);
            string axis0 = b.Int64s([0]);
            string pastS = b.Op("Squeeze", "mask/past", [past, axis0]);
            string totalS = b.Op("Squeeze", "mask/total", [total, axis0]);
            string qpos = b.Op("Range", "mask/query_positions", [pastS, totalS, b.Scalar(1L)]);
            string kpos = b.Op("Range", "mask/key_positions", [b.Scalar(0L), totalS, b.Scalar(1L)]);
            string causal = b.Op("LessOrEqual", "mask/causal",
                [b.Op("Unsqueeze", "mask/key_row", [kpos, axis0]), b.Op("Unsqueeze", "mask/query_column", [qpos, b.Int64s([1])])]);
            string pad = b.Op("Unsqueeze", "mask/padding", [b.Op("Cast", "mask/padding", ["attention_mask"], Attr("to", (long)DataType.Bool)), b.Int64s([1, 2])]);
            string allowed = b.Op("And", "mask/allowed", [causal, pad]);
            _mask = b.Op("Where", "mask/additive", [allowed, b.Scalar(0f), b.Scalar(float.MinValue)]);
            BuildQueryBlocks(seq, past);
        }

        /// <summary>Query block i of the standard attention: new positions [Start, End), keys [0, KeyEnd), its mask rows.</summary>
        private readonly record struct QueryBlock(string Start, string End, string KeyEnd, string Mask);

        private QueryBlock[] _blocks = [];
        private string? _useBlocks;

        /// <summary>
        /// Bounds shared by every layer: block size ⌈seq / n⌉, block i covering new positions [min(i·size, seq),
        /// min((i+1)·size, seq)) and keys [0, past + its end). Inputs shorter than n positions leave the later blocks
        /// empty, which every op involved accepts (a single position takes the If's single-block branch instead). The
        /// last block sees every key, so it slices neither keys nor mask columns.
        /// </summary>
        private void BuildQueryBlocks(string seq, string past)
        {
            var b = _b;
            int n = options.AttentionBlocks;
            if (n == 1) return;
            _useBlocks = b.Op("Greater", "attn_blocks/use", [seq, b.Int64s([1])]);
            string size = b.Op("Div", "attn_blocks/size", [b.Op("Add", "attn_blocks/size", [seq, b.Int64s([n - 1])]), b.Int64s([n])]);
            _blocks = new QueryBlock[n];
            string start = b.Int64s([0]);
            for (int i = 0; i < n; i++)
            {
                string end = i == n - 1 ? seq : b.Op("Min", $"attn_blocks/end{i}", [b.Op("Mul", $"attn_blocks/end{i}", [size, b.Int64s([i + 1])]), seq]);
                string keyEnd = b.Op("Add", $"attn_blocks/key_end{i}", [past, end]);
                string mask = i == n - 1
                    ? b.Op("Slice", $"attn_blocks/mask{i}", [_mask!, start, end, b.Int64s([2])])
                    : b.Op("Slice", $"attn_blocks/mask{i}", [_mask!, b.Op("Concat", $"attn_blocks/mask{i}_start", [start, b.Int64s([0])], Attr("axis", 0L)),
                        b.Op("Concat", $"attn_blocks/mask{i}_end", [end, keyEnd], Attr("axis", 0L)), b.Int64s([2, 3])]);
                _blocks[i] = new QueryBlock(start, end, keyEnd, mask);
                start = end;
            }
        }

        /// <summary>softmax(q·kᵀ/√d + mask)·v per query block (see <see cref="OnnxExportOptions.AttentionBlocks"/>), [b, h, seq, hd].</summary>
        private string Attention(string p, string q, string keys, string values, int hd)
        {
            var b = _b;
            string One(string name, string qs, string ks, string vs, string mask)
            {
                string scores = b.Op("MatMul", p + "attn_scores" + name, [qs, b.Op("Transpose", p + "attn_k" + name, [ks], Attr("perm", new long[] { 0, 1, 3, 2 }))]);
                scores = b.Op("Mul", p + "attn_scores" + name, [scores, b.Scalar(1f / MathF.Sqrt(hd))]);
                scores = b.Op("Add", p + "attn_mask" + name, [scores, mask]);
                string probs = b.Op("Softmax", p + "attn_probs" + name, [scores], Attr("axis", -1L));
                return b.Op("MatMul", p + "attn_out" + name, [probs, vs]);
            }
            if (_blocks.Length == 0) return One("", q, keys, values, _mask!);
            string axis2 = b.Int64s([2]), zero = b.Int64s([0]);
            var blocked = b.Subgraph(p + "attn_blocks", () =>
            {
                var parts = new string[_blocks.Length];
                for (int i = 0; i < _blocks.Length; i++)
                {
                    var blk = _blocks[i];
                    bool last = i == _blocks.Length - 1;
                    string tag = $"/block{i}";
                    string qs = b.Op("Slice", p + "attn_q" + tag, [q, blk.Start, blk.End, axis2]);
                    string ks = last ? keys : b.Op("Slice", p + "attn_k" + tag, [keys, zero, blk.KeyEnd, axis2]);
                    string vs = last ? values : b.Op("Slice", p + "attn_v" + tag, [values, zero, blk.KeyEnd, axis2]);
                    parts[i] = One(tag, qs, ks, vs, blk.Mask);
                }
                return [b.Op("Concat", p + "attn_out/blocks", parts, Attr("axis", 2L))];
            });
            // One new position: a single block, without the empty blocks' nodes.
            var single = b.Subgraph(p + "attn_single", () => [One("/single", q, keys, values, _mask!)]);
            return b.Op("If", p + "attn_out", [_useBlocks!], Attr("then_branch", blocked), Attr("else_branch", single));
        }

        private string? _seqlensK, _totalLength, _cosCache, _sinCache;

        /// <summary>
        /// GroupQueryAttention's side inputs: seqlens_k = Σ attention_mask − 1 per row (int32), total_sequence_length
        /// (int32 scalar) and, for RoPE, cos/sin caches [context, head_dim/2] of angles pos · θ^(−2i/d) in double.
        /// </summary>
        private void BuildFusedAttentionInputs()
        {
            var b = _b;
            string sum = b.Op("ReduceSum", "gqa/seqlens", ["attention_mask", b.Int64s([1])], Attr("keepdims", 0L));
            _seqlensK = b.Op("Cast", "gqa/seqlens_k", [b.Op("Sub", "gqa/seqlens", [sum, b.Scalar(1L)])], Attr("to", (long)DataType.Int32));
            string total = b.Op("Shape", "gqa/total", ["attention_mask"], Attr("start", 1L), Attr("end", 2L));
            _totalLength = b.Op("Cast", "gqa/total_sequence_length", [b.Op("Squeeze", "gqa/total", [total, b.Int64s([0])])], Attr("to", (long)DataType.Int32));
            if (_gpt2) return;
            int half = _c.HeadDim / 2, n = _c.ContextLength;
            var cos = new float[(long)n * half];
            var sin = new float[(long)n * half];
            for (int pos = 0; pos < n; pos++)
                for (int i = 0; i < half; i++)
                {
                    double angle = pos * Math.Pow(_c.RopeTheta, -2.0 * i / _c.HeadDim);
                    cos[(long)pos * half + i] = (float)Math.Cos(angle);
                    sin[(long)pos * half + i] = (float)Math.Sin(angle);
                }
            _cosCache = b.Initializer("rope.cos_cache", cos, n, half);
            _sinCache = b.Initializer("rope.sin_cache", sin, n, half);
            b.ImportDomain("com.microsoft", 1);
        }

        /// <summary>q [b, s, H·hd], k/v [b, s, KV·hd] → attention output [b, s, H·hd] by com.microsoft GroupQueryAttention.</summary>
        private string FusedAttention(int l, string q, string k, string v, int heads, int kvHeads)
        {
            var b = _b;
            b.ImportDomain("com.microsoft", 1);
            string p = $"blk.{l}.";
            string pastK = options.KvCache ? $"past_key_values.{l}.key" : "";
            string pastV = options.KvCache ? $"past_key_values.{l}.value" : "";
            string presentK = options.KvCache ? $"present.{l}.key" : b.Fresh(p + "attn/present_key");
            string presentV = options.KvCache ? $"present.{l}.value" : b.Fresh(p + "attn/present_value");
            string output = b.Fresh(p + "attn/GroupQueryAttention");
            List<string> inputs = [q, k, v, pastK, pastV, _seqlensK!, _totalLength!];
            var attrs = new List<AttributeProto> { Attr("num_heads", (long)heads), Attr("kv_num_heads", (long)kvHeads), Attr("scale", 1f / MathF.Sqrt(_c.HeadDim)) };
            if (!_gpt2)
            {
                inputs.Add(_cosCache!);
                inputs.Add(_sinCache!);
                attrs.Add(Attr("do_rotary", 1L));
                attrs.Add(Attr("rotary_interleaved", 0L));
            }
            b.Node("GroupQueryAttention", inputs, [output, presentK, presentV], output, "com.microsoft", [.. attrs]);
            return output;
        }

        /// <summary>cos/sin [batch, 1, seq, head_dim] for rotate-half RoPE from position_ids (angles pos · θ^(-2i/d)).</summary>
        private void BuildRope()
        {
            var b = _b;
            int half = _c.HeadDim / 2;
            var inv = new float[half];
            for (int i = 0; i < half; i++) inv[i] = (float)Math.Pow(_c.RopeTheta, -2.0 * i / _c.HeadDim);
            string invFreq = b.Initializer("rope.inv_freq", inv, half);
            string pos = b.Op("Unsqueeze", "rope/positions", [b.Op("Cast", "rope/positions", ["position_ids"], Attr("to", (long)DataType.Float)), b.Int64s([2])]);
            string freqs = b.Op("Mul", "rope/angles", [pos, invFreq]);
            string emb = b.Op("Concat", "rope/angles", [freqs, freqs], Attr("axis", -1L));
            _cos = b.Op("Unsqueeze", "rope/cos", [b.Op("Cos", "rope/cos", [emb]), b.Int64s([1])]);
            _sin = b.Op("Unsqueeze", "rope/sin", [b.Op("Sin", "rope/sin", [emb]), b.Int64s([1])]);
        }

        private string Block(int l, string x)
        {
            var b = _b;
            var c = _c;
            string p = $"blk.{l}.";
            int d = c.EmbeddingLength, hd = c.HeadDim, heads = c.HeadsIn(l), kvHeads = c.KvHeadsIn(l), qDim = heads * hd, kvDim = kvHeads * hd;

            string h = Norm(x, p + "attn_norm");
            var (wq, bq, wk, bk, wv, bv) = Projections(p, d, heads, kvHeads);
            string? fusedHook = model.Find(p + "attn_qkv.weight") is not null ? p + "attn_qkv" : null;
            if (options.FusedAttention)
            {
                string fq = Linear(h, p + "attn_q", p + "attn_q", wq, qDim, d, bq, p + "attn_q.weight", fusedHook);
                string fk = Linear(h, p + "attn_k", p + "attn_k", wk, kvDim, d, bk, p + "attn_k.weight", fusedHook);
                string fv = Linear(h, p + "attn_v", p + "attn_v", wv, kvDim, d, bv, p + "attn_v.weight", fusedHook);
                x = b.Op("Add", p + "attn_residual", [x, LinearOf(FusedAttention(l, fq, fk, fv, heads, kvHeads), p + "attn_output", d, qDim)]);
                return Ffn(l, x);
            }
            string q = Heads(Linear(h, p + "attn_q", p + "attn_q", wq, qDim, d, bq, p + "attn_q.weight", fusedHook), p + "attn_q", heads);
            string k = Heads(Linear(h, p + "attn_k", p + "attn_k", wk, kvDim, d, bk, p + "attn_k.weight", fusedHook), p + "attn_k", kvHeads);
            string v = Heads(Linear(h, p + "attn_v", p + "attn_v", wv, kvDim, d, bv, p + "attn_v.weight", fusedHook), p + "attn_v", kvHeads);
            if (!_gpt2)
            {
                q = Rope(q, p + "attn_q");
                k = Rope(k, p + "attn_k");
            }
            string presentK = CacheConcat(l, "key", k, p + "cache_k/Concat");
            string presentV = CacheConcat(l, "value", v, p + "cache_v/Concat");
            string keys = RepeatKv(presentK, p + "attn_k", heads, kvHeads);
            string values = RepeatKv(presentV, p + "attn_v", heads, kvHeads);

            string att = Attention(p, q, keys, values, hd);
            att = b.Op("Transpose", p + "attn_out", [att], Attr("perm", new long[] { 0, 2, 1, 3 }));
            att = b.Op("Reshape", p + "attn_out", [att, b.Int64s([0, 0, qDim])]);
            x = b.Op("Add", p + "attn_residual", [x, LinearOf(att, p + "attn_output", d, qDim)]);
            return Ffn(l, x);
        }

        private string Ffn(int l, string x)
        {
            var b = _b;
            var c = _c;
            string p = $"blk.{l}.";
            int d = c.EmbeddingLength;
            string h = Norm(x, p + "ffn_norm");
            int ff = c.FeedForwardIn(l);
            string up = LinearOf(h, p + "ffn_up", ff, d);
            string act;
            if (_gpt2) act = GeluTanh(up, p + "ffn_gelu");
            else
            {
                string gate = LinearOf(h, p + "ffn_gate", ff, d);
                string silu = b.Op("Mul", p + "ffn_silu", [gate, b.Op("Sigmoid", p + "ffn_silu", [gate])]);
                act = b.Op("Mul", p + "ffn_swiglu", [silu, up]);
            }
            string down = LinearOf(act, p + "ffn_down", d, ff);
            return b.Op("Add", p + "ffn_residual", [x, down]);
        }

        /// <summary>
        /// Q, K, V weights [in, out] (and biases) from separate tensors or a fused attn_qkv. Llama-family Q/K rows are
        /// stored interleaved (GGUF's layout) and are turned back into rotate-half order, so one RoPE formulation
        /// serves every architecture (Qwen2 is already rotate-half; GPT-2 has none).
        /// </summary>
        private (float[] Wq, string? Bq, float[] Wk, string? Bk, float[] Wv, string? Bv) Projections(string p, int d, int heads, int kvHeads)
        {
            int qDim = heads * _c.HeadDim, kvDim = kvHeads * _c.HeadDim;
            float[] wq, wk, wv;
            float[]? bq = null, bk = null, bv = null;
            if (model.Find(p + "attn_qkv.weight") is not null)
            {
                var w = Read(p + "attn_qkv.weight", [qDim + 2 * kvDim, d]);
                wq = w[..(qDim * d)];
                wk = w[(qDim * d)..((qDim + kvDim) * d)];
                wv = w[((qDim + kvDim) * d)..];
                if (model.Find(p + "attn_qkv.bias") is not null)
                {
                    var bias = Read(p + "attn_qkv.bias", [qDim + 2 * kvDim]);
                    (bq, bk, bv) = (bias[..qDim], bias[qDim..(qDim + kvDim)], bias[(qDim + kvDim)..]);
                }
            }
            else
            {
                wq = Read(p + "attn_q.weight", [qDim, d]);
                wk = Read(p + "attn_k.weight", [kvDim, d]);
                wv = Read(p + "attn_v.weight", [kvDim, d]);
                if (model.Find(p + "attn_q.bias") is not null) bq = Read(p + "attn_q.bias", [qDim]);
                if (model.Find(p + "attn_k.bias") is not null) bk = Read(p + "attn_k.bias", [kvDim]);
                if (model.Find(p + "attn_v.bias") is not null) bv = Read(p + "attn_v.bias", [kvDim]);
            }
            if (_c.Architecture == Architecture.Llama)
            {
                wq = ToRotateHalf(wq, qDim, d, heads);
                wk = ToRotateHalf(wk, kvDim, d, kvHeads);
                if (bq is not null) bq = ToRotateHalf(bq, qDim, 1, heads);
                if (bk is not null) bk = ToRotateHalf(bk, kvDim, 1, kvHeads);
            }
            string? Vec(string name, float[]? v) => v is null ? null : Emit(name, v, [v.Length]);
            return (wq, Vec(p + "attn_q.bias", bq), wk, Vec(p + "attn_k.bias", bk), wv, Vec(p + "attn_v.bias", bv));
        }

        private static float[] ToRotateHalf(float[] rows, int rowCount, int cols, int heads)
        {
            var dst = new float[rows.Length];
            RopeInterleaveTransform.ToRotateHalf(MemoryMarshal.AsBytes(rows.AsSpan()), MemoryMarshal.AsBytes(dst.AsSpan()), rowCount, cols * 4L, heads);
            return dst;
        }

        /// <summary>[batch, seq, n·hd] → [batch, n, seq, hd].</summary>
        private string Heads(string t, string name, int n) =>
            _b.Op("Transpose", name, [_b.Op("Reshape", name, [t, _b.Int64s([0, 0, n, _c.HeadDim])])], Attr("perm", new long[] { 0, 2, 1, 3 }));

        /// <summary>x·cos + rotate_half(x)·sin with rotate_half(x) = [−x₂, x₁] over the head dimension.</summary>
        private string Rope(string t, string name)
        {
            var b = _b;
            int half = _c.HeadDim / 2;
            string axis = b.Int64s([3]);
            string x1 = b.Op("Slice", name + "/rope_x1", [t, b.Int64s([0]), b.Int64s([half]), axis]);
            string x2 = b.Op("Slice", name + "/rope_x2", [t, b.Int64s([half]), b.Int64s([_c.HeadDim]), axis]);
            string rotated = b.Op("Concat", name + "/rope_rotate_half", [b.Op("Neg", name + "/rope", [x2]), x1], Attr("axis", 3L));
            return b.Op("Add", name + "/rope", [b.Op("Mul", name + "/rope_cos", [t, _cos!]), b.Op("Mul", name + "/rope_sin", [rotated, _sin!])]);
        }

        /// <summary>
        /// GQA: KV head g serves query heads g·r … g·r + r − 1, so [b, g, t, hd] → [b, g, r, t, hd] → [b, g·r, t, hd];
        /// r is the layer's own ratio (layers of a pruned model may differ).
        /// </summary>
        private string RepeatKv(string t, string name, int heads, int kvHeads)
        {
            int rep = heads / kvHeads;
            if (rep == 1) return t;
            var b = _b;
            string expanded = b.Op("Expand", name + "/repeat_kv", [b.Op("Unsqueeze", name + "/repeat_kv", [t, b.Int64s([2])]), b.Int64s([1, 1, rep, 1, 1])]);
            return b.Op("Reshape", name + "/repeat_kv", [expanded, b.Int64s([0, heads, -1, _c.HeadDim])]);
        }

        private string GeluTanh(string x, string name)
        {
            // GPT-2's gelu_new: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))); opset 17 has no Gelu op.
            var b = _b;
            string cube = b.Op("Mul", name + "/cube", [b.Op("Mul", name + "/square", [x, x]), x]);
            string inner = b.Op("Add", name + "/inner", [x, b.Op("Mul", name + "/cubic", [cube, b.Scalar(0.044715f)])]);
            string t = b.Op("Tanh", name, [b.Op("Mul", name + "/scaled", [inner, b.Scalar((float)Math.Sqrt(2.0 / Math.PI))])]);
            return b.Op("Mul", name, [b.Op("Mul", name + "/half", [x, b.Scalar(0.5f)]), b.Op("Add", name + "/one_plus", [t, b.Scalar(1f)])]);
        }

        private string Norm(string x, string name)
        {
            var b = _b;
            int d = _c.EmbeddingLength;
            string w = Weight(name + ".weight", [d], transpose: false);
            string? bias = model.Find(name + ".bias") is null ? null : Weight(name + ".bias", [d], transpose: false);
            if (_gpt2)
            {
                List<string> inputs = bias is null ? [x, w] : [x, w, bias];
                return b.Op("LayerNormalization", name, inputs, Attr("axis", -1L), Attr("epsilon", _c.NormEpsilon));
            }
            // RMSNorm as plain ops: x / sqrt(mean(x²) + eps) · w. ReduceMean took axes as an attribute until opset 18.
            string sq = b.Op("Mul", name + "/square", [x, x]);
            string mean = b.Opset >= 18
                ? b.Op("ReduceMean", name + "/mean", [sq, b.Int64s([-1])], Attr("keepdims", 1L))
                : b.Op("ReduceMean", name + "/mean", [sq], Attr("axes", new long[] { -1 }), Attr("keepdims", 1L));
            string rms = b.Op("Sqrt", name + "/rms", [b.Op("Add", name + "/eps", [mean, b.Scalar(_c.NormEpsilon)])]);
            string y = b.Op("Mul", name + "/scale", [b.Op("Div", name + "/normalize", [x, rms]), w]);
            return bias is null ? y : b.Op("Add", name + "/bias", [y, bias]);
        }

        /// <summary>A model linear layer <paramref name="layer"/> ([outDim, inDim] weight, optional bias) applied to x.</summary>
        private string LinearOf(string x, string layer, int outDim, int inDim)
        {
            var rows = Read(layer + ".weight", [outDim, inDim]);
            return Linear(x, layer, layer, rows, outDim, inDim, Bias(layer, outDim), layer + ".weight");
        }

        /// <summary>
        /// x · Wᵀ (+ b) through the configured lowering, or as an FP32 MatMul on the transposed weight when there is
        /// none or it declines the layer.
        /// </summary>
        private string Linear(string x, string layer, string nodeName, float[] rows, int outDim, int inDim, string? bias, string weightName, string? hookLayer = null)
        {
            if (options.Linear is { } lowering)
            {
                var spec = new OnnxLinear(layer, x, rows, outDim, inDim, bias, weightName) { HookLayer = hookLayer ?? layer };
                if (lowering.Emit(_b, spec) is { } y)
                {
                    WeightCount++;
                    options.TensorWritten?.Invoke(Math.Min(++_written, TotalWeights), TotalWeights);
                    return y;
                }
            }
            string w = WeightFrom(weightName, rows, outDim, inDim);
            string mm = _b.Op("MatMul", nodeName, [x, w]);
            return bias is null ? mm : _b.Op("Add", nodeName + "/bias", [mm, bias]);
        }

        private string? Bias(string layer, int length) =>
            model.Find(layer + ".bias") is null ? null : Weight(layer + ".bias", [length], transpose: false);

        /// <summary>A model tensor as an initializer: as is, or a 2-D [out, in] weight transposed to [in, out] for MatMul.</summary>
        private string Weight(string name, long[] shape, bool transpose)
        {
            var data = Read(name, shape);
            if (!transpose) return Emit(name, data, shape);
            return WeightFrom(name, data, (int)shape[0], (int)shape[1]);
        }

        /// <summary>[out, in] rows → a [in, out] initializer named <paramref name="name"/>.</summary>
        private string WeightFrom(string name, float[] rows, int outDim, int inDim, string? sourceName = null)
        {
            if (sourceName is not null) _used.Add(sourceName);
            var t = new float[rows.Length];
            for (int o = 0; o < outDim; o++)
            {
                var row = rows.AsSpan(o * inDim, inDim);
                for (int i = 0; i < inDim; i++) t[(long)i * outDim + o] = row[i];
            }
            return Emit(name, t, [inDim, outDim]);
        }

        private string Emit(string name, float[] data, long[] shape)
        {
            string n = options.WeightType == OnnxWeightType.Float16 && shape.Length >= 2 ? Float16(name, data, shape) : _b.Initializer(name, data, shape);
            WeightCount++;
            options.TensorWritten?.Invoke(Math.Min(++_written, TotalWeights), TotalWeights);
            return n;
        }

        /// <summary>
        /// A matrix stored as FP16 (round to nearest even) and Cast to FP32 where used: half the file, FP32 arithmetic
        /// on FP16-rounded weights. ORT's CPU provider has no fast FP16 MatMul (MLAS's half GEMM needs ARM FP16
        /// hardware), so keeping the math in FP32 is faster there than an FP16 graph; ORT folds the constant Cast at load,
        /// so its memory holds FP32 copies. 1-D tensors (norms, biases) stay FP32, as GGUF converters keep them.
        /// </summary>
        private string Float16(string name, float[] data, long[] shape)
        {
            var half = new Half[data.Length];
            System.Numerics.Tensors.TensorPrimitives.ConvertToHalf(data, half);
            if (!options.AllowNonFinite)
                for (int i = 0; i < half.Length; i++)
                    if (Half.IsInfinity(half[i]) && float.IsFinite(data[i]))
                        throw new BadInputException($"{_src}: tensor '{name}' element {i} ({data[i]}) overflows FP16; refused (export with --dtype fp32, or pass --allow-nonfinite)");
            string stored = _b.Initializer(name + "_fp16", DataType.Float16, MemoryMarshal.AsBytes(half.AsSpan()), shape);
            return _b.Node("Cast", [stored], [name], name + "/Cast", "", Attr("to", (long)DataType.Float));
        }

        private float[] Read(string name, long[] shape)
        {
            ct.ThrowIfCancellationRequested();
            var t = model.Get(name);
            if (!t.Shape.SequenceEqual(shape))
                throw new BadInputException($"{_src}: tensor '{name}' has shape [{string.Join(", ", t.Shape)}], expected [{string.Join(", ", shape)}]");
            _used.Add(name);
            var data = t.ToFloat32();
            if (!options.AllowNonFinite)
                for (int i = 0; i < data.Length; i++)
                    if (!float.IsFinite(data[i]))
                        throw new BadInputException($"{_src}: tensor '{name}' ({t.SourceName}) element {i} is NaN or infinite; refused (pass --allow-nonfinite to export it anyway)");
            return data;
        }
    }
}
