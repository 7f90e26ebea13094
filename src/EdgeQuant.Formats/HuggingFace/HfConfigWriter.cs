using System.Text.Encodings.Web;
using System.Text.Json;

namespace EdgeQuant.Formats.HuggingFace;

/// <summary>Writes config.json in transformers' spelling for the family (GPT-2's n_embd, …), temp file + rename.</summary>
public static class HfConfigWriter
{
    public static void Write(string path, HfConfig c)
    {
        var tmp = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path))!, $".{Path.GetFileName(path)}.{Guid.NewGuid():N}.tmp");
        using (var fs = File.Create(tmp))
            Write(fs, c);
        File.Move(tmp, path, overwrite: true);
    }

    public static void Write(Stream stream, HfConfig c)
    {
        using var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
        w.WriteStartObject();
        w.WriteStartArray("architectures");
        w.WriteStringValue(c.ArchitectureName);
        w.WriteEndArray();
        w.WriteString("model_type", c.ModelType);
        if (c.Family == HfModelFamily.Gpt2)
        {
            w.WriteString("activation_function", c.HiddenAct ?? "gelu_new");
            w.WriteNumber("layer_norm_epsilon", c.NormEpsilon);
            w.WriteNumber("n_embd", c.HiddenSize);
            w.WriteNumber("n_head", c.NumHeads);
            if (c.IntermediateSize == 4 * c.HiddenSize) w.WriteNull("n_inner");
            else w.WriteNumber("n_inner", c.IntermediateSize);
            w.WriteNumber("n_layer", c.NumLayers);
            w.WriteNumber("n_positions", c.MaxPositions);
            w.WriteNumber("n_ctx", c.MaxPositions);
        }
        else
        {
            w.WriteBoolean("attention_bias", c.Family != HfModelFamily.Qwen2 && c.AttentionBias);
            w.WriteNumber("head_dim", c.HeadDim);
            w.WriteString("hidden_act", c.HiddenAct ?? "silu");
            w.WriteNumber("hidden_size", c.HiddenSize);
            w.WriteNumber("intermediate_size", c.IntermediateSize);
            w.WriteNumber("max_position_embeddings", c.MaxPositions);
            if (c.Family == HfModelFamily.Llama) w.WriteBoolean("mlp_bias", c.MlpBias);
            w.WriteNumber("num_attention_heads", c.NumHeads);
            w.WriteNumber("num_hidden_layers", c.NumLayers);
            w.WriteNumber("num_key_value_heads", c.NumKvHeads);
            w.WriteNumber("rms_norm_eps", c.NormEpsilon);
            if (c.RopeScalingJson is { } rs)
            {
                w.WritePropertyName("rope_scaling");
                w.WriteRawValue(rs);
            }
            else w.WriteNull("rope_scaling");
            w.WriteNumber("rope_theta", c.RopeTheta);
            if (c.Family == HfModelFamily.Qwen2) w.WriteBoolean("use_sliding_window", c.UseSlidingWindow);
        }
        if (c.BosTokenId is { } bos) w.WriteNumber("bos_token_id", bos);
        if (c.EosTokenId is { } eos) w.WriteNumber("eos_token_id", eos);
        w.WriteBoolean("tie_word_embeddings", c.TieWordEmbeddings);
        if (c.TorchDtype is { } dt) w.WriteString("torch_dtype", dt);
        w.WriteNumber("vocab_size", c.VocabSize);
        w.WriteEndObject();
    }
}
