using System.Text.RegularExpressions;
using EdgeQuant.Core.Errors;
using EdgeQuant.Core.Tensors;

namespace EdgeQuant.Compression.GgufQuant;

/// <summary>
/// One <c>--tensor-type REGEX=TYPE</c> rule, with llama-quantize's semantics: the pattern is searched (not fully
/// matched) in the tensor name, the first rule that matches wins, and it applies only when the file type is a
/// quantized one; the row-length fallback still applies to the chosen type. A matching rule also switches the mix
/// rules off for that tensor, which shifts llama.cpp's per-layer counters exactly as it does there.
/// </summary>
public sealed record TensorTypeOverride(Regex Pattern, TensorType Type)
{
    /// <summary>Longest pattern accepted; a tensor-type rule is a short name fragment, not a program.</summary>
    public const int MaxPatternLength = 1024;

    /// <summary>
    /// Parses <c>REGEX=TYPE</c> as llama-quantize's parse_tensor_type does: split at the first '=', the pattern
    /// lower-cased (ASCII, as std::tolower in the C locale), the type a ggml type name in any case. The pattern is
    /// compiled with ECMAScript semantics, the grammar std::regex uses by default.
    /// </summary>
    /// <exception cref="BadInputException">No '=', an empty side, an invalid pattern or a type EdgeQuant cannot write.</exception>
    public static TensorTypeOverride Parse(string text, string option = "--tensor-type")
    {
        ArgumentNullException.ThrowIfNull(text);
        int eq = text.IndexOf('=');
        if (eq < 0) throw new BadInputException($"{option}: malformed tensor type '{text}' (expected REGEX=TYPE, e.g. attn_v=q8_0)");
        if (eq == 0) throw new BadInputException($"{option}: missing tensor name in '{text}'");
        if (eq == text.Length - 1) throw new BadInputException($"{option}: missing quantization type in '{text}'");
        if (eq > MaxPatternLength) throw new BadInputException($"{option}: the pattern is {eq} characters long; at most {MaxPatternLength} are accepted");
        string pattern = AsciiLower(text[..eq]);
        var type = QuantFileTypes.ParseTensorType(text[(eq + 1)..], option);
        Regex regex;
        try
        {
            // A bounded match time: the names are short, so only a pathological pattern could run long.
            regex = new Regex(pattern, RegexOptions.ECMAScript, TimeSpan.FromSeconds(1));
        }
        catch (ArgumentException e)
        {
            throw new BadInputException($"{option}: '{pattern}' is not a valid regular expression ({e.Message})", e);
        }
        return new TensorTypeOverride(regex, type);
    }

    /// <summary>Parses a <c>--tensor-type-file</c>: rules separated by blanks or newlines, as llama-quantize reads them (file >> word).</summary>
    public static IReadOnlyList<TensorTypeOverride> ParseMany(string text, string option = "--tensor-type-file") =>
        text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries).Select(w => Parse(w, option)).ToList();

    public override string ToString() => $"{Pattern}={TensorTypes.Get(Type).Name.ToLowerInvariant()}";

    private static string AsciiLower(string s) => string.Create(s.Length, s, static (dst, src) =>
    {
        for (int i = 0; i < src.Length; i++) dst[i] = src[i] is >= 'A' and <= 'Z' ? (char)(src[i] + 32) : src[i];
    });
}
