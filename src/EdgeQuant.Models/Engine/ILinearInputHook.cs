namespace EdgeQuant.Models.Engine;

/// <summary>
/// Observes, and may replace, the input of every linear layer while <see cref="ReferenceEngine"/> runs a forward pass.
/// Calibration (activation ranges), importance matrices, pruning statistics and fake-quantized evaluation plug in here.
/// </summary>
/// <remarks>
/// <para>
/// <b>Layer names</b> are the GGUF tensor names without <c>.weight</c>: <c>blk.3.attn_q</c>, <c>blk.3.attn_k</c>,
/// <c>blk.3.attn_v</c>, <c>blk.3.attn_output</c>, <c>blk.3.ffn_gate</c>, <c>blk.3.ffn_up</c>, <c>blk.3.ffn_down</c>
/// (Llama family); <c>blk.3.attn_qkv</c>, <c>blk.3.attn_output</c>, <c>blk.3.ffn_up</c>, <c>blk.3.ffn_down</c> (GPT-2);
/// and <c>output</c> for the logits projection (also when it is tied to <c>token_embd</c>). The same string instances
/// are passed on every call, so a hook may key a dictionary by them cheaply.
/// </para>
/// <para>
/// <b>When</b>: once per linear layer per micro-batch, in execution order, on the thread that called
/// <see cref="EngineSession.Decode"/>, before the layer's matrix product. A forward over n tokens of a model with
/// L blocks makes exactly one call per layer per micro-batch (see <see cref="EngineOptions.MaxBatch"/>).
/// </para>
/// <para>
/// <b>The span</b> is <paramref name="rows"/> × <paramref name="cols"/> floats, row-major: one row per token of the
/// micro-batch (for <c>output</c>: one row per position whose logits were requested, in request order), <c>cols</c>
/// = the layer's input features. It is the engine's own buffer, valid only during the call: copy what you keep.
/// Writing into it replaces the layer's input, and only that layer sees the change: when hooks are registered, layers
/// that share an input (attn_q/k/v, ffn_gate/up) each get their own copy. With no hook registered the engine skips
/// all of this and copies nothing.
/// </para>
/// <para>
/// Several hooks run in registration order, each seeing the previous one's replacement. A hook must not call back into
/// the engine session that is running it.
/// </para>
/// </remarks>
public interface ILinearInputHook
{
    void OnInput(string layer, Span<float> input, int rows, int cols);
}
