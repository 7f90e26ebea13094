namespace EdgeQuant.Formats.Safetensors;

/// <summary>Fixed numbers of the safetensors container (huggingface/safetensors, format as of v0.4).</summary>
public static class SafetensorsConstants
{
    /// <summary>The header starts with its own length as a little-endian u64.</summary>
    public const int HeaderLengthBytes = 8;

    /// <summary>The reference implementation refuses headers above 100 MB (MAX_HEADER_SIZE); so do we, before allocating anything.</summary>
    public const long MaxHeaderBytes = 100_000_000;

    /// <summary>Writers pad the JSON header with spaces so the data section starts 8-byte aligned.</summary>
    public const int HeaderAlignment = 8;

    public const string MetadataKey = "__metadata__";

    /// <summary>No real tensor has more dimensions; a bigger rank is a broken or hostile header.</summary>
    public const int MaxRank = 16;

    /// <summary>Nesting of a valid header: object → tensor object → shape array. Anything deeper is rejected by the JSON reader.</summary>
    public const int MaxJsonDepth = 4;

    public const string SingleFileName = "model.safetensors";
    public const string IndexFileName = "model.safetensors.index.json";

    /// <summary>An index file is small (one line per tensor); cap it like a header.</summary>
    public const long MaxIndexBytes = MaxHeaderBytes;
}
