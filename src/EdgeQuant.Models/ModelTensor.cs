using EdgeQuant.Core.Quantization;
using EdgeQuant.Core.Tensors;

namespace EdgeQuant.Models;

/// <summary>Where a tensor's stored bytes are: a slice of a mapped file, or memory. Spans are handed out, never copies.</summary>
public interface ITensorStorage
{
    ReadOnlySpan<byte> Bytes { get; }
}

public sealed class ArrayTensorStorage(byte[] bytes) : ITensorStorage
{
    public ReadOnlySpan<byte> Bytes => bytes;
}

/// <summary>
/// A layout change applied when a tensor is read, so that every tensor in a <see cref="Model"/> is in one canonical
/// layout (GGUF's: Q/K rows interleaved for RoPE, weights [out, in]) whatever the source used.
/// </summary>
public abstract class TensorTransform
{
    /// <summary>Shape of the stored tensor, row-major, given the canonical one.</summary>
    public abstract long[] StoredShape(long[] canonicalShape);

    /// <summary>Writes the canonical layout of <paramref name="stored"/> into <paramref name="canonical"/>; rows are whole, elements are <paramref name="elementBytes"/> wide.</summary>
    public abstract void Apply(ReadOnlySpan<byte> stored, Span<byte> canonical, long[] canonicalShape, int elementBytes);
}

/// <summary>One named tensor of a <see cref="Model"/>, read lazily.</summary>
public sealed class ModelTensor
{
    /// <summary>Canonical name, in GGUF spelling (<c>token_embd.weight</c>, <c>blk.3.attn_q.weight</c>, …).</summary>
    public required string Name { get; init; }

    /// <summary>Canonical shape, row-major (outermost first): a linear weight is [out, in]. GGUF's ne[] reversed.</summary>
    public required long[] Shape { get; init; }

    public required TensorType Type { get; init; }

    /// <summary>The tensor's name in the source file.</summary>
    public required string SourceName { get; init; }

    public required ITensorStorage Storage { get; init; }

    /// <summary>Layout change from the stored bytes to the canonical layout, or null when they are already canonical.</summary>
    public TensorTransform? Transform { get; init; }

    public long ElementCount => Shape.Aggregate(1L, (a, b) => checked(a * b));

    public long ByteLength => TensorTypes.ByteSize(Type, ElementCount) ?? throw new InvalidOperationException($"{Name}: {ElementCount} elements is not a whole number of {Type} blocks");

    /// <summary>Stored bytes in canonical layout. Without a transform this is the mapped span itself.</summary>
    public ReadOnlySpan<byte> RawBytes()
    {
        var stored = Storage.Bytes;
        if (Transform is null) return stored;
        if (TensorTypes.Get(Type).IsQuantized)
            throw new NotSupportedException($"{Name}: layout transforms apply to plain types, not {Type}");
        var canonical = new byte[stored.Length];
        Transform.Apply(stored, canonical, Shape, TensorTypes.Get(Type).BlockBytes);
        return canonical;
    }

    /// <summary>The tensor as F32 in canonical layout (dequantized or converted as needed).</summary>
    public float[] ToFloat32()
    {
        var dst = new float[ElementCount];
        Dequantize.Row(Type, RawBytes(), dst);
        return dst;
    }
}
