using System.Globalization;
using EdgeQuant.Core.Errors;
using EdgeQuant.Core.Tensors;
using EdgeQuant.Models;
using EdgeQuant.Models.Loading;

namespace EdgeQuant.Compression.GgufQuant;

/// <summary>The knobs of llama-quantize that change which type each tensor gets.</summary>
public sealed record QuantizationPolicyOptions
{
    /// <summary><c>--pure</c>: no mix rules; every quantizable tensor gets the file type's default type (row-length fallbacks still apply).</summary>
    public bool Pure { get; init; }

    /// <summary><c>--leave-output-tensor</c> (<c>quantize_output_tensor = false</c>): output.weight is copied as it is.</summary>
    public bool LeaveOutputTensor { get; init; }

    /// <summary><c>--output-tensor-type</c>: the type of output.weight (and, through the mix rules, of a tied token_embd.weight).</summary>
    public TensorType? OutputTensorType { get; init; }

    /// <summary><c>--token-embedding-type</c>: the type of token_embd.weight.</summary>
    public TensorType? TokenEmbeddingType { get; init; }

    /// <summary><c>--tensor-type</c> rules, first match wins.</summary>
    public IReadOnlyList<TensorTypeOverride> Overrides { get; init; } = [];

    /// <summary>An importance matrix is given (<c>--imatrix</c>): llama.cpp then keeps Q4_0/Q5_0's first ffn_down layers at Q4_1/Q5_1.</summary>
    public bool HasImatrix { get; init; }
}

/// <summary>One tensor of a plan.</summary>
/// <param name="Name">The GGUF name.</param>
/// <param name="SourceType">The type it has in the input.</param>
/// <param name="Type">The type it is written as.</param>
/// <param name="Quantize">True when it is converted to <paramref name="Type"/>; false: copied as it is (then Type == SourceType).</param>
/// <param name="Note">Why the type differs from the file type's default (a mix rule, a fallback, an override, kept as is), or null.</param>
public sealed record PlannedTensor(string Name, TensorType SourceType, TensorType Type, bool Quantize, string? Note)
{
    /// <summary>
    /// llama.cpp's tensor_requires_imatrix: quantizing this tensor without importance data would give garbage
    /// (Q2_K tensors of a Q2_K_S file). <see cref="QuantizationPolicy.Plan"/> refuses such a plan without
    /// <see cref="QuantizationPolicyOptions.HasImatrix"/>; the quantizer must still refuse a tensor the imatrix has no entry for.
    /// </summary>
    public bool RequiresImatrix { get; init; }
}

/// <summary>The per-tensor types of one quantization, in the order the tensors were given.</summary>
/// <param name="Fallbacks">How many tensors had to leave their chosen type because their rows are not whole blocks of it (llama.cpp's n_fallback).</param>
public sealed record QuantizationPlan(QuantFileType FileType, IReadOnlyList<PlannedTensor> Tensors, int Fallbacks);

/// <summary>
/// llama.cpp's per-tensor quantization type policy (src/llama-quant.cpp of the pinned build: tensor_get_category,
/// tensor_allows_quantization, llama_tensor_get_type, llama_tensor_get_type_impl, tensor_type_fallback,
/// init_quantize_state_counters, tensor_requires_imatrix), ported branch for branch for the architectures EdgeQuant
/// reads (llama incl. Mistral, qwen2, gpt2: no experts, not Falcon) and the file types of <see cref="QuantFileTypes"/>.
/// Branches only IQ/TQ/MXFP4 file types, Falcon or 8-expert models can reach are left out; everything else, including
/// the order-dependent attn_v/ffn_down counters, follows the C++ line by line.
/// </summary>
public static class QuantizationPolicy
{
    private const int QkK = 256;

    /// <summary>
    /// Chooses every tensor's type as <c>llama_model_quantize</c> would for <paramref name="fileType"/>.
    /// </summary>
    /// <param name="config">The model's hyperparameters (block count, heads and KV heads: GQA and the 70B rule depend on them).</param>
    /// <param name="tensors">
    /// Every tensor of the model (1-D ones too: they are counted and kept), with <b>Shape in ggml order</b>: ne0, the
    /// row length, first, i.e. <see cref="ModelTensor.Shape"/> (row-major, [out, in]) <b>reversed</b>; a linear
    /// weight [out, in] is passed as [in, out]. Shapes of tensors the config names are checked against it, so a shape
    /// in the wrong order is refused, not silently planned. Any order is accepted: the policy walks them in
    /// llama.cpp's loader order (tensors outside the blocks, then block by block, by name within each; see
    /// <see cref="LlamaQuantizeOrder"/>), which is the order its per-layer counters see.
    /// </param>
    /// <param name="fileType">The file type (mix).</param>
    /// <param name="options">Pure, leave-output, explicit output/embedding types, overrides, imatrix present.</param>
    /// <returns>One <see cref="PlannedTensor"/> per input tensor, in the input order.</returns>
    /// <exception cref="BadInputException">A duplicate name, a bad shape, a block index beyond the config, an explicit
    /// type the rows of its tensor do not fit, or a file type that needs an importance matrix when there is none.</exception>
    public static QuantizationPlan Plan(ModelConfig config, IReadOnlyList<(string Name, long[] Shape, TensorType SourceType)> tensors,
        QuantFileType fileType, QuantizationPolicyOptions options)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(tensors);
        ArgumentNullException.ThrowIfNull(fileType);
        ArgumentNullException.ThrowIfNull(options);
        if (options.Overrides is null || options.Overrides.Any(r => r is null)) throw new ArgumentException("Overrides must not be or hold null", nameof(options));
        Validate(config, tensors);
        CheckExplicitType(options.OutputTensorType, "--output-tensor-type");
        CheckExplicitType(options.TokenEmbeddingType, "--token-embedding-type");

        var state = new State(config, options, fileType);
        // init_quantize_state_counters: categories over every tensor, attn_v-like ones counted, tied unless output.weight exists.
        var categories = new Category[tensors.Count];
        for (int i = 0; i < tensors.Count; i++)
        {
            categories[i] = CategoryOf(tensors[i].Name);
            if (IsAttnVLike(categories[i])) state.NAttentionWv++;
            if (categories[i] == Category.Output) state.HasTiedEmbeddings = false;
        }

        var planned = new PlannedTensor[tensors.Count];
        foreach (int i in LlamaQuantizeOrder(tensors.Select(t => t.Name).ToList()))
        {
            var (name, shape, source) = tensors[i];
            string? note = null;
            TensorType type;
            bool allows = AllowsQuantization(name, shape, options.LeaveOutputTensor, out string? keptBecause);
            if (!allows)
            {
                type = source;
                note = keptBecause;
            }
            else type = ChooseType(state, name, shape, source, categories[i], ref note);

            bool requires = RequiresImatrix(name, type, fileType.LlamaFtype);
            if (allows && requires && !options.HasImatrix)
                throw new BadInputException(
                    $"{fileType.Name}: tensor '{name}' would be {TensorTypes.Get(type).Name}, which this file type only quantizes with an importance matrix; pass --imatrix FILE (llama.cpp refuses it too)");
            bool quantize = type != source;
            planned[i] = new PlannedTensor(name, source, type, quantize, note) { RequiresImatrix = allows && requires };
        }
        return new QuantizationPlan(fileType, planned, state.NFallback);
    }

    /// <summary>
    /// The order llama-quantize reads and writes tensors in (its loader's weights_map with weight_name_comparer): by the
    /// N of <c>blk.N.</c> (-1 for tensors outside the blocks), then by name. Returns indices into <paramref name="names"/>.
    /// </summary>
    public static IReadOnlyList<int> LlamaQuantizeOrder(IReadOnlyList<string> names)
    {
        ArgumentNullException.ThrowIfNull(names);
        var layers = names.Select(BlockIndex).ToArray();
        var order = Enumerable.Range(0, names.Count).ToArray();
        // std::string's operator< compares bytes; ordinal UTF-16 order is the same for the ASCII names GGUF models use.
        Array.Sort(order, (a, b) => layers[a] != layers[b] ? layers[a].CompareTo(layers[b]) : string.CompareOrdinal(names[a], names[b]));
        return order;
    }

    /// <summary>
    /// The layer number weight_name_comparer reads with <c>sscanf(name, "blk.%d.", &amp;layer)</c>: after "blk.",
    /// optional blanks, a sign and digits; the trailing '.' is not required (sscanf has already stored the number when
    /// that literal fails). -1 when there is no number.
    /// </summary>
    public static int BlockIndex(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (!name.StartsWith("blk.", StringComparison.Ordinal)) return -1;
        int i = 4;
        while (i < name.Length && name[i] is ' ' or '\t' or '\n' or '\v' or '\f' or '\r') i++;
        bool negative = false;
        if (i < name.Length && name[i] is '+' or '-') negative = name[i++] == '-';
        long value = 0;
        int start = i;
        while (i < name.Length && char.IsAsciiDigit(name[i]))
        {
            // Out of int range sscanf's result is undefined; clamping keeps such a name after (or before) every real block.
            value = Math.Min(value * 10 + (name[i] - '0'), (long)int.MaxValue + 1);
            i++;
        }
        if (i == start) return -1;
        value = negative ? -value : value;
        return (int)Math.Clamp(value, int.MinValue, int.MaxValue);
    }

    // ---- tensor_get_category -------------------------------------------------------------------------------------

    internal enum Category
    {
        TokenEmbd,
        AttentionQ,
        AttentionV,
        AttentionK,
        AttentionQkv,
        AttentionKvB,
        AttentionOutput,
        FfnUp,
        FfnGate,
        FfnDown,
        Output,
        Other,
    }

    internal static Category CategoryOf(string name)
    {
        if (name == "output.weight") return Category.Output;
        if (name is "token_embd.weight" or "per_layer_token_embd.weight") return Category.TokenEmbd;
        if (Has(name, "attn_qkv.weight")) return Category.AttentionQkv;
        if (Has(name, "attn_kv_b.weight")) return Category.AttentionKvB;
        if (Has(name, "attn_v.weight")) return Category.AttentionV;
        if (Has(name, "attn_k.weight")) return Category.AttentionK;
        if (Has(name, "attn_q.weight")) return Category.AttentionQ;
        if (Has(name, "attn_output.weight")) return Category.AttentionOutput;
        if (Has(name, "ffn_up")) return Category.FfnUp;
        if (Has(name, "ffn_gate")) return Category.FfnGate;
        if (Has(name, "ffn_down")) return Category.FfnDown;
        return Category.Other;
    }

    // category_is_attn_v: GPT-2's fused attn_qkv counts as an attn_v (so its own QKV branch in the C++ is never reached).
    private static bool IsAttnVLike(Category c) => c is Category.AttentionV or Category.AttentionQkv or Category.AttentionKvB;

    private static bool Has(string s, string part) => s.Contains(part, StringComparison.Ordinal);

    // ---- tensor_allows_quantization ------------------------------------------------------------------------------

    /// <summary>ggml_n_dims: the index of the last dimension above 1, plus one (at least 1).</summary>
    internal static int GgmlNDims(long[] ne)
    {
        for (int i = ne.Length - 1; i >= 1; i--)
            if (ne[i] > 1) return i + 1;
        return 1;
    }

    // Substrings that keep a tensor out of quantization whatever the architecture (small, routing, positional or
    // multimodal tensors), in the C++'s order.
    private static readonly string[] NeverQuantized =
    [
        "_norm.weight", "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel", "per_layer_model_proj",
        "ssm_conv1d", "shortconv.conv.weight", "indexer.k_proj.weight", "indexer.q_proj.weight",
        "time_mix_first.weight", "time_mix_w0.weight", "time_mix_w1.weight", "time_mix_w2.weight", "time_mix_v0.weight",
        "time_mix_v1.weight", "time_mix_v2.weight", "time_mix_a0.weight", "time_mix_a1.weight", "time_mix_a2.weight",
        "time_mix_g1.weight", "time_mix_g2.weight", "time_mix_decay_w1.weight", "time_mix_decay_w2.weight",
        "time_mix_lerp_fused.weight", "attn_rel_b.weight", ".position_embd", "sam.pos_embd", "sam.neck.", "sam.net_",
        ".rel_pos", ".patch_embd", ".patch_merger", "a.rvq.codebook", "mm.a.code_embd",
    ];

    /// <summary>
    /// llama.cpp's tensor_allows_quantization: whether a tensor may change type at all (2-D or more, a name ending in
    /// "weight", not a norm, not a positional/routing/tiny tensor, not output.weight under --leave-output-tensor).
    /// <paramref name="shape"/> is in ggml order (ne0 first).
    /// </summary>
    public static bool AllowsQuantization(string name, long[] shape, bool leaveOutputTensor)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(shape);
        return AllowsQuantization(name, shape, leaveOutputTensor, out _);
    }

    private static bool AllowsQuantization(string name, long[] ne, bool leaveOutputTensor, out string? keptBecause)
    {
        // only_copy (llama-quantize COPY) is not a file type here, so the first C++ check never fires.
        if (GgmlNDims(ne) < 2)
        {
            keptBecause = "1-D: kept as is";
            return false;
        }
        // name.rfind("weight") == name.size() - 6, with size_t arithmetic: a 5-character name wraps size() - 6 to npos,
        // which equals rfind's "not found".
        int at = name.LastIndexOf("weight", StringComparison.Ordinal);
        bool endsInWeight = at >= 0 ? at == name.Length - 6 : name.Length == 5;
        if (!endsInWeight)
        {
            keptBecause = "not a weight: kept as is";
            return false;
        }
        if (leaveOutputTensor && name == "output.weight")
        {
            keptBecause = "--leave-output-tensor: kept as is";
            return false;
        }
        // LLM_TN(arch)(LLM_TENSOR_POS_EMBD / TOKEN_TYPES, "weight") are the same names for every architecture.
        if (name is "position_embd.weight" or "token_types.weight")
        {
            keptBecause = "position/token-type embedding: kept as is";
            return false;
        }
        foreach (var part in NeverQuantized)
            if (Has(name, part))
            {
                keptBecause = part == "_norm.weight" ? "norm: kept as is" : $"'{part}' tensors are kept as is";
                return false;
            }
        keptBecause = null;
        return true;
    }

    // ---- llama_tensor_get_type -----------------------------------------------------------------------------------

    private sealed class State(ModelConfig config, QuantizationPolicyOptions options, QuantFileType fileType)
    {
        public readonly ModelConfig Config = config;
        public readonly QuantizationPolicyOptions Options = options;
        public readonly int Ftype = fileType.LlamaFtype;
        public readonly TensorType DefaultType = fileType.DefaultType;
        public int NAttentionWv, IAttentionWv, IFfnDown, IFfnGate, IFfnUp, NFallback;
        // n_ffn_down = n_ffn_gate = n_ffn_up = n_layer_all, whatever tensors exist.
        public readonly int NLayer = config.BlockCount;
        public bool HasTiedEmbeddings = true;

        /// <summary>
        /// hparams.n_gqa(): n_head / n_head_kv (integer division), 0 without KV heads. Its default argument is layer 0,
        /// so a model with per-layer widths (written as deci) uses layer 0's counts, not the largest.
        /// </summary>
        public int NGqa => Config.KvHeadsIn(0) == 0 ? 0 : Config.HeadsIn(0) / Config.KvHeadsIn(0);

        /// <summary>
        /// model.type == LLM_TYPE_70B, as the architectures' load_hparams set it: llama with 80 layers and GQA
        /// (80 layers without GQA is 65B), deci (a Llama with per-layer widths, as GgufExporter writes it) and qwen2 with
        /// 80 layers. GPT-2 never.
        /// </summary>
        public bool Is70B => Config.BlockCount == 80 && Config.Architecture switch
        {
            Architecture.Llama when Config.HasPerLayerWidths => true,
            Architecture.Llama => Config.HeadCount != Config.HeadCountKv,
            Architecture.Qwen2 => true,
            _ => false,
        };
    }

    private static TensorType ChooseType(State qs, string name, long[] ne, TensorType source, Category category, ref string? note)
    {
        var o = qs.Options;
        if (o.TokenEmbeddingType is { } embType && category == Category.TokenEmbd)
        {
            // per_layer_token_embd may be named by a --tensor-type rule instead; no architecture here has one, but
            // the rule is kept so the behaviour is llama.cpp's for any name.
            bool named = name == "per_layer_token_embd.weight" && o.Overrides.Any(r => r.Pattern.IsMatch(name));
            if (!named)
            {
                note = "--token-embedding-type";
                return Explicit(name, ne, embType, "--token-embedding-type");
            }
        }
        if (o.OutputTensorType is { } outType && category == Category.Output)
        {
            note = "--output-tensor-type";
            return Explicit(name, ne, outType, "--output-tensor-type");
        }

        var newType = qs.DefaultType;
        if (!TensorTypes.Get(newType).IsQuantized) return newType;

        bool manual = false;
        foreach (var rule in o.Overrides)
        {
            if (!rule.Pattern.IsMatch(name)) continue;
            if (rule.Type != newType) note = $"--tensor-type {rule}";
            newType = rule.Type;
            manual = true;
            break;
        }
        if (!manual && !o.Pure)
        {
            var mixed = GetTypeImpl(qs, newType, name, ne, category, out string? why);
            if (mixed != newType) note = why;
            newType = mixed;
        }
        return Fallback(qs, name, ne, newType, ref note);
    }

    /// <summary>
    /// An explicit output/embedding type is used without the fallback (llama.cpp returns it as is and then aborts in
    /// ggml_row_size when the rows do not fit it), so a misfit is refused here instead.
    /// </summary>
    private static TensorType Explicit(string name, long[] ne, TensorType type, string option)
    {
        var info = TensorTypes.Get(type);
        if (ne[0] % info.BlockSize != 0)
            throw new BadInputException($"{option} {info.Name}: tensor '{name}' has rows of {ne[0]}, not whole {info.Name} blocks of {info.BlockSize}");
        return type;
    }

    /// <summary>tensor_type_fallback: a type whose block does not divide the row length falls back to a 32-block one, or to F16.</summary>
    private static TensorType Fallback(State qs, string name, long[] ne, TensorType target, ref string? note)
    {
        long ncols = ne[0];
        int qk = TensorTypes.Get(target).BlockSize;
        if (ncols % qk == 0) return target;
        qs.NFallback++;
        var result = target switch
        {
            TensorType.Q2_K or TensorType.Q3_K => TensorType.Q4_0,
            TensorType.Q4_K => TensorType.Q5_0,
            TensorType.Q5_K => TensorType.Q5_1,
            TensorType.Q6_K => TensorType.Q8_0,
            // A 32-block type has no smaller block to demote to; the check below turns it into F16.
            _ when qk <= 32 => target,
            _ => throw new BadInputException(
                $"tensor '{name}': rows of {ncols} are not whole {TensorTypes.Get(target).Name} blocks and llama.cpp defines no fallback for that type"),
        };
        if (ncols % TensorTypes.Get(result).BlockSize != 0) result = TensorType.F16;
        note = $"rows of {ncols} are not whole {TensorTypes.Get(target).Name} blocks ({qk}): {TensorTypes.Get(result).Name} instead";
        return result;
    }

    private static bool UseMoreBits(int iLayer, int nLayers) =>
        iLayer < nLayers / 8 || iLayer >= 7 * nLayers / 8 || (iLayer - nLayers / 8) % 3 == 2;

    /// <summary>llama_tensor_get_type_impl for n_expert &lt;= 1, not Falcon, and the file types of the table.</summary>
    private static TensorType GetTypeImpl(State qs, TensorType newType, string name, long[] ne, Category category, out string? why)
    {
        int ftype = qs.Ftype;
        why = null;
        if (category == Category.Output || (qs.HasTiedEmbeddings && category == Category.TokenEmbd))
        {
            string what = category == Category.Output ? "output" : "tied token embedding (output)";
            if (qs.Options.OutputTensorType is { } outType)
            {
                why = $"{what}: --output-tensor-type";
                return outType;
            }
            long nx = ne[0];
            int qk = TensorTypes.Get(newType).BlockSize;
            if (nx % qk != 0)
            {
                why = $"{what}: Q8_0 (rows of {nx} are not whole {TensorTypes.Get(newType).Name} blocks)";
                return TensorType.Q8_0;
            }
            if (newType != TensorType.Q8_0)
            {
                why = $"{what}: Q6_K";
                return TensorType.Q6_K;
            }
            return newType;
        }
        if (category == Category.TokenEmbd)
        {
            // Untied embeddings: only --token-embedding-type (already applied by the caller) or IQ/TQ file types change them.
            if (qs.Options.TokenEmbeddingType is { } embType)
            {
                why = "--token-embedding-type";
                return embType;
            }
            return newType;
        }
        if (IsAttnVLike(category))
        {
            int gqa = qs.NGqa;
            if (ftype == QuantFileTypes.MostlyQ2_K)
            {
                newType = gqa >= 4 ? TensorType.Q4_K : TensorType.Q3_K;
                why = gqa >= 4 ? "attn_v with GQA >= 4" : "attn_v";
            }
            else if (ftype == QuantFileTypes.MostlyQ2_K_S && gqa >= 4)
            {
                newType = TensorType.Q4_K;
                why = "attn_v with GQA >= 4";
            }
            else if (ftype == QuantFileTypes.MostlyQ3_K_M)
            {
                newType = qs.IAttentionWv < 2 ? TensorType.Q5_K : TensorType.Q4_K;
                why = qs.IAttentionWv < 2 ? "attn_v of the first 2 layers" : "attn_v";
            }
            else if (ftype == QuantFileTypes.MostlyQ3_K_L)
            {
                newType = TensorType.Q5_K;
                why = "attn_v";
            }
            else if ((ftype == QuantFileTypes.MostlyQ4_K_M || ftype == QuantFileTypes.MostlyQ5_K_M) && UseMoreBits(qs.IAttentionWv, qs.NAttentionWv))
            {
                newType = TensorType.Q6_K;
                why = "attn_v in a use_more_bits layer";
            }
            else if (ftype == QuantFileTypes.MostlyQ4_K_S && qs.IAttentionWv < 4)
            {
                newType = TensorType.Q5_K;
                why = "attn_v of the first 4 layers";
            }
            if (qs.Is70B && newType is TensorType.Q3_K or TensorType.Q4_K)
            {
                // llama.cpp: 8 heads share each attn_v in the 70B model, so more bits there cost little.
                newType = TensorType.Q5_K;
                why = "attn_v of a 70B model";
            }
            qs.IAttentionWv++;
            return newType;
        }
        if (category is Category.AttentionK or Category.AttentionQ) return newType; // only IQ3 / 8-expert rules
        if (category == Category.FfnDown)
        {
            // layer_info without experts: the running ffn_down counter, not the block number in the name.
            int iLayer = qs.IFfnDown, nLayer = qs.NLayer;
            if (ftype == QuantFileTypes.MostlyQ2_K) { newType = TensorType.Q3_K; why = "ffn_down"; }
            else if (ftype == QuantFileTypes.MostlyQ2_K_S)
            {
                if (iLayer < nLayer / 8) { newType = TensorType.Q4_K; why = "ffn_down of the first 1/8 layers"; }
            }
            else if (ftype == QuantFileTypes.MostlyQ3_K_M)
            {
                // Not Falcon: Q4_K beyond the first 1/16 of the layers whatever use_more_bits says.
                newType = iLayer < nLayer / 16 ? TensorType.Q5_K : TensorType.Q4_K;
                why = iLayer < nLayer / 16 ? "ffn_down of the first 1/16 layers" : "ffn_down";
            }
            else if (ftype == QuantFileTypes.MostlyQ3_K_L) { newType = TensorType.Q5_K; why = "ffn_down"; }
            else if (ftype == QuantFileTypes.MostlyQ4_K_M)
            {
                if (UseMoreBits(iLayer, nLayer)) { newType = TensorType.Q6_K; why = "ffn_down in a use_more_bits layer"; }
            }
            else if (ftype == QuantFileTypes.MostlyQ5_K_M && UseMoreBits(iLayer, nLayer)) { newType = TensorType.Q6_K; why = "ffn_down in a use_more_bits layer"; }
            else if (ftype == QuantFileTypes.MostlyQ4_K_S && iLayer < nLayer / 8) { newType = TensorType.Q5_K; why = "ffn_down of the first 1/8 layers"; }
            else if ((ftype == QuantFileTypes.MostlyQ4_0 || ftype == QuantFileTypes.MostlyQ5_0) && qs.Options.HasImatrix && iLayer < nLayer / 8)
            {
                // llama.cpp guards the first ffn_down layers only with an imatrix, so plain files stay as they always were.
                newType = ftype == QuantFileTypes.MostlyQ4_0 ? TensorType.Q4_1 : TensorType.Q5_1;
                why = "ffn_down of the first 1/8 layers, with an imatrix";
            }
            qs.IFfnDown++;
            return newType;
        }
        if (category == Category.AttentionOutput)
        {
            if (ftype == QuantFileTypes.MostlyQ2_K) { newType = TensorType.Q3_K; why = "attn_output"; }
            else if (ftype == QuantFileTypes.MostlyQ3_K_M) { newType = TensorType.Q4_K; why = "attn_output"; }
            else if (ftype == QuantFileTypes.MostlyQ3_K_L) { newType = TensorType.Q5_K; why = "attn_output"; }
            return newType;
        }
        if (category == Category.FfnGate)
        {
            qs.IFfnGate++; // only IQ3_XS changes ffn_gate
            return newType;
        }
        if (category == Category.FfnUp)
        {
            qs.IFfnUp++; // only IQ3_XS changes ffn_up
            return newType;
        }
        return newType;
    }

    /// <summary>tensor_requires_imatrix: for the table's file types, only the Q2_K tensors of a Q2_K_S file (never token_embd/output).</summary>
    private static bool RequiresImatrix(string name, TensorType type, int ftype)
    {
        if (name is "token_embd.weight" or "per_layer_token_embd.weight" or "output.weight") return false;
        return type == TensorType.Q2_K && ftype == QuantFileTypes.MostlyQ2_K_S;
    }

    // ---- checks --------------------------------------------------------------------------------------------------

    private static void Validate(ModelConfig config, IReadOnlyList<(string Name, long[] Shape, TensorType SourceType)> tensors)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, shape, type) in tensors)
        {
            if (string.IsNullOrEmpty(name)) throw new BadInputException("a tensor has an empty name");
            if (!seen.Add(name)) throw new BadInputException($"tensor '{name}' appears twice");
            if (shape is null || shape.Length is < 1 or > 4 || shape.Any(d => d < 1))
                throw new BadInputException($"tensor '{name}': shape [{(shape is null ? "" : string.Join(", ", shape))}] is not 1 to 4 dimensions of at least 1");
            if (!TensorTypes.TryGet(type, out _)) throw new BadInputException($"tensor '{name}': unknown source type {type}");
            int block = BlockIndex(name);
            if (name.StartsWith("blk.", StringComparison.Ordinal) && block >= config.BlockCount)
                throw new BadInputException($"tensor '{name}': block {block.ToString(CultureInfo.InvariantCulture)} but the model has {config.BlockCount} blocks");
            if (CanonicalTensors.ExpectedShape(config, name) is { } rowMajor)
            {
                var ggml = rowMajor.Reverse().ToArray();
                if (!ggml.SequenceEqual(shape))
                    throw new BadInputException(
                        $"tensor '{name}': shape [{string.Join(", ", shape)}] (ggml order, row length first) contradicts the config's [{string.Join(", ", ggml)}]");
            }
        }
    }

    private static void CheckExplicitType(TensorType? type, string option)
    {
        if (type is { } t && !QuantFileTypes.WritableTensorTypes.Contains(t))
            throw new BadInputException($"{option}: {t} is not a tensor type EdgeQuant writes");
    }
}
