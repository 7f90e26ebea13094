namespace EdgeQuant.Core.Tensors;

/// <summary>
/// Every element/storage type a tensor can have in any format EdgeQuant reads or writes. Values are
/// ggml's <c>ggml_type</c> ids where ggml has the type, so a GGUF type field maps by cast; types ggml
/// lacks (U8, Bool) take ids above ggml's range.
/// </summary>
public enum TensorType
{
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q8_1 = 9,
    Q2_K = 10,
    Q3_K = 11,
    Q4_K = 12,
    Q5_K = 13,
    Q6_K = 14,
    Q8_K = 15,
    I8 = 24,
    I16 = 25,
    I32 = 26,
    I64 = 27,
    F64 = 28,
    BF16 = 30,
    U8 = 1000,
    Bool = 1001,
}

/// <summary>One row of the type table: how many elements a block holds and how many bytes it takes.</summary>
/// <param name="Type">The type.</param>
/// <param name="Name">Canonical upper-case name (GGUF/llama.cpp spelling).</param>
/// <param name="BlockSize">Elements per block (1 for plain types).</param>
/// <param name="BlockBytes">Bytes per block.</param>
/// <param name="IsQuantized">True for ggml block-quantized types.</param>
/// <param name="SafetensorsName">The safetensors dtype string, or null when safetensors has no such type.</param>
public sealed record TensorTypeInfo(TensorType Type, string Name, int BlockSize, int BlockBytes, bool IsQuantized, string? SafetensorsName)
{
    /// <summary>Bits per weight, as llama.cpp reports it.</summary>
    public double BitsPerWeight => BlockBytes * 8.0 / BlockSize;
}

/// <summary>The single table of tensor types; parsing, sizes and names all come from here.</summary>
public static class TensorTypes
{
    // K-quant super-blocks are 256 elements (QK_K); the legacy quants use 32 (QK4_0 etc.). Byte sizes are
    // those of ggml's block structs (ggml-common.h).
    private static readonly TensorTypeInfo[] Table =
    [
        new(TensorType.F32, "F32", 1, 4, false, "F32"),
        new(TensorType.F16, "F16", 1, 2, false, "F16"),
        new(TensorType.BF16, "BF16", 1, 2, false, "BF16"),
        new(TensorType.F64, "F64", 1, 8, false, "F64"),
        new(TensorType.I8, "I8", 1, 1, false, "I8"),
        new(TensorType.U8, "U8", 1, 1, false, "U8"),
        new(TensorType.Bool, "BOOL", 1, 1, false, "BOOL"),
        new(TensorType.I16, "I16", 1, 2, false, "I16"),
        new(TensorType.I32, "I32", 1, 4, false, "I32"),
        new(TensorType.I64, "I64", 1, 8, false, "I64"),
        new(TensorType.Q4_0, "Q4_0", 32, 18, true, null),
        new(TensorType.Q4_1, "Q4_1", 32, 20, true, null),
        new(TensorType.Q5_0, "Q5_0", 32, 22, true, null),
        new(TensorType.Q5_1, "Q5_1", 32, 24, true, null),
        new(TensorType.Q8_0, "Q8_0", 32, 34, true, null),
        new(TensorType.Q8_1, "Q8_1", 32, 36, true, null),
        new(TensorType.Q2_K, "Q2_K", 256, 84, true, null),
        new(TensorType.Q3_K, "Q3_K", 256, 110, true, null),
        new(TensorType.Q4_K, "Q4_K", 256, 144, true, null),
        new(TensorType.Q5_K, "Q5_K", 256, 176, true, null),
        new(TensorType.Q6_K, "Q6_K", 256, 210, true, null),
        new(TensorType.Q8_K, "Q8_K", 256, 292, true, null),
    ];

    private static readonly Dictionary<TensorType, TensorTypeInfo> ByType = Table.ToDictionary(t => t.Type);
    private static readonly Dictionary<string, TensorTypeInfo> ByName = Table.ToDictionary(t => t.Name, StringComparer.OrdinalIgnoreCase);

    public static IReadOnlyList<TensorTypeInfo> All => Table;

    public static bool TryGet(TensorType type, out TensorTypeInfo info) => ByType.TryGetValue(type, out info!);

    public static TensorTypeInfo Get(TensorType type) =>
        ByType.TryGetValue(type, out var info) ? info : throw new ArgumentOutOfRangeException(nameof(type), type, "unknown tensor type");

    public static bool TryParse(string name, out TensorTypeInfo info) => ByName.TryGetValue(name, out info!);

    /// <summary>Looks up a ggml type id as read from a file; false for ids EdgeQuant does not know.</summary>
    public static bool TryFromGgmlId(uint id, out TensorTypeInfo info)
    {
        info = null!;
        return id < 1000 && ByType.TryGetValue((TensorType)id, out info!);
    }

    public static bool TryFromSafetensors(string dtype, out TensorTypeInfo info)
    {
        info = Table.FirstOrDefault(t => t.SafetensorsName == dtype)!;
        return info is not null;
    }

    /// <summary>Bytes for <paramref name="elements"/> elements, or null when the count is not a whole number of blocks or overflows.</summary>
    public static long? ByteSize(TensorType type, long elements)
    {
        var info = Get(type);
        if (elements < 0 || elements % info.BlockSize != 0) return null;
        try { return checked(elements / info.BlockSize * info.BlockBytes); }
        catch (OverflowException) { return null; }
    }
}
