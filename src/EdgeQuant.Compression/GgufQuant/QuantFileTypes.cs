using System.Globalization;
using System.Text;
using EdgeQuant.Core.Errors;
using EdgeQuant.Core.Tensors;

namespace EdgeQuant.Compression.GgufQuant;

/// <summary>
/// One llama-quantize file type (a "quantization mix"): its name as <c>llama-quantize</c> spells it, the
/// <c>llama_ftype</c> it writes to <c>general.file_type</c>, the tensor type most weights get
/// (<c>llama_ftype_get_default_type</c>) and llama-quantize's own description.
/// </summary>
/// <param name="Name">Upper-case name, e.g. <c>Q4_K_M</c>.</param>
/// <param name="LlamaFtype">The <c>enum llama_ftype</c> value (llama.h).</param>
/// <param name="DefaultType">The type of a tensor the mix rules leave alone.</param>
/// <param name="Description">llama-quantize's description (tools/quantize/quantize.cpp QUANT_OPTIONS), leading blanks trimmed.</param>
public sealed record QuantFileType(string Name, int LlamaFtype, TensorType DefaultType, string Description)
{
    /// <summary>True for llama-quantize's short names (Q3_K, Q4_K, Q5_K) that stand for the _M mix.</summary>
    public bool IsAlias => Description.StartsWith("alias for ", StringComparison.Ordinal);

    /// <summary>True when the default type is a block-quantized type (not F32/F16/BF16): only then do mixes, overrides and fallbacks apply.</summary>
    public bool IsQuantized => TensorTypes.Get(DefaultType).IsQuantized;
}

/// <summary>
/// The one table of quantization file types: parsing of <c>--type</c>, the help table and docs/quant-types.md come
/// from it. Rows, order and descriptions are those of llama-quantize's QUANT_OPTIONS (tools/quantize/quantize.cpp of
/// the pinned llama.cpp), restricted to the mixes whose every tensor type EdgeQuant can write (no IQ*, TQ*, MXFP4,
/// Q1_0/Q2_0 types, no COPY).
/// </summary>
public static class QuantFileTypes
{
    // llama_ftype values (include/llama.h). Kept as named constants because the policy branches on them exactly as
    // llama-quant.cpp does.
    internal const int AllF32 = 0, MostlyF16 = 1, MostlyQ4_0 = 2, MostlyQ4_1 = 3, MostlyQ8_0 = 7, MostlyQ5_0 = 8, MostlyQ5_1 = 9,
        MostlyQ2_K = 10, MostlyQ3_K_S = 11, MostlyQ3_K_M = 12, MostlyQ3_K_L = 13, MostlyQ4_K_S = 14, MostlyQ4_K_M = 15,
        MostlyQ5_K_S = 16, MostlyQ5_K_M = 17, MostlyQ6_K = 18, MostlyQ2_K_S = 21, MostlyBF16 = 32;

    // (name, ftype, description verbatim from QUANT_OPTIONS). The default type is llama_ftype_get_default_type's.
    private static readonly (string Name, int Ftype, string Description)[] Rows =
    [
        ("Q4_0", MostlyQ4_0, " 4.34G, +0.4685 ppl @ Llama-3-8B"),
        ("Q4_1", MostlyQ4_1, " 4.78G, +0.4511 ppl @ Llama-3-8B"),
        ("Q5_0", MostlyQ5_0, " 5.21G, +0.1316 ppl @ Llama-3-8B"),
        ("Q5_1", MostlyQ5_1, " 5.65G, +0.1062 ppl @ Llama-3-8B"),
        ("Q2_K", MostlyQ2_K, " 2.96G, +3.5199 ppl @ Llama-3-8B"),
        ("Q2_K_S", MostlyQ2_K_S, " 2.96G, +3.1836 ppl @ Llama-3-8B"),
        ("Q3_K", MostlyQ3_K_M, "alias for Q3_K_M"),
        ("Q3_K_S", MostlyQ3_K_S, " 3.41G, +1.6321 ppl @ Llama-3-8B"),
        ("Q3_K_M", MostlyQ3_K_M, " 3.74G, +0.6569 ppl @ Llama-3-8B"),
        ("Q3_K_L", MostlyQ3_K_L, " 4.03G, +0.5562 ppl @ Llama-3-8B"),
        ("Q4_K", MostlyQ4_K_M, "alias for Q4_K_M"),
        ("Q4_K_S", MostlyQ4_K_S, " 4.37G, +0.2689 ppl @ Llama-3-8B"),
        ("Q4_K_M", MostlyQ4_K_M, " 4.58G, +0.1754 ppl @ Llama-3-8B"),
        ("Q5_K", MostlyQ5_K_M, "alias for Q5_K_M"),
        ("Q5_K_S", MostlyQ5_K_S, " 5.21G, +0.1049 ppl @ Llama-3-8B"),
        ("Q5_K_M", MostlyQ5_K_M, " 5.33G, +0.0569 ppl @ Llama-3-8B"),
        ("Q6_K", MostlyQ6_K, " 6.14G, +0.0217 ppl @ Llama-3-8B"),
        ("Q8_0", MostlyQ8_0, " 7.96G, +0.0026 ppl @ Llama-3-8B"),
        ("F16", MostlyF16, "14.00G, +0.0020 ppl @ Mistral-7B"),
        ("BF16", MostlyBF16, "14.00G, -0.0050 ppl @ Mistral-7B"),
        ("F32", AllF32, "26.00G              @ 7B"),
    ];

    /// <summary>llama-quantize names EdgeQuant knows but does not produce (their mixes need IQ/TQ/MXFP4 types), for a precise error.</summary>
    private static readonly string[] LlamaOnlyNames =
        ["Q1_0", "Q2_0", "MXFP4_MOE", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ2_M", "IQ1_S", "IQ1_M", "TQ1_0", "TQ2_0", "IQ3_XXS", "IQ3_S", "IQ3_M", "IQ3_XS", "IQ4_NL", "IQ4_XS", "COPY"];

    private static readonly QuantFileType[] Table = Rows.Select(r => new QuantFileType(r.Name, r.Ftype, DefaultTypeOf(r.Ftype), r.Description.TrimStart())).ToArray();

    /// <summary>Every supported file type, in llama-quantize's order (aliases included, as llama-quantize lists them).</summary>
    public static IReadOnlyList<QuantFileType> All => Table;

    /// <summary>
    /// The tensor types a GGUF quantization can write: F32, F16, BF16 and the block types of the supported mixes.
    /// <c>--tensor-type</c>, <c>--output-tensor-type</c> and <c>--token-embedding-type</c> accept these.
    /// </summary>
    public static IReadOnlyList<TensorType> WritableTensorTypes { get; } =
    [
        TensorType.F32, TensorType.F16, TensorType.BF16, TensorType.Q4_0, TensorType.Q4_1, TensorType.Q5_0, TensorType.Q5_1,
        TensorType.Q8_0, TensorType.Q2_K, TensorType.Q3_K, TensorType.Q4_K, TensorType.Q5_K, TensorType.Q6_K,
    ];

    /// <summary>The file type of a <c>llama_ftype</c> value (the first row that has it, as llama-quantize's number parsing finds it), or null.</summary>
    public static QuantFileType? FromLlamaFtype(int ftype) => Table.FirstOrDefault(t => t.LlamaFtype == ftype);

    /// <summary>
    /// Parses a file type as llama-quantize's try_parse_ftype does: a name, case-insensitively, or else the
    /// <c>llama_ftype</c> number (which finds the first row with that value: 15 is "Q4_K", the alias, as in llama-quantize).
    /// </summary>
    /// <exception cref="BadInputException">Unknown or unsupported type; the message lists the valid names.</exception>
    public static QuantFileType Parse(string text, string option = "--type")
    {
        ArgumentNullException.ThrowIfNull(text);
        foreach (var t in Table)
            if (string.Equals(t.Name, text, StringComparison.OrdinalIgnoreCase)) return t;
        // std::stoi accepts leading blanks, a sign and trailing junk ("15abc" is 15); int.TryParse is stricter, which
        // only refuses inputs no one means as a number.
        if (int.TryParse(text.Trim(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int n) && FromLlamaFtype(n) is { } byNumber)
            return byNumber;
        string valid = string.Join(", ", Table.Select(t => t.Name));
        if (LlamaOnlyNames.Contains(text, StringComparer.OrdinalIgnoreCase))
            throw new BadInputException($"{option}: {text.ToUpperInvariant()} is a llama.cpp type whose tensors EdgeQuant cannot write yet; use one of {valid}");
        throw new BadInputException($"{option}: '{text}' is not a quantization type; use one of {valid}");
    }

    /// <summary>
    /// Parses a single tensor type for <c>--output-tensor-type</c>, <c>--token-embedding-type</c> or the TYPE of
    /// <c>--tensor-type</c>: a ggml type name, case-insensitively (llama-quantize's parse_ggml_type), restricted to
    /// <see cref="WritableTensorTypes"/>.
    /// </summary>
    public static TensorType ParseTensorType(string text, string option)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (TensorTypes.TryParse(text, out var info) && WritableTensorTypes.Contains(info.Type)) return info.Type;
        throw new BadInputException(
            $"{option}: '{text}' is not a tensor type EdgeQuant writes; use one of {string.Join(", ", WritableTensorTypes.Select(t => TensorTypes.Get(t).Name))}");
    }

    /// <summary>
    /// The table as llama-quantize's usage prints it (<c>"  %2d  or  %-7s : %s"</c>: ftype number, name,
    /// description), one row per line, for <c>--help</c> and the docs.
    /// </summary>
    public static string HelpTable()
    {
        var sb = new StringBuilder();
        foreach (var r in Rows)
            sb.Append(CultureInfo.InvariantCulture, $"  {r.Ftype,2}  or  {r.Name,-7} : {r.Description}\n");
        return sb.ToString();
    }

    /// <summary><c>llama_ftype_get_default_type</c> (src/llama-quant.cpp), for the file types in the table.</summary>
    internal static TensorType DefaultTypeOf(int ftype) => ftype switch
    {
        MostlyQ4_0 => TensorType.Q4_0,
        MostlyQ4_1 => TensorType.Q4_1,
        MostlyQ5_0 => TensorType.Q5_0,
        MostlyQ5_1 => TensorType.Q5_1,
        MostlyQ8_0 => TensorType.Q8_0,
        MostlyF16 => TensorType.F16,
        MostlyBF16 => TensorType.BF16,
        AllF32 => TensorType.F32,
        MostlyQ2_K_S or MostlyQ2_K => TensorType.Q2_K,
        MostlyQ3_K_S or MostlyQ3_K_M or MostlyQ3_K_L => TensorType.Q3_K,
        MostlyQ4_K_S or MostlyQ4_K_M => TensorType.Q4_K,
        MostlyQ5_K_S or MostlyQ5_K_M => TensorType.Q5_K,
        MostlyQ6_K => TensorType.Q6_K,
        _ => throw new ArgumentOutOfRangeException(nameof(ftype), ftype, "not a llama_ftype EdgeQuant writes"),
    };
}
