namespace EdgeQuant.Runtimes.OnnxRuntime;

/// <summary>Sizes of ORT element types and the CLR types that hold them.</summary>
public static class OrtElementTypes
{
    /// <summary>Bytes per element; 0 for types without a fixed byte size (string, 4-bit types).</summary>
    public static int SizeOf(OrtElementType type) => type switch
    {
        OrtElementType.Float or OrtElementType.Int32 or OrtElementType.UInt32 => 4,
        OrtElementType.UInt8 or OrtElementType.Int8 or OrtElementType.Bool => 1,
        OrtElementType.Float8E4M3FN or OrtElementType.Float8E4M3FNUZ or OrtElementType.Float8E5M2 or OrtElementType.Float8E5M2FNUZ => 1,
        OrtElementType.UInt16 or OrtElementType.Int16 or OrtElementType.Float16 or OrtElementType.BFloat16 => 2,
        OrtElementType.Int64 or OrtElementType.UInt64 or OrtElementType.Double or OrtElementType.Complex64 => 8,
        OrtElementType.Complex128 => 16,
        _ => 0,
    };

    /// <summary>The element type a CLR type stands for by default (ushort is UInt16; pass BFloat16 explicitly).</summary>
    public static OrtElementType Of<T>() where T : unmanaged =>
        typeof(T) == typeof(float) ? OrtElementType.Float
        : typeof(T) == typeof(Half) ? OrtElementType.Float16
        : typeof(T) == typeof(double) ? OrtElementType.Double
        : typeof(T) == typeof(long) ? OrtElementType.Int64
        : typeof(T) == typeof(int) ? OrtElementType.Int32
        : typeof(T) == typeof(short) ? OrtElementType.Int16
        : typeof(T) == typeof(sbyte) ? OrtElementType.Int8
        : typeof(T) == typeof(byte) ? OrtElementType.UInt8
        : typeof(T) == typeof(ushort) ? OrtElementType.UInt16
        : typeof(T) == typeof(uint) ? OrtElementType.UInt32
        : typeof(T) == typeof(ulong) ? OrtElementType.UInt64
        : typeof(T) == typeof(bool) ? OrtElementType.Bool
        : throw new ArgumentException($"{typeof(T).Name} has no ONNX element type; pass the type explicitly over a same-sized element");
}
