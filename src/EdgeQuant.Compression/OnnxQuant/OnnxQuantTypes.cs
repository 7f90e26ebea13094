using System.Text.RegularExpressions;
using EdgeQuant.Core.Errors;
using EdgeQuant.Models;
using EdgeQuant.Models.Engine;

namespace EdgeQuant.Compression.OnnxQuant;

/// <summary>The ONNX quantization schemes (<c>edgequant quantize --format onnx --scheme …</c>).</summary>
public enum OnnxQuantScheme
{
    /// <summary>INT8 weights per channel, activations quantized at run time (DynamicQuantizeLinear + MatMulInteger).</summary>
    Int8Dynamic,

    /// <summary>QDQ: INT8 weights and activations with ranges calibrated ahead of time.</summary>
    Int8Static,

    /// <summary>4-bit weight-only blocks (com.microsoft MatMulNBits).</summary>
    Int4Weight,
}

/// <summary>How a static activation range is chosen from calibration data.</summary>
public enum CalibrationMethod
{
    MinMax,
    Percentile,
    Entropy,
    Mse,
}

/// <summary>
/// Which linear layers a scheme quantizes, by the engine's hook names (<c>blk.N.attn_q</c>, …, <c>output</c>).
/// The LM head (<c>output</c>) stays float unless asked for; norms and embeddings are never linear layers here.
/// </summary>
public sealed class LayerSelection
{
    public LayerSelection(Regex? exclude = null, bool includeLmHead = false)
    {
        Exclude = exclude;
        IncludeLmHead = includeLmHead;
    }

    /// <summary>Layers whose hook name or weight name (<c>blk.0.attn_q.weight</c>) matches stay float.</summary>
    public Regex? Exclude { get; }

    public bool IncludeLmHead { get; }

    public bool Includes(string hookLayer)
    {
        if (hookLayer == "output" && !IncludeLmHead) return false;
        return Exclude is null || !(Exclude.IsMatch(hookLayer) || Exclude.IsMatch(hookLayer + ".weight"));
    }

    /// <summary>Refuses an --exclude pattern that names none of <paramref name="layers"/> (a typo would silently quantize everything).</summary>
    public void Validate(IEnumerable<string> layers, string option = "--exclude")
    {
        if (Exclude is null) return;
        var all = layers.ToList();
        if (!all.Any(l => Exclude.IsMatch(l) || Exclude.IsMatch(l + ".weight")))
            throw new BadInputException($"{option}: '{Exclude}' matches no linear layer (layers are named like {string.Join(", ", all.Take(3))}{(all.Count > 3 ? ", …" : "")})");
    }

    public static LayerSelection Parse(string? exclude, bool includeLmHead = false, string option = "--exclude")
    {
        if (string.IsNullOrEmpty(exclude)) return new LayerSelection(null, includeLmHead);
        try
        {
            return new LayerSelection(new Regex(exclude, RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1)), includeLmHead);
        }
        catch (ArgumentException e)
        {
            throw new BadInputException($"{option}: '{exclude}' is not a valid regular expression: {e.Message}");
        }
    }
}

/// <summary>Options of the dynamic INT8 scheme (ONNX Runtime quantizer conventions).</summary>
public sealed record Int8DynamicOptions
{
    /// <summary>One scale per output channel (true) or one per tensor.</summary>
    public bool PerChannel { get; init; } = true;

    /// <summary>7-bit weights, ORT's reduce_range (avoids VPMADDUBSW saturation on CPUs without VNNI).</summary>
    public bool ReduceRange { get; init; }

    /// <summary>
    /// Layers quantized. By default every linear layer, the LM head included, as ORT's <c>quantize_dynamic</c> does
    /// (every MatMul with a constant weight); the other schemes keep the head float by default.
    /// </summary>
    public LayerSelection Layers { get; init; } = new(includeLmHead: true);
}

/// <summary>Options of the static (QDQ) INT8 scheme.</summary>
public sealed record Int8StaticOptions
{
    public bool PerChannel { get; init; } = true;

    /// <summary>Symmetric INT8 activations (zero point 0) instead of asymmetric UINT8.</summary>
    public bool SymmetricActivations { get; init; }

    public bool ReduceRange { get; init; }

    public CalibrationMethod Method { get; init; } = CalibrationMethod.MinMax;

    /// <summary>Percentile method: the kept share of |x| (99.99 keeps all but the top 0.01%).</summary>
    public double Percentile { get; init; } = 99.99;

    /// <summary>Entropy method: histogram bins (ORT's default 2048... 128 quantized bins).</summary>
    public int EntropyBins { get; init; } = 2048;

    public LayerSelection Layers { get; init; } = new();
}

/// <summary>Options of the 4-bit weight-only scheme (MatMulNBits).</summary>
public sealed record Int4WeightOptions
{
    /// <summary>Elements per block along the input dimension: 32, 64 or 128.</summary>
    public int BlockSize { get; init; } = 32;

    /// <summary>Symmetric blocks (implicit zero point 8) or with stored zero points.</summary>
    public bool Symmetric { get; init; } = true;

    /// <summary>Importance-weighted rounding from an imatrix (null: round-to-nearest).</summary>
    public Imatrix.ImportanceMatrix? Importance { get; init; }

    public LayerSelection Layers { get; init; } = new();
}

/// <summary>
/// A scheme simulated in the engine: <see cref="Model"/> carries the quantize-dequantized weights, <see cref="Hook"/>
/// (when the scheme quantizes activations) quantize-dequantizes each linear layer's input in place. Load the model
/// in a <see cref="ReferenceEngine"/> and <c>AddHook(Hook)</c> to estimate accuracy without exporting.
/// </summary>
public sealed record FakeQuantization(Model Model, ILinearInputHook? Hook) : IDisposable
{
    public void Dispose() => Model.Dispose();
}
