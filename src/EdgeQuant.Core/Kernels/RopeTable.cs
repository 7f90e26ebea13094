namespace EdgeQuant.Core.Kernels;

/// <summary>Which elements RoPE rotates together.</summary>
public enum RopeLayout
{
    /// <summary>Pairs (2i, 2i+1): GGUF (after llama.cpp's Q/K permutation) and llama2.c.</summary>
    Interleaved,
    /// <summary>Pairs (i, i + d/2): Hugging Face's rotate_half (and GPT-NeoX).</summary>
    RotateHalf,
}

/// <summary>How the rotation angles pos · θ^(-2i/d) are computed.</summary>
public enum RopeAngles
{
    /// <summary>In double precision, then rounded: the mathematically intended angles.</summary>
    Exact,
    /// <summary>
    /// ggml's recurrence (ggml_rope_cache_init): a float angle starting at pos, multiplied by powf(θ, -2/d) once per
    /// pair. Its rounding drifts by a few ulp per pair; use it to reproduce llama.cpp bit-closely.
    /// </summary>
    GgmlRecurrence,
}

/// <summary>
/// Precomputed cos/sin for positions 0 .. MaxPositions-1 over the first <see cref="Dims"/> elements of each head
/// (Dims ≤ head size allows partial rotary). Stored pre-expanded for the layout so the kernel is a plain
/// multiply-add: interleaved keeps per element (c, c) and (-s, +s); rotate-half keeps per pair c and s.
/// </summary>
public sealed class RopeTable
{
    // A table is MaxPositions x Dims floats twice; refuse sizes that are surely a misread config.
    private const long MaxElements = 1L << 28;

    public RopeTable(int dims, int maxPositions, float theta, RopeLayout layout, RopeAngles angles = RopeAngles.Exact)
    {
        if (dims <= 0 || dims % 2 != 0) throw new ArgumentOutOfRangeException(nameof(dims), dims, "must be positive and even");
        if (maxPositions <= 0) throw new ArgumentOutOfRangeException(nameof(maxPositions), maxPositions, "must be positive");
        if (!(theta > 1) || float.IsInfinity(theta)) throw new ArgumentOutOfRangeException(nameof(theta), theta, "rope theta must be finite and > 1");
        if ((long)dims * maxPositions > MaxElements)
            throw new ArgumentOutOfRangeException(nameof(maxPositions), maxPositions, $"{maxPositions} positions x {dims} dims is too large a table");
        Dims = dims;
        MaxPositions = maxPositions;
        Theta = theta;
        Layout = layout;
        Angles = angles;
        int half = dims / 2;
        int width = layout == RopeLayout.Interleaved ? dims : half;
        Cos = new float[maxPositions * width];
        Sin = new float[maxPositions * width];
        var angle = new double[half];
        for (int p = 0; p < maxPositions; p++)
        {
            FillAngles(p, angle, theta, dims, angles);
            for (int i = 0; i < half; i++)
            {
                float c = (float)Math.Cos(angle[i]), s = (float)Math.Sin(angle[i]);
                if (layout == RopeLayout.Interleaved)
                {
                    Cos[p * width + 2 * i] = c; Cos[p * width + 2 * i + 1] = c;
                    Sin[p * width + 2 * i] = -s; Sin[p * width + 2 * i + 1] = s;
                }
                else
                {
                    Cos[p * width + i] = c;
                    Sin[p * width + i] = s;
                }
            }
        }
    }

    public int Dims { get; }
    public int MaxPositions { get; }
    public float Theta { get; }
    public RopeLayout Layout { get; }
    public RopeAngles Angles { get; }

    internal float[] Cos { get; }
    internal float[] Sin { get; }

    internal int RowWidth => Layout == RopeLayout.Interleaved ? Dims : Dims / 2;

    private static void FillAngles(int position, double[] angle, float theta, int dims, RopeAngles mode)
    {
        if (mode == RopeAngles.Exact)
        {
            for (int i = 0; i < angle.Length; i++) angle[i] = position * Math.Pow(theta, -2.0 * i / dims);
            return;
        }
        float scale = MathF.Pow(theta, -2f / dims);
        float t = position;
        for (int i = 0; i < angle.Length; i++)
        {
            angle[i] = t;
            t *= scale;
        }
    }
}
