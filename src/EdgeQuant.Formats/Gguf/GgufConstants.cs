namespace EdgeQuant.Formats.Gguf;

/// <summary>The value types a GGUF metadata entry can hold (<c>gguf_type</c> in ggml's <c>gguf.h</c>).</summary>
public enum GgufValueType : uint
{
    UInt8 = 0,
    Int8 = 1,
    UInt16 = 2,
    Int16 = 3,
    UInt32 = 4,
    Int32 = 5,
    Float32 = 6,
    Bool = 7,
    String = 8,
    Array = 9,
    UInt64 = 10,
    Int64 = 11,
    Float64 = 12,
}

/// <summary>Fixed numbers of the GGUF container, and the limits this reader enforces.</summary>
public static class GgufConstants
{
    /// <summary>"GGUF" read as a little-endian uint32.</summary>
    public const uint Magic = 0x46554747;

    public const uint MinVersion = 2;
    public const uint MaxVersion = 3;

    /// <summary>The version the writer emits unless told otherwise (v3 differs from v2 only by allowing big-endian files).</summary>
    public const uint WriteVersion = 3;

    public const uint DefaultAlignment = 32;
    public const string AlignmentKey = "general.alignment";
    public const string ArchitectureKey = "general.architecture";

    /// <summary>ggml's GGML_MAX_DIMS.</summary>
    public const int MaxDims = 4;

    // Caps. Each one is far above anything a real model uses, but low enough that a lying count can neither
    // allocate gigabytes nor spin for minutes before the file runs out. Counts are also checked against the bytes
    // that remain in the file (every entry takes at least a few bytes), which is the tighter bound for real files.

    /// <summary>Longest key or string value in bytes (chat templates are a few KiB; this leaves room for large embedded JSON).</summary>
    public const long MaxStringBytes = 64L << 20;

    /// <summary>Longest key (ggml keys are dotted identifiers).</summary>
    public const long MaxKeyBytes = 64 << 10;

    /// <summary>Longest tensor name. llama.cpp itself stops at 63 bytes (GGML_MAX_NAME); other tools write longer names.</summary>
    public const long MaxTensorNameBytes = 1024;

    /// <summary>Most elements in one array (the biggest vocabularies have ~260k tokens and merges).</summary>
    public const long MaxArrayLength = 1L << 26;

    /// <summary>Deepest nesting of arrays inside arrays (llama.cpp writes none; the spec allows them).</summary>
    public const int MaxArrayDepth = 8;

    public const long MaxTensorCount = 1L << 20;
    public const long MaxMetadataCount = 1L << 20;

    /// <summary>Largest alignment accepted from <c>general.alignment</c>.</summary>
    public const uint MaxAlignment = 1u << 24;
}
