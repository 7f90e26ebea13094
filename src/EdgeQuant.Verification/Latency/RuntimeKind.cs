namespace EdgeQuant.Verification.Latency;

/// <summary>Which runtime a candidate runs in for the latency probe.</summary>
public enum RuntimeKind
{
    /// <summary>By the file: llama.cpp for GGUF (by magic), ONNX Runtime for <c>.onnx</c>, the engine otherwise (HF folder, llama2.c).</summary>
    Auto,
    /// <summary>llama.cpp through libllama (GGUF of any tensor type), llama.cpp's default context (F16 KV cache, flash attention auto): what a device runs.</summary>
    LlamaCpp,
    /// <summary>ONNX Runtime (decoder LMs with or without a KV cache), CPU execution provider.</summary>
    OnnxRuntime,
    /// <summary>EdgeQuant's FP32 reference engine (weights expanded to F32 at load).</summary>
    Engine,
}

/// <summary>Resolves <see cref="RuntimeKind.Auto"/> the way <c>eval</c> and <c>verify</c> do.</summary>
public static class RuntimeKinds
{
    public static RuntimeKind Resolve(RuntimeKind kind, string candidatePath)
    {
        if (kind != RuntimeKind.Auto) return kind;
        if (Directory.Exists(candidatePath)) return RuntimeKind.Engine;
        if (candidatePath.EndsWith(".onnx", StringComparison.OrdinalIgnoreCase)) return RuntimeKind.OnnxRuntime;
        return IsGguf(candidatePath) ? RuntimeKind.LlamaCpp : RuntimeKind.Engine;
    }

    /// <summary>True when the file starts with the GGUF magic (the extension is not trusted).</summary>
    public static bool IsGguf(string path)
    {
        if (!File.Exists(path)) return false;
        Span<byte> magic = stackalloc byte[4];
        using var f = File.OpenRead(path);
        return f.ReadAtLeast(magic, 4, throwOnEndOfStream: false) == 4 && magic.SequenceEqual("GGUF"u8);
    }
}
