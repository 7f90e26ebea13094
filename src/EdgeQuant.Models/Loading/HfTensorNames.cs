using System.Text.RegularExpressions;
using EdgeQuant.Formats.HuggingFace;

namespace EdgeQuant.Models.Loading;

/// <summary>How a Hugging Face tensor's stored layout differs from the canonical (GGUF) one.</summary>
public enum HfLayout
{
    /// <summary>Same bytes, same shape.</summary>
    Same,

    /// <summary>Llama-family q_proj: rotate-half rows, permuted over the attention heads.</summary>
    RopeQ,

    /// <summary>Llama-family k_proj: rotate-half rows, permuted over the KV heads.</summary>
    RopeK,

    /// <summary>GPT-2 Conv1D weight stored [in, out].</summary>
    Transposed,
}

/// <summary>
/// The name table between transformers' state-dict keys and llama.cpp's GGUF tensor names, both ways, for the Llama
/// family (Llama, Mistral, Qwen2) and GPT-2. It also says which tensors need a layout change: Llama and Mistral
/// q/k are permuted (convert_hf_to_gguf's LlamaModel does it); Qwen2's are not, because llama.cpp runs Qwen2 with
/// NEOX-style (rotate-half) RoPE and keeps HF's row order.
/// </summary>
public static partial class HfTensorNames
{
    [GeneratedRegex(@"^model\.layers\.(\d+)\.(.+)\.(weight|bias)$")]
    private static partial Regex LlamaLayer();

    [GeneratedRegex(@"^(?:transformer\.)?h\.(\d+)\.(.+)\.(weight|bias)$")]
    private static partial Regex Gpt2Layer();

    [GeneratedRegex(@"^blk\.(\d+)\.(.+)\.(weight|bias)$")]
    private static partial Regex CanonicalLayer();

    private static readonly Dictionary<string, string> LlamaLayerParts = new()
    {
        ["input_layernorm"] = "attn_norm",
        ["self_attn.q_proj"] = "attn_q",
        ["self_attn.k_proj"] = "attn_k",
        ["self_attn.v_proj"] = "attn_v",
        ["self_attn.o_proj"] = "attn_output",
        ["post_attention_layernorm"] = "ffn_norm",
        ["mlp.gate_proj"] = "ffn_gate",
        ["mlp.up_proj"] = "ffn_up",
        ["mlp.down_proj"] = "ffn_down",
    };

    private static readonly Dictionary<string, string> Gpt2LayerParts = new()
    {
        ["ln_1"] = "attn_norm",
        ["attn.c_attn"] = "attn_qkv",
        ["attn.c_proj"] = "attn_output",
        ["ln_2"] = "ffn_norm",
        ["mlp.c_fc"] = "ffn_up",
        ["mlp.c_proj"] = "ffn_down",
    };

    private static readonly Dictionary<string, string> LlamaGlobal = new()
    {
        ["model.embed_tokens.weight"] = "token_embd.weight",
        ["model.norm.weight"] = "output_norm.weight",
        ["lm_head.weight"] = "output.weight",
    };

    private static readonly Dictionary<string, string> Gpt2Global = new()
    {
        ["wte.weight"] = "token_embd.weight",
        ["wpe.weight"] = "position_embd.weight",
        ["ln_f.weight"] = "output_norm.weight",
        ["ln_f.bias"] = "output_norm.bias",
        ["lm_head.weight"] = "output.weight",
    };

    /// <summary>Buffers some checkpoints carry that are not weights (RoPE inverse frequencies, GPT-2's causal mask).</summary>
    public static bool IsIgnorable(HfModelFamily family, string hfName) =>
        family == HfModelFamily.Gpt2
            ? hfName.EndsWith(".attn.bias", StringComparison.Ordinal) || hfName.EndsWith(".attn.masked_bias", StringComparison.Ordinal)
            : hfName.EndsWith("rotary_emb.inv_freq", StringComparison.Ordinal);

    /// <summary>The canonical name of an HF tensor and its layout, or false for a name the family does not have.</summary>
    public static bool TryToCanonical(HfModelFamily family, string hfName, out string canonical, out HfLayout layout)
    {
        layout = HfLayout.Same;
        canonical = "";
        if (family == HfModelFamily.Gpt2)
        {
            var bare = hfName.StartsWith("transformer.", StringComparison.Ordinal) ? hfName["transformer.".Length..] : hfName;
            if (Gpt2Global.TryGetValue(bare, out var g)) { canonical = g; return true; }
            var m = Gpt2Layer().Match(hfName);
            if (!m.Success || !Gpt2LayerParts.TryGetValue(m.Groups[2].Value, out var part)) return false;
            canonical = $"blk.{int.Parse(m.Groups[1].Value)}.{part}.{m.Groups[3].Value}";
            if (m.Groups[3].Value == "weight" && part is "attn_qkv" or "attn_output" or "ffn_up" or "ffn_down") layout = HfLayout.Transposed;
            return true;
        }
        if (LlamaGlobal.TryGetValue(hfName, out var lg)) { canonical = lg; return true; }
        var lm = LlamaLayer().Match(hfName);
        if (!lm.Success || !LlamaLayerParts.TryGetValue(lm.Groups[2].Value, out var lpart)) return false;
        canonical = $"blk.{int.Parse(lm.Groups[1].Value)}.{lpart}.{lm.Groups[3].Value}";
        if (family != HfModelFamily.Qwen2)
            layout = lpart switch { "attn_q" => HfLayout.RopeQ, "attn_k" => HfLayout.RopeK, _ => HfLayout.Same };
        return true;
    }

    /// <summary>The HF state-dict key for a canonical name (GPT-2 keys with the <c>transformer.</c> prefix save_pretrained writes).</summary>
    public static bool TryToHf(HfModelFamily family, string canonical, out string hfName, out HfLayout layout)
    {
        hfName = "";
        layout = HfLayout.Same;
        var globals = family == HfModelFamily.Gpt2 ? Gpt2Global : LlamaGlobal;
        foreach (var (k, v) in globals)
            if (v == canonical)
            {
                hfName = family == HfModelFamily.Gpt2 && k != "lm_head.weight" ? "transformer." + k : k;
                return true;
            }
        var m = CanonicalLayer().Match(canonical);
        if (!m.Success) return false;
        var parts = family == HfModelFamily.Gpt2 ? Gpt2LayerParts : LlamaLayerParts;
        foreach (var (k, v) in parts)
            if (v == m.Groups[2].Value)
            {
                hfName = family == HfModelFamily.Gpt2
                    ? $"transformer.h.{m.Groups[1].Value}.{k}.{m.Groups[3].Value}"
                    : $"model.layers.{m.Groups[1].Value}.{k}.{m.Groups[3].Value}";
                return TryToCanonical(family, hfName, out _, out layout);
            }
        return false;
    }
}
