namespace EdgeQuant.Export.Onnx;

/// <summary>
/// One linear layer of the decoder as the exporter meets it: y = x · Wᵀ (+ b).
/// </summary>
/// <param name="Layer">
/// The engine's hook name for the layer's input: <c>blk.N.attn_q|attn_k|attn_v|attn_output|ffn_gate|ffn_up|ffn_down</c>
/// or <c>output</c> (the LM head). GPT-2's fused <c>attn_qkv</c> is split by the exporter into attn_q/k/v; their shared
/// input is what the engine reports as <c>blk.N.attn_qkv</c> (see <see cref="HookLayer"/>).
/// </param>
/// <param name="Input">The graph value holding x, [batch, seq, InDim] float.</param>
/// <param name="Rows">W as the model stores it: [OutDim, InDim] row-major F32 (Q/K rows already in the graph's rotate-half order).</param>
/// <param name="Bias">An already-emitted float initializer [OutDim], or null.</param>
/// <param name="WeightName">The initializer name an FP32 export gives the weight (llama.cpp tensor name, e.g. blk.0.attn_q.weight).</param>
public sealed record OnnxLinear(string Layer, string Input, float[] Rows, int OutDim, int InDim, string? Bias, string WeightName)
{
    /// <summary>The name the engine's <c>ILinearInputHook</c> uses for this layer's input (GPT-2: attn_q/k/v → attn_qkv).</summary>
    public string HookLayer { get; init; } = Layer;
}

/// <summary>
/// Turns a linear layer into graph nodes. The FP32 exporter's own lowering is a MatMul on a transposed [in, out]
/// initializer; quantized schemes (dynamic INT8, QDQ INT8, MatMulNBits INT4) implement this to emit their pattern.
/// </summary>
public interface IOnnxLinearLowering
{
    /// <summary>Written to <c>edgequant.dtype</c> in metadata_props (e.g. "int8-dynamic").</summary>
    string Scheme { get; }

    /// <summary>
    /// Emits y = x · Wᵀ (+ Bias) and returns the graph value holding y, [batch, seq, OutDim] float. Returning null
    /// leaves this layer to the exporter's FP32 lowering (an excluded layer). Initializers go through
    /// <paramref name="b"/>; every name passed to it must be unique (derive them from <see cref="OnnxLinear.WeightName"/>).
    /// </summary>
    string? Emit(OnnxGraphBuilder b, OnnxLinear linear);

    /// <summary>Extra <c>metadata_props</c> entries (e.g. the calibration method), read after the graph is written.</summary>
    IEnumerable<KeyValuePair<string, string>> Metadata { get; }
}

/// <summary>How float weights that stay float (embeddings, norms, excluded layers) are stored.</summary>
public enum OnnxWeightType
{
    Float32,

    /// <summary>Stored as FP16 initializers and Cast to FP32 where used: half the file, FP32 arithmetic on FP16-rounded weights.</summary>
    Float16,
}
