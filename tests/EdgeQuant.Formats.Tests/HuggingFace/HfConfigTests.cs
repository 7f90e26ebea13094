using System.Text;
using EdgeQuant.Core.Errors;
using EdgeQuant.Formats.HuggingFace;
using EdgeQuant.Testing;

namespace EdgeQuant.Formats.Tests.HuggingFace;

/// <summary>The config.json files below are the published ones of real checkpoints (trimmed of training-only fields).</summary>
public class HfConfigTests
{
    // TinyLlama/TinyLlama-1.1B-Chat-v1.0
    private const string TinyLlama = """
        {"architectures":["LlamaForCausalLM"],"attention_bias":false,"bos_token_id":1,"eos_token_id":2,"hidden_act":"silu",
         "hidden_size":2048,"initializer_range":0.02,"intermediate_size":5632,"max_position_embeddings":2048,"model_type":"llama",
         "num_attention_heads":32,"num_hidden_layers":22,"num_key_value_heads":4,"pretraining_tp":1,"rms_norm_eps":1e-05,
         "rope_scaling":null,"rope_theta":10000.0,"tie_word_embeddings":false,"torch_dtype":"bfloat16","transformers_version":"4.35.0",
         "use_cache":true,"vocab_size":32000}
        """;

    // mistralai/Mistral-7B-v0.1
    private const string Mistral = """
        {"architectures":["MistralForCausalLM"],"bos_token_id":1,"eos_token_id":2,"hidden_act":"silu","hidden_size":4096,
         "initializer_range":0.02,"intermediate_size":14336,"max_position_embeddings":32768,"model_type":"mistral",
         "num_attention_heads":32,"num_hidden_layers":32,"num_key_value_heads":8,"rms_norm_eps":1e-05,"rope_theta":10000.0,
         "sliding_window":4096,"tie_word_embeddings":false,"torch_dtype":"bfloat16","transformers_version":"4.34.0.dev0",
         "use_cache":true,"vocab_size":32000}
        """;

    // Qwen/Qwen2-0.5B
    private const string Qwen2 = """
        {"architectures":["Qwen2ForCausalLM"],"attention_dropout":0.0,"bos_token_id":151643,"eos_token_id":151643,"hidden_act":"silu",
         "hidden_size":896,"initializer_range":0.02,"intermediate_size":4864,"max_position_embeddings":131072,"max_window_layers":24,
         "model_type":"qwen2","num_attention_heads":14,"num_hidden_layers":24,"num_key_value_heads":2,"rms_norm_eps":1e-06,
         "rope_theta":1000000.0,"sliding_window":131072,"tie_word_embeddings":true,"torch_dtype":"bfloat16",
         "transformers_version":"4.40.1","use_cache":true,"use_sliding_window":false,"vocab_size":151936}
        """;

    // openai-community/gpt2
    private const string Gpt2 = """
        {"activation_function":"gelu_new","architectures":["GPT2LMHeadModel"],"attn_pdrop":0.1,"bos_token_id":50256,
         "embd_pdrop":0.1,"eos_token_id":50256,"initializer_range":0.02,"layer_norm_epsilon":1e-05,"model_type":"gpt2",
         "n_ctx":1024,"n_embd":768,"n_head":12,"n_layer":12,"n_positions":1024,"resid_pdrop":0.1,
         "summary_activation":null,"summary_first_dropout":0.1,"summary_proj_to_labels":true,"summary_type":"cls_index",
         "summary_use_proj":true,"task_specific_params":{"text-generation":{"do_sample":true,"max_length":50}},"vocab_size":50257}
        """;

    private static HfConfig Parse(string json) => HfConfigReader.Parse(Encoding.UTF8.GetBytes(json), "config.json");

    [Fact]
    public void Llama_with_gqa_and_untied_output()
    {
        var c = Parse(TinyLlama);
        Assert.Equal(HfModelFamily.Llama, c.Family);
        Assert.Equal("LlamaForCausalLM", c.ArchitectureName);
        Assert.Equal((32000, 2048, 22, 32, 4, 5632, 2048, 64), (c.VocabSize, c.HiddenSize, c.NumLayers, c.NumHeads, c.NumKvHeads, c.IntermediateSize, c.MaxPositions, c.HeadDim));
        Assert.Equal(1e-5, c.NormEpsilon);
        Assert.Equal(10000.0, c.RopeTheta);
        Assert.False(c.TieWordEmbeddings);
        Assert.False(c.AttentionBias);
        Assert.Equal("bfloat16", c.TorchDtype);
        Assert.Equal(1, c.BosTokenId);
        Assert.Equal(2, c.EosTokenId);
        Assert.Null(c.RopeScalingJson);
        Assert.Equal("4.35.0", c.Raw["transformers_version"]);
    }

    [Fact]
    public void Mistral_with_gqa()
    {
        var c = Parse(Mistral);
        Assert.Equal(HfModelFamily.Mistral, c.Family);
        Assert.Equal((4096, 32, 8, 128, 14336), (c.HiddenSize, c.NumHeads, c.NumKvHeads, c.HeadDim, c.IntermediateSize));
        Assert.Equal(32768, c.MaxPositions);
    }

    [Fact]
    public void Qwen2_has_implicit_qkv_biases_and_its_own_rope_theta()
    {
        var c = Parse(Qwen2);
        Assert.Equal(HfModelFamily.Qwen2, c.Family);
        Assert.True(c.AttentionBias);
        Assert.True(c.TieWordEmbeddings);
        Assert.Equal(1_000_000.0, c.RopeTheta);
        Assert.Equal(1e-6, c.NormEpsilon);
        Assert.Equal((896, 14, 2, 64, 151936), (c.HiddenSize, c.NumHeads, c.NumKvHeads, c.HeadDim, c.VocabSize));
        Assert.False(c.UseSlidingWindow);
    }

    [Fact]
    public void Gpt2_spelling_and_defaults()
    {
        var c = Parse(Gpt2);
        Assert.Equal(HfModelFamily.Gpt2, c.Family);
        Assert.Equal((768, 12, 12, 12, 64), (c.HiddenSize, c.NumLayers, c.NumHeads, c.NumKvHeads, c.HeadDim));
        Assert.Equal(4 * 768, c.IntermediateSize); // n_inner absent: GPT2MLP uses 4 * n_embd
        Assert.Equal(1024, c.MaxPositions);
        Assert.Equal(1e-5, c.NormEpsilon);
        Assert.True(c.TieWordEmbeddings); // GPT2Config inherits PretrainedConfig's tied default
        Assert.Equal("gelu_new", c.HiddenAct);
        Assert.Equal(50257, c.VocabSize);
    }

    [Fact]
    public void Absent_kv_heads_mean_multi_head_attention_and_explicit_head_dim_wins()
    {
        var c = Parse("""{"architectures":["LlamaForCausalLM"],"hidden_size":64,"num_attention_heads":4,"num_hidden_layers":1,"intermediate_size":8,"vocab_size":10,"head_dim":32}""");
        Assert.Equal(4, c.NumKvHeads);
        Assert.Equal(32, c.HeadDim);
        Assert.Equal(1e-6, c.NormEpsilon); // LlamaConfig's default
        Assert.False(c.TieWordEmbeddings);
        var nullKv = Parse("""{"model_type":"llama","hidden_size":64,"num_attention_heads":4,"num_key_value_heads":null,"num_hidden_layers":1,"intermediate_size":8,"vocab_size":10}""");
        Assert.Equal(4, nullKv.NumKvHeads);
        Assert.Equal("LlamaForCausalLM", nullKv.ArchitectureName);
    }

    [Theory]
    [InlineData("""{"architectures":["LlamaForCausalLM"],"num_attention_heads":4,"num_hidden_layers":1,"intermediate_size":8,"vocab_size":10}""", "hidden_size", "missing")]
    [InlineData("""{"architectures":["LlamaForCausalLM"],"hidden_size":"64","num_attention_heads":4,"num_hidden_layers":1,"intermediate_size":8,"vocab_size":10}""", "hidden_size", "not an integer")]
    [InlineData("""{"architectures":["LlamaForCausalLM"],"hidden_size":64,"num_attention_heads":4,"num_key_value_heads":3,"num_hidden_layers":1,"intermediate_size":8,"vocab_size":10}""", "num_key_value_heads", "does not divide")]
    [InlineData("""{"architectures":["LlamaForCausalLM"],"hidden_size":64,"num_attention_heads":5,"num_hidden_layers":1,"intermediate_size":8,"vocab_size":10}""", "num_attention_heads", "does not divide")]
    [InlineData("""{"architectures":["LlamaForCausalLM"],"hidden_size":-64,"num_attention_heads":4,"num_hidden_layers":1,"intermediate_size":8,"vocab_size":10}""", "hidden_size", "outside")]
    [InlineData("""{"architectures":["LlamaForCausalLM"],"hidden_size":64,"num_attention_heads":4,"num_hidden_layers":1,"intermediate_size":8,"vocab_size":10,"rms_norm_eps":"tiny"}""", "rms_norm_eps", "positive number")]
    [InlineData("""{"architectures":["BertModel"],"hidden_size":64}""", "architectures[0]", "not supported")]
    [InlineData("""{"model_type":"t5"}""", "model_type", "not supported")]
    [InlineData("""{"architectures":["GPT2LMHeadModel"],"n_head":12,"n_layer":1,"vocab_size":5}""", "n_embd", "missing")]
    [InlineData("""{"architectures":["LlamaForCausalLM"],"hidden_size":64,"num_attention_heads":4,"num_hidden_layers":1,"intermediate_size":8,"vocab_size":10,"tie_word_embeddings":"yes"}""", "tie_word_embeddings", "true or false")]
    [InlineData("""[1]""", "root", "not a JSON object")]
    [InlineData("""{"architectures":["LlamaForCausalLM"],""", "JSON", "not valid JSON")]
    public void Errors_name_config_json_and_the_field(string json, string field, string problem)
    {
        var e = Assert.Throws<FileFormatException>(() => Parse(json));
        Assert.Equal("config.json", e.FilePath);
        Assert.Equal(field, e.Field);
        Assert.Contains(problem, e.Problem);
        Assert.StartsWith("config.json: " + field, e.Message);
    }

    [Theory]
    [InlineData(TinyLlama)]
    [InlineData(Mistral)]
    [InlineData(Qwen2)]
    [InlineData(Gpt2)]
    public void Writer_output_reads_back_to_the_same_config(string json)
    {
        var c = Parse(json);
        using var dir = new TempDir();
        var path = dir.File("config.json");
        HfConfigWriter.Write(path, c);
        var back = HfConfigReader.Read(path);
        Assert.Equal(c with { Raw = back.Raw }, back);
    }
}
