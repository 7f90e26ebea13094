using System.Globalization;
using EdgeQuant.Core.Errors;

namespace EdgeQuant.Compression.Pruning;

/// <summary>How the weights to remove are scored.</summary>
public enum PruneMethod
{
    /// <summary>|W_ij|: no calibration data.</summary>
    Magnitude,

    /// <summary>Wanda (Sun et al. 2023): |W_ij| · ‖X_j‖₂, compared within each output row.</summary>
    Wanda,

    /// <summary>SparseGPT (Frantar &amp; Alistarh 2023): OBS mask and weight updates from the Hessian 2XᵀX.</summary>
    SparseGpt,
}

/// <summary>
/// Semi-structured sparsity: in every group of <see cref="M"/> consecutive weights of a row (along the input
/// dimension), <see cref="N"/> are kept and M − N are zero. "2:4" keeps 2 of 4 (NVIDIA's sparse tensor cores).
/// </summary>
public readonly record struct NmPattern(int N, int M)
{
    /// <summary>Fraction of zeros the pattern imposes: (M − N) / M.</summary>
    public double Sparsity => (double)(M - N) / M;

    /// <summary>Zeros per group.</summary>
    public int Pruned => M - N;

    public override string ToString() => $"{N}:{M}";

    /// <summary>Parses "N:M" with 0 &lt; N &lt; M ≤ 256.</summary>
    public static NmPattern Parse(string text, string option = "--pattern")
    {
        ArgumentNullException.ThrowIfNull(text);
        var parts = text.Split(':');
        if (parts.Length != 2
            || !int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out int n)
            || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out int m))
            throw new BadInputException($"{option}: '{text}' is not N:M (for example 2:4 or 4:8)");
        if (m < 2 || m > 256 || n < 1 || n >= m)
            throw new BadInputException($"{option}: '{text}' needs 0 < N < M <= 256 (N weights kept in every M)");
        return new NmPattern(n, m);
    }
}

/// <summary>
/// The counting rule every method shares, so that "50 %" means the same number of zeros everywhere: the weights of a
/// tensor are taken in units (the whole tensor, a row, a SparseGPT column block) in row-major order, and a unit that
/// covers elements [start, end) prunes round(s·end) − round(s·start) of them, round = half away from zero. The
/// units therefore always add up to exactly round(s · elements) zeros per tensor, and no unit differs by more than one
/// weight from its exact share.
/// </summary>
public static class SparsityRule
{
    /// <summary>Zeros among the first <paramref name="elements"/> weights of a tensor at sparsity <paramref name="sparsity"/>.</summary>
    public static long PrunedUpTo(double sparsity, long elements) =>
        (long)Math.Round(sparsity * elements, MidpointRounding.AwayFromZero);

    /// <summary>Zeros in the unit covering [start, end).</summary>
    public static int PrunedIn(double sparsity, long start, long end) => checked((int)(PrunedUpTo(sparsity, end) - PrunedUpTo(sparsity, start)));

    /// <summary>Refuses a sparsity outside [0, 1) (1 would delete the layer, NaN means nothing).</summary>
    public static void Check(double sparsity, string option = "--sparsity")
    {
        if (!(sparsity >= 0 && sparsity < 1))
            throw new BadInputException($"{option}: {sparsity.ToString(CultureInfo.InvariantCulture)} is outside [0, 1)");
    }
}
