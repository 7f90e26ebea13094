using EdgeQuant.Core.Errors;

namespace EdgeQuant.Compression.OnnxQuant;

/// <summary>
/// One [N, K] weight matrix (N output rows of K inputs) quantized to 4-bit blocks along K, in the layout of ONNX
/// Runtime's com.microsoft <c>MatMulNBits</c> (bits = 4): per row, ⌈K / block⌉ blocks of <see cref="BlobSize"/> bytes,
/// two codes per byte with the lower-index element in the low nibble; one float scale per block; zero points (when
/// asymmetric) packed two per byte, low nibble first, ⌈blocks / 2⌉ bytes per row. w ≈ (code − zero point) · scale,
/// with zero point 8 when symmetric. The last block of a row whose K is not a multiple of the block is padded with
/// the block's zero point, so padding dequantizes to exactly 0 whatever a kernel does with it.
/// </summary>
public sealed class Int4Matrix
{
    internal Int4Matrix(int rows, int columns, int blockSize, byte[] data, float[] scales, byte[]? zeroPoints)
    {
        Rows = rows;
        Columns = columns;
        BlockSize = blockSize;
        Data = data;
        Scales = scales;
        ZeroPoints = zeroPoints;
    }

    /// <summary>N: output features (MatMulNBits attribute N).</summary>
    public int Rows { get; }

    /// <summary>K: input features (MatMulNBits attribute K).</summary>
    public int Columns { get; }

    public int BlockSize { get; }

    public int BlocksPerRow => (Columns + BlockSize - 1) / BlockSize;

    /// <summary>Bytes per block: block_size · 4 / 8.</summary>
    public int BlobSize => BlockSize / 2;

    /// <summary>Packed zero-point bytes per row: ⌈blocks / 2⌉.</summary>
    public int ZeroPointBytesPerRow => (BlocksPerRow + 1) / 2;

    /// <summary>B of MatMulNBits: [N, blocks, blob] bytes.</summary>
    public byte[] Data { get; }

    /// <summary>[N · blocks] scales, row by row.</summary>
    public float[] Scales { get; }

    /// <summary>[N · ⌈blocks / 2⌉] packed zero points, or null when symmetric (implicit 8).</summary>
    public byte[]? ZeroPoints { get; }

    public bool Symmetric => ZeroPoints is null;

    /// <summary>The 4-bit code of element (row, column).</summary>
    public int Code(int row, int column)
    {
        int block = column / BlockSize, within = column % BlockSize;
        byte b = Data[((long)row * BlocksPerRow + block) * BlobSize + within / 2];
        return (within & 1) == 0 ? b & 0x0F : b >> 4;
    }

    public int ZeroPoint(int row, int block)
    {
        if (ZeroPoints is null) return Int4Quantization.SymmetricZeroPoint;
        byte b = ZeroPoints[(long)row * ZeroPointBytesPerRow + block / 2];
        return (block & 1) == 0 ? b & 0x0F : b >> 4;
    }

    public float Scale(int row, int block) => Scales[(long)row * BlocksPerRow + block];

    /// <summary>The weights the codes stand for, [N, K] row-major: (code − zero point) · scale, in float as ORT computes it.</summary>
    public float[] Dequantize()
    {
        var dst = new float[(long)Rows * Columns];
        Dequantize(dst);
        return dst;
    }

    public void Dequantize(Span<float> dst)
    {
        if (dst.Length != (long)Rows * Columns) throw new ArgumentException($"destination holds {dst.Length} floats, not {Rows} x {Columns}", nameof(dst));
        int blocks = BlocksPerRow;
        for (int r = 0; r < Rows; r++)
        {
            for (int b = 0; b < blocks; b++)
            {
                float scale = Scale(r, b);
                int zp = ZeroPoint(r, b), start = b * BlockSize, end = Math.Min(Columns, start + BlockSize);
                long blob = ((long)r * blocks + b) * BlobSize;
                for (int c = start; c < end; c++)
                {
                    int within = c - start;
                    byte v = Data[blob + within / 2];
                    int code = (within & 1) == 0 ? v & 0x0F : v >> 4;
                    dst[(int)((long)r * Columns + c)] = (code - zp) * scale;
                }
            }
        }
    }
}

/// <summary>
/// 4-bit block quantization for MatMulNBits. Round-to-nearest follows ONNX Runtime's own quantizer
/// (MlasQuantizeBlockwise, used by matmul_4bits_quantizer.py): symmetric blocks take the signed value of largest
/// magnitude m, scale = −m / 8, code = clamp(round(w / scale + 8), 0, 15), so m itself lands on code 0 and the
/// 16th level is spent on the other side; asymmetric blocks take [min(lo, 0), max(hi, 0)], scale = range / 15,
/// zero point = clamp(round(−lo / scale), 0, 15), code = clamp(round(w / scale + zero point), 0, 15).
/// Importance-weighted rounding (an imatrix, llama.cpp's idea from make_qx_quants) searches a few scales (and zero
/// points) per block, refits the scale by weighted least squares for the codes each gives, and keeps the one with the
/// smallest Σ imp_j (w_j − ŵ_j)²; the round-to-nearest block is always among the candidates, so the weighted error
/// never exceeds it.
/// </summary>
public static class Int4Quantization
{
    public const int SymmetricZeroPoint = 8;

    /// <summary>The block sizes EdgeQuant writes (MatMulNBits accepts powers of two from 16).</summary>
    public static IReadOnlyList<int> BlockSizes { get; } = [32, 64, 128];

    // Below this many weights a matrix is quantized on the calling thread.
    private const long ParallelThreshold = 1 << 16;

    // The symmetric search scales the RTN inverse scale by (8 + 0.1·i) / 8, i = −9..9, as make_qx_quants does.
    private const int SymmetricSteps = 9;

    // The asymmetric search divides the range by 15 + 0.1·i, i = −10..10 (make_qkx2_quants' grid: nmax − 1 … nmax + 1).
    private const int AsymmetricSteps = 10;

    /// <summary>
    /// Quantizes <paramref name="rows"/> ([<paramref name="n"/>, <paramref name="k"/>] row-major). With
    /// <paramref name="importance"/> (K non-negative values: mean squared input per column, e.g.
    /// <c>ImportanceMatrix.ImportanceFor</c>) each block minimizes the importance-weighted squared error; without,
    /// round-to-nearest as ORT's quantizer.
    /// </summary>
    public static Int4Matrix Quantize(float[] rows, int n, int k, int blockSize, bool symmetric, float[]? importance = null, string what = "weight")
    {
        ArgumentNullException.ThrowIfNull(rows);
        if (!BlockSizes.Contains(blockSize)) throw new BadInputException($"{what}: block size {blockSize} is not one of 32, 64, 128");
        if (n < 1 || k < 1 || rows.LongLength != (long)n * k)
            throw new InternalFailureException($"{what}: {rows.LongLength} weights do not hold [{n}, {k}]");
        if (importance is not null)
        {
            if (importance.Length != k)
                throw new BadInputException($"{what}: the importance matrix has {importance.Length} columns, the weight has {k}");
            for (int j = 0; j < k; j++)
                if (!(importance[j] >= 0) || float.IsInfinity(importance[j]))
                    throw new BadInputException($"{what}: importance of column {j} is {importance[j]} (must be finite and non-negative)");
        }
        int blocks = (k + blockSize - 1) / blockSize, blob = blockSize / 2, zpRow = (blocks + 1) / 2;
        var data = new byte[checked((long)n * blocks * blob)];
        var scales = new float[(long)n * blocks];
        var zeroPoints = symmetric ? null : new byte[(long)n * zpRow];

        void Row(int r)
        {
            Span<byte> codes = stackalloc byte[blockSize];
            for (int b = 0; b < blocks; b++)
            {
                int start = b * blockSize, len = Math.Min(blockSize, k - start);
                var x = rows.AsSpan((int)((long)r * k + start), len);
                var w = importance is null ? default : importance.AsSpan(start, len);
                var c = codes[..len];
                float scale;
                int zp;
                if (symmetric)
                {
                    zp = SymmetricZeroPoint;
                    scale = importance is null ? NearestSymmetric(x, c) : WeightedSymmetric(x, w, c);
                }
                else
                {
                    (scale, zp) = importance is null ? NearestAsymmetric(x, c) : WeightedAsymmetric(x, w, c);
                    // Low nibble first; an odd block count leaves the last byte's high nibble 0 (never read).
                    ref byte packed = ref zeroPoints![(long)r * zpRow + b / 2];
                    packed = (b & 1) == 0 ? (byte)((packed & 0xF0) | zp) : (byte)((packed & 0x0F) | (zp << 4));
                }
                scales[(long)r * blocks + b] = scale;
                codes[len..].Fill((byte)zp);
                var dst = data.AsSpan((int)(((long)r * blocks + b) * blob), blob);
                for (int i = 0; i < blob; i++) dst[i] = (byte)(codes[2 * i] | (codes[2 * i + 1] << 4));
            }
        }

        if ((long)n * k < ParallelThreshold) for (int r = 0; r < n; r++) Row(r);
        else Parallel.For(0, n, Row);
        return new Int4Matrix(n, k, blockSize, data, scales, zeroPoints);
    }

    /// <summary>Quantize then dequantize: the weights a MatMulNBits node computes with, [N, K].</summary>
    public static float[] QuantizeDequantize(float[] rows, int n, int k, int blockSize, bool symmetric, float[]? importance = null, string what = "weight") =>
        Quantize(rows, n, k, blockSize, symmetric, importance, what).Dequantize();

    /// <summary>Σ over rows and columns of imp_j · (w − ŵ)² (imp = 1 when null), in double.</summary>
    public static double WeightedError(ReadOnlySpan<float> rows, Int4Matrix q, ReadOnlySpan<float> importance)
    {
        var deq = q.Dequantize();
        double sum = 0;
        for (long i = 0; i < deq.LongLength; i++)
        {
            double d = rows[(int)i] - deq[i];
            sum += (importance.IsEmpty ? 1.0 : importance[(int)(i % q.Columns)]) * d * d;
        }
        return sum;
    }

    // --- round to nearest (ORT's MlasQuantizeBlockwise arithmetic) ---

    private static float NearestSymmetric(ReadOnlySpan<float> x, Span<byte> codes)
    {
        float min = float.MaxValue, max = -float.MaxValue;
        foreach (float v in x)
        {
            if (v < min) min = v;
            if (v > max) max = v;
        }
        float m = MathF.Abs(max) > MathF.Abs(min) ? max : min;
        float scale = -m / 8f;
        Encode(x, codes, scale, SymmetricZeroPoint);
        return scale;
    }

    private static (float Scale, int ZeroPoint) NearestAsymmetric(ReadOnlySpan<float> x, Span<byte> codes)
    {
        float min = float.MaxValue, max = -float.MaxValue;
        foreach (float v in x)
        {
            if (v < min) min = v;
            if (v > max) max = v;
        }
        min = MathF.Min(min, 0f);
        max = MathF.Max(max, 0f);
        float scale = (max - min) / 15f;
        float zpf = scale != 0f ? 0f - min / scale : min;
        int zp = zpf < 0f ? 0 : zpf > 15f ? 15 : (int)MathF.Round(zpf, MidpointRounding.AwayFromZero);
        Encode(x, codes, scale, zp);
        return (scale, zp);
    }

    /// <summary>code = clamp(roundf(w · (1/scale) + zp), 0, 15), each step rounded to float as MLAS does (no FMA).</summary>
    private static void Encode(ReadOnlySpan<float> x, Span<byte> codes, float scale, int zp)
    {
        float recip = scale != 0f ? 1f / scale : 0f;
        for (int i = 0; i < x.Length; i++)
        {
            float t = x[i] * recip;
            float q = MathF.Round(t + zp, MidpointRounding.AwayFromZero);
            codes[i] = (byte)Math.Clamp(q, 0f, 15f);
        }
    }

    // --- importance-weighted search ---

    /// <summary>Σ w (x − (code − zp)·scale)² with the float dequantization ORT computes.</summary>
    private static double Error(ReadOnlySpan<float> x, ReadOnlySpan<float> w, ReadOnlySpan<byte> codes, float scale, int zp)
    {
        double e = 0;
        for (int i = 0; i < x.Length; i++)
        {
            double d = x[i] - (codes[i] - zp) * scale;
            e += w[i] * d * d;
        }
        return e;
    }

    private static double WeightedSquares(ReadOnlySpan<float> x, ReadOnlySpan<float> w)
    {
        double s = 0;
        for (int i = 0; i < x.Length; i++) s += (double)w[i] * x[i] * x[i];
        return s;
    }

    private static bool AllZero(ReadOnlySpan<float> w)
    {
        foreach (float v in w) if (v > 0) return false;
        return true;
    }

    private static float WeightedSymmetric(ReadOnlySpan<float> x, ReadOnlySpan<float> w, Span<byte> codes)
    {
        float scale = NearestSymmetric(x, codes);
        if (scale == 0f || AllZero(w)) return scale;
        double best = Error(x, w, codes, scale, SymmetricZeroPoint), wx2 = WeightedSquares(x, w);
        Span<byte> trial = stackalloc byte[x.Length];
        float m = -8f * scale; // the signed value of largest magnitude
        for (int step = -SymmetricSteps; step <= SymmetricSteps; step++)
        {
            // Codes for a slightly stretched or shrunk grid, then the weighted least-squares scale for those codes.
            float candidate = -m / (8f + 0.1f * step);
            Encode(x, trial, candidate, SymmetricZeroPoint);
            Consider(x, w, wx2, trial, codes, SymmetricZeroPoint, ref scale, ref best);
        }
        Polish(x, w, wx2, codes, SymmetricZeroPoint, ref scale, ref best, trial);
        return scale;
    }

    private static (float Scale, int ZeroPoint) WeightedAsymmetric(ReadOnlySpan<float> x, ReadOnlySpan<float> w, Span<byte> codes)
    {
        var (scale, zp) = NearestAsymmetric(x, codes);
        if (scale == 0f || AllZero(w)) return (scale, zp);
        double best = Error(x, w, codes, scale, zp), wx2 = WeightedSquares(x, w);
        Span<byte> trial = stackalloc byte[x.Length];
        float range = 15f * scale, lo = -zp * scale;
        lo = MathF.Min(lo, 0f);
        foreach (float v in x) lo = MathF.Min(lo, v);
        for (int step = -AsymmetricSteps; step <= AsymmetricSteps; step++)
        {
            float s = range / (15f + 0.1f * step);
            int z = Math.Clamp((int)MathF.Round(-lo / s, MidpointRounding.AwayFromZero), 0, 15);
            Encode(x, trial, s, z);
            if (Consider(x, w, wx2, trial, codes, z, ref scale, ref best)) zp = z;
        }
        // Neighbouring zero points of the winner: the weighted optimum may trade range on one side for the other.
        for (int pass = 0; pass < 2; pass++)
        {
            int center = zp;
            foreach (int z in (ReadOnlySpan<int>)[center - 1, center + 1])
            {
                if (z is < 0 or > 15) continue;
                Encode(x, trial, scale, z);
                if (Consider(x, w, wx2, trial, codes, z, ref scale, ref best)) zp = z;
            }
        }
        Polish(x, w, wx2, codes, zp, ref scale, ref best, trial);
        return (scale, zp);
    }

    /// <summary>
    /// Refits the scale for <paramref name="trial"/>'s codes; adopts codes and scale when the weighted error drops. The
    /// error is Σw·x² − 2s·Σw·x·l + s²·Σw·l² from the refit's own sums (one pass over the block instead of two).
    /// </summary>
    private static bool Consider(ReadOnlySpan<float> x, ReadOnlySpan<float> w, double wx2, ReadOnlySpan<byte> trial, Span<byte> codes, int zp,
        ref float scale, ref double best)
    {
        double lx = 0, l2 = 0;
        for (int i = 0; i < x.Length; i++)
        {
            int l = trial[i] - zp;
            double wl = (double)w[i] * l;
            lx += wl * x[i];
            l2 += wl * l;
        }
        if (!(l2 > 0)) return false;
        float s = (float)(lx / l2);
        if (s == 0f || !float.IsFinite(s)) return false;
        double e = wx2 - 2 * s * lx + (double)s * s * l2;
        if (!(e < best)) return false;
        best = e;
        scale = s;
        trial.CopyTo(codes);
        return true;
    }

    /// <summary>Alternates nearest codes for the current scale and the refitted scale for those codes, while the error drops.</summary>
    private static void Polish(ReadOnlySpan<float> x, ReadOnlySpan<float> w, double wx2, Span<byte> codes, int zp, ref float scale, ref double best, Span<byte> trial)
    {
        for (int i = 0; i < 3; i++)
        {
            Encode(x, trial, scale, zp);
            if (!Consider(x, w, wx2, trial, codes, zp, ref scale, ref best)) return;
        }
    }
}
