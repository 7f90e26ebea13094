using System.Runtime.InteropServices;

namespace EdgeQuant.Models.Loading;

/// <summary>
/// HF Llama-family q_proj/k_proj (weights and biases) store each head's rows in rotate-half order (all "real" halves,
/// then all "imaginary" halves); GGUF, Meta's original checkpoints and llama2.c interleave them in pairs. This is
/// convert_hf_to_gguf's <c>permute</c>: canonical row h·hd + 2b + a holds stored row h·hd + a·hd/2 + b. For k_proj
/// the head count is the KV head count.
/// </summary>
public sealed class RopeInterleaveTransform(int headCount) : TensorTransform
{
    public int HeadCount { get; } = headCount;

    public override long[] StoredShape(long[] canonicalShape) => (long[])canonicalShape.Clone();

    public override void Apply(ReadOnlySpan<byte> stored, Span<byte> canonical, long[] canonicalShape, int elementBytes) =>
        ToInterleaved(stored, canonical, canonicalShape[0], RowBytes(canonicalShape, elementBytes), HeadCount);

    /// <summary>Rotate-half (HF) rows to interleaved (GGUF) rows.</summary>
    public static void ToInterleaved(ReadOnlySpan<byte> rotateHalf, Span<byte> interleaved, long rows, long rowBytes, int heads) =>
        Permute(rotateHalf, interleaved, rows, rowBytes, heads, toInterleaved: true);

    /// <summary>Interleaved (GGUF) rows to rotate-half (HF) rows: the inverse, for writers of HF checkpoints.</summary>
    public static void ToRotateHalf(ReadOnlySpan<byte> interleaved, Span<byte> rotateHalf, long rows, long rowBytes, int heads) =>
        Permute(interleaved, rotateHalf, rows, rowBytes, heads, toInterleaved: false);

    private static void Permute(ReadOnlySpan<byte> src, Span<byte> dst, long rows, long rowBytes, int heads, bool toInterleaved)
    {
        if (heads <= 0 || rows % heads != 0 || rows / heads % 2 != 0)
            throw new ArgumentException($"{rows} rows do not split into {heads} heads of an even size");
        if (src.Length != rows * rowBytes || dst.Length != src.Length)
            throw new ArgumentException($"expected {rows * rowBytes} bytes, got {src.Length} → {dst.Length}");
        long hd = rows / heads, half = hd / 2;
        int rb = checked((int)rowBytes);
        for (long h = 0; h < heads; h++)
            for (long a = 0; a < 2; a++)
                for (long b = 0; b < half; b++)
                {
                    long rotateHalfRow = h * hd + a * half + b;
                    long interleavedRow = h * hd + 2 * b + a;
                    long from = toInterleaved ? rotateHalfRow : interleavedRow;
                    long to = toInterleaved ? interleavedRow : rotateHalfRow;
                    src.Slice(checked((int)(from * rb)), rb).CopyTo(dst.Slice(checked((int)(to * rb)), rb));
                }
    }

    private static long RowBytes(long[] shape, int elementBytes)
    {
        long cols = 1;
        for (int i = 1; i < shape.Length; i++) cols *= shape[i];
        return cols * elementBytes;
    }
}

/// <summary>
/// GPT-2's Conv1D stores weights as [in, out]; the canonical (GGUF) layout is [out, in]. convert_hf_to_gguf
/// transposes c_attn, c_proj, c_fc and mlp.c_proj the same way.
/// </summary>
public sealed class TransposeTransform : TensorTransform
{
    public static TransposeTransform Instance { get; } = new();

    public override long[] StoredShape(long[] canonicalShape) =>
        canonicalShape.Length == 2 ? [canonicalShape[1], canonicalShape[0]] : throw new ArgumentException("only 2-D tensors transpose");

    public override void Apply(ReadOnlySpan<byte> stored, Span<byte> canonical, long[] canonicalShape, int elementBytes) =>
        Transpose(stored, canonical, canonicalShape[1], canonicalShape[0], elementBytes);

    /// <summary>Writes the transpose of the row-major <paramref name="rows"/>×<paramref name="cols"/> matrix <paramref name="src"/>.</summary>
    public static void Transpose(ReadOnlySpan<byte> src, Span<byte> dst, long rows, long cols, int elementBytes)
    {
        if (src.Length != rows * cols * elementBytes || dst.Length != src.Length)
            throw new ArgumentException($"expected {rows * cols * elementBytes} bytes, got {src.Length} → {dst.Length}");
        switch (elementBytes)
        {
            case 1: Transpose(src, dst, (int)rows, (int)cols); break;
            case 2: Transpose(MemoryMarshal.Cast<byte, ushort>(src), MemoryMarshal.Cast<byte, ushort>(dst), (int)rows, (int)cols); break;
            case 4: Transpose(MemoryMarshal.Cast<byte, uint>(src), MemoryMarshal.Cast<byte, uint>(dst), (int)rows, (int)cols); break;
            case 8: Transpose(MemoryMarshal.Cast<byte, ulong>(src), MemoryMarshal.Cast<byte, ulong>(dst), (int)rows, (int)cols); break;
            default: throw new ArgumentException($"element size {elementBytes} is not transposable");
        }
    }

    private static void Transpose<T>(ReadOnlySpan<T> src, Span<T> dst, int rows, int cols)
    {
        // Tiles keep both the reads and the writes inside a few cache lines; 32×32 of 4-byte elements is 4 KiB.
        const int Tile = 32;
        for (int r0 = 0; r0 < rows; r0 += Tile)
            for (int c0 = 0; c0 < cols; c0 += Tile)
            {
                int r1 = Math.Min(r0 + Tile, rows), c1 = Math.Min(c0 + Tile, cols);
                for (int r = r0; r < r1; r++)
                    for (int c = c0; c < c1; c++)
                        dst[c * rows + r] = src[r * cols + c];
            }
    }
}
