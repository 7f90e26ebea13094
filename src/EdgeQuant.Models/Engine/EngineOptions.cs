namespace EdgeQuant.Models.Engine;

/// <summary>How <see cref="ReferenceEngine"/> runs.</summary>
public sealed record EngineOptions
{
    /// <summary>Worker threads for matrix products and attention (default: every core).</summary>
    public int Threads { get; init; } = Environment.ProcessorCount;

    /// <summary>
    /// Most tokens pushed through the layers at once. Longer inputs are split into micro-batches of this size, which
    /// bounds activation memory (≈ MaxBatch × (4·n_embd + 3·n_ff) floats) without changing results beyond rounding:
    /// causal attention over the KV cache makes the split invisible. 512 is llama.cpp's default n_ubatch.
    /// </summary>
    public int MaxBatch { get; init; } = 512;

    /// <summary>
    /// How GPT-2's GELU is evaluated. <see cref="GeluMode.Exact"/> (default) is the tanh formula in F32;
    /// <see cref="GeluMode.GgmlF16Table"/> reproduces llama.cpp's CPU backend, which looks GELU up in a table indexed
    /// by the input rounded to F16 and stores F16 results (GGML_GELU_FP16 in ggml-cpu/vec.h). Only for comparing
    /// against llama.cpp: that rounding alone moves GPT-2 logits by ~3e-4 relative.
    /// </summary>
    public GeluMode Gelu { get; init; } = GeluMode.Exact;

    /// <summary>
    /// What the engine does to a linear layer's input before the product. <see cref="ActivationRounding.None"/> (default):
    /// nothing, the F32 reference. <see cref="ActivationRounding.Ggml"/>: when the layer's weight is stored quantized,
    /// F16 or BF16, each input row is rounded to the type ggml's CPU backend converts activations to for that weight
    /// (Q8_0 for Q4_0/Q5_0/Q8_0, Q8_1 for Q4_1/Q5_1, Q8_K for K-quants, F16/BF16) and back to F32, so the dequantized model
    /// reproduces llama.cpp's figures (see <see cref="EdgeQuant.Core.Quantization.GgmlActivationRounding"/>). F32 weights are untouched.
    /// </summary>
    public ActivationRounding ActivationRounding { get; init; } = ActivationRounding.None;

    internal void Validate()
    {
        if (Threads < 1) throw new ArgumentOutOfRangeException(nameof(Threads), Threads, "at least one thread");
        if (MaxBatch < 1) throw new ArgumentOutOfRangeException(nameof(MaxBatch), MaxBatch, "at least one token per batch");
    }
}

/// <summary>See <see cref="EngineOptions.ActivationRounding"/>.</summary>
public enum ActivationRounding
{
    None,
    Ggml,
}

/// <summary>See <see cref="EngineOptions.Gelu"/>.</summary>
public enum GeluMode
{
    Exact,
    GgmlF16Table,
}
