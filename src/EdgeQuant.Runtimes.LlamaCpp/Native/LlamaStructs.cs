// Matches include/llama.h of node-llama-cpp@3.22.1 (package/llama/gitRelease.bundle, llama.cpp tag v0.5.0).
//
// Every struct of the header, in header order, mirrored field by field with the C type in a comment. Field names keep
// the C spelling on purpose: the ABI test (tests/EdgeQuant.Runtimes.Tests/LlamaCpp/LlamaAbiTests.cs) generates a C
// program from these names and compares offsetof/sizeof with the managed layout, so a renamed or misplaced field fails
// to compile or to match. C `bool` is one byte here, so it is mirrored as `byte` (0/1): that keeps every struct
// blittable, which LibraryImport needs to pass them by value without a marshaller. Function pointers and opaque
// pointers are `nint`/typed pointers; the callbacks we install are `[UnmanagedCallersOnly]` methods.
#pragma warning disable CA1707, IDE1006 // C spelling, see above.

using System.Runtime.InteropServices;

namespace EdgeQuant.Runtimes.LlamaCpp.Native;

/// <summary><c>typedef struct llama_token_data</c></summary>
[StructLayout(LayoutKind.Sequential)]
public struct llama_token_data
{
    public int id;        // llama_token id
    public float logit;   // float logit
    public float p;       // float p
}

/// <summary><c>typedef struct llama_token_data_array</c></summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct llama_token_data_array
{
    public llama_token_data* data; // llama_token_data * data
    public nuint size;             // size_t size
    public long selected;          // int64_t selected
    public byte sorted;            // bool sorted
}

/// <summary><c>typedef struct llama_batch</c>: arrays are owned by whoever filled them (llama_batch_init or the caller).</summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct llama_batch
{
    public int n_tokens;      // int32_t n_tokens
    public int* token;        // llama_token * token
    public float* embd;       // float * embd
    public int* pos;          // llama_pos * pos
    public int* n_seq_id;     // int32_t * n_seq_id
    public int** seq_id;      // llama_seq_id ** seq_id
    public sbyte* logits;     // int8_t * logits (non-zero: output this position)
}

/// <summary><c>struct llama_model_kv_override</c>: the anonymous union starts at the first 8-byte boundary after <c>key</c>.</summary>
[StructLayout(LayoutKind.Explicit, Size = 264)]
public unsafe struct llama_model_kv_override
{
    [FieldOffset(0)] public LlamaModelKvOverrideType tag; // enum llama_model_kv_override_type tag
    [FieldOffset(4)] public fixed byte key[128];          // char key[128]
    [FieldOffset(136)] public long val_i64;               // union { int64_t val_i64;
    [FieldOffset(136)] public double val_f64;             //         double  val_f64;
    [FieldOffset(136)] public byte val_bool;              //         bool    val_bool;
    [FieldOffset(136)] public fixed byte val_str[128];    //         char    val_str[128]; }
}

/// <summary><c>struct llama_model_tensor_buft_override</c></summary>
[StructLayout(LayoutKind.Sequential)]
public struct llama_model_tensor_buft_override
{
    public nint pattern; // const char * pattern
    public nint buft;    // ggml_backend_buffer_type_t buft
}

/// <summary><c>struct llama_model_params</c>. Get defaults from <c>llama_model_default_params()</c>, then change fields.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct llama_model_params
{
    public nint devices;                      // ggml_backend_dev_t * devices (NULL-terminated; NULL = all)
    public nint tensor_buft_overrides;        // const struct llama_model_tensor_buft_override * tensor_buft_overrides
    public int n_gpu_layers;                  // int32_t n_gpu_layers
    public LlamaSplitMode split_mode;         // enum llama_split_mode split_mode
    public LlamaLoadMode load_mode;           // enum llama_load_mode load_mode
    public LlamaLazyMode lazy_mode;           // enum llama_lazy_mode lazy_mode
    public int main_gpu;                      // int32_t main_gpu
    public nint tensor_split;                 // const float * tensor_split
    public nint progress_callback;            // llama_progress_callback: bool (*)(float progress, void * user_data)
    public nint progress_callback_user_data;  // void * progress_callback_user_data
    public nint kv_overrides;                 // const struct llama_model_kv_override * kv_overrides
    public byte vocab_only;                   // bool vocab_only
    public byte check_tensors;                // bool check_tensors
    public byte use_extra_bufts;              // bool use_extra_bufts
    public byte no_host;                      // bool no_host
    public byte no_alloc;                     // bool no_alloc
    public byte load_mtp;                     // bool load_mtp
}

/// <summary><c>struct llama_sampler_seq_config</c></summary>
[StructLayout(LayoutKind.Sequential)]
public struct llama_sampler_seq_config
{
    public int seq_id;    // llama_seq_id seq_id
    public nint sampler;  // struct llama_sampler * sampler
}

/// <summary><c>struct llama_context_params</c>. Get defaults from <c>llama_context_default_params()</c>, then change fields.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct llama_context_params
{
    public uint n_ctx;                            // uint32_t n_ctx (0 = from model)
    public uint n_batch;                          // uint32_t n_batch
    public uint n_ubatch;                         // uint32_t n_ubatch
    public uint n_seq_max;                        // uint32_t n_seq_max
    public uint n_rs_seq;                         // uint32_t n_rs_seq
    public uint n_outputs_max;                    // uint32_t n_outputs_max
    public uint n_outputs_max_per_seq;            // uint32_t n_outputs_max_per_seq
    public int n_threads;                         // int32_t n_threads
    public int n_threads_batch;                   // int32_t n_threads_batch
    public LlamaContextType ctx_type;             // enum llama_context_type ctx_type
    public LlamaRopeScalingType rope_scaling_type; // enum llama_rope_scaling_type rope_scaling_type
    public LlamaPoolingType pooling_type;         // enum llama_pooling_type pooling_type
    public LlamaAttentionType attention_type;     // enum llama_attention_type attention_type
    public LlamaFlashAttnType flash_attn_type;    // enum llama_flash_attn_type flash_attn_type
    public float rope_freq_base;                  // float rope_freq_base
    public float rope_freq_scale;                 // float rope_freq_scale
    public float yarn_ext_factor;                 // float yarn_ext_factor
    public float yarn_attn_factor;                // float yarn_attn_factor
    public float yarn_beta_fast;                  // float yarn_beta_fast
    public float yarn_beta_slow;                  // float yarn_beta_slow
    public uint yarn_orig_ctx;                    // uint32_t yarn_orig_ctx
    public float defrag_thold;                    // float defrag_thold [DEPRECATED]
    public nint cb_eval;                          // ggml_backend_sched_eval_callback cb_eval
    public nint cb_eval_user_data;                // void * cb_eval_user_data
    public GgmlType type_k;                       // enum ggml_type type_k
    public GgmlType type_v;                       // enum ggml_type type_v
    public nint abort_callback;                   // ggml_abort_callback: bool (*)(void * data)
    public nint abort_callback_data;              // void * abort_callback_data
    public byte embeddings;                       // bool embeddings
    public byte offload_kqv;                      // bool offload_kqv
    public byte no_perf;                          // bool no_perf
    public byte op_offload;                       // bool op_offload
    public byte swa_full;                         // bool swa_full
    public byte kv_unified;                       // bool kv_unified
    public nint samplers;                         // struct llama_sampler_seq_config * samplers
    public nuint n_samplers;                      // size_t n_samplers
    public nint ctx_other;                        // struct llama_context * ctx_other
}

/// <summary><c>struct llama_model_tensor_override</c></summary>
[StructLayout(LayoutKind.Sequential)]
public struct llama_model_tensor_override
{
    public nint pattern;   // const char * pattern
    public GgmlType type;  // enum ggml_type type
}

/// <summary><c>struct llama_model_imatrix_data</c></summary>
[StructLayout(LayoutKind.Sequential)]
public struct llama_model_imatrix_data
{
    public nint name;   // const char * name
    public nint data;   // const float * data
    public nuint size;  // size_t size
}

/// <summary><c>typedef struct llama_model_quantize_params</c>. Get defaults from <c>llama_model_quantize_default_params()</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct llama_model_quantize_params
{
    public int nthread;                   // int32_t nthread (<= 0: hardware concurrency)
    public LlamaFileType ftype;           // enum llama_ftype ftype
    public GgmlType output_tensor_type;   // enum ggml_type output_tensor_type
    public GgmlType token_embedding_type; // enum ggml_type token_embedding_type
    public byte allow_requantize;         // bool allow_requantize
    public byte quantize_output_tensor;   // bool quantize_output_tensor
    public byte only_copy;                // bool only_copy
    public byte pure;                     // bool pure
    public byte keep_split;               // bool keep_split
    public byte dry_run;                  // bool dry_run
    public nint imatrix;                  // const struct llama_model_imatrix_data * imatrix
    public nint kv_overrides;             // const struct llama_model_kv_override * kv_overrides
    public nint tt_overrides;             // const struct llama_model_tensor_override * tt_overrides
    public nint prune_layers;             // const int32_t * prune_layers
    public nuint max_buf_size;            // size_t max_buf_size (0 = default, 8 GiB)
}

/// <summary><c>typedef struct llama_logit_bias</c></summary>
[StructLayout(LayoutKind.Sequential)]
public struct llama_logit_bias
{
    public int token;   // llama_token token
    public float bias;  // float bias
}

/// <summary><c>typedef struct llama_sampler_chain_params</c></summary>
[StructLayout(LayoutKind.Sequential)]
public struct llama_sampler_chain_params
{
    public byte no_perf; // bool no_perf
}

/// <summary><c>typedef struct llama_chat_message</c></summary>
[StructLayout(LayoutKind.Sequential)]
public struct llama_chat_message
{
    public nint role;     // const char * role
    public nint content;  // const char * content
}

/// <summary><c>struct llama_sampler_data</c></summary>
[StructLayout(LayoutKind.Sequential)]
public struct llama_sampler_data
{
    public nint logits;      // struct ggml_tensor * logits
    public nint probs;       // struct ggml_tensor * probs
    public nint sampled;     // struct ggml_tensor * sampled
    public nint candidates;  // struct ggml_tensor * candidates
}

/// <summary><c>struct llama_sampler_i</c>: a table of function pointers (any may be NULL except <c>apply</c>).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct llama_sampler_i
{
    public nint name;               // const char * (*name)(const struct llama_sampler *)
    public nint accept;             // void (*accept)(struct llama_sampler *, llama_token)
    public nint apply;              // void (*apply)(struct llama_sampler *, llama_token_data_array *)
    public nint reset;              // void (*reset)(struct llama_sampler *)
    public nint clone;              // struct llama_sampler * (*clone)(const struct llama_sampler *)
    public nint free;               // void (*free)(struct llama_sampler *)
    public nint backend_init;       // bool (*backend_init)(struct llama_sampler *, ggml_backend_buffer_type_t, uint32_t)
    public nint backend_accept;     // void (*backend_accept)(struct llama_sampler *, struct ggml_context *, struct ggml_cgraph *, struct ggml_tensor *)
    public nint backend_apply;      // void (*backend_apply)(struct llama_sampler *, struct ggml_context *, struct ggml_cgraph *, struct llama_sampler_data *)
    public nint backend_set_input;  // void (*backend_set_input)(struct llama_sampler *)
    public nint backend_reset;      // void (*backend_reset)(struct llama_sampler *)
    public nint copy_state;         // void (*copy_state)(const struct llama_sampler *, struct llama_sampler *)
}

/// <summary><c>struct llama_sampler</c></summary>
[StructLayout(LayoutKind.Sequential)]
public struct llama_sampler
{
    public nint iface;  // struct llama_sampler_i * iface
    public nint ctx;    // llama_sampler_context_t ctx
}

/// <summary><c>struct llama_perf_context_data</c></summary>
[StructLayout(LayoutKind.Sequential)]
public struct llama_perf_context_data
{
    public double t_start_ms;   // double t_start_ms
    public double t_load_ms;    // double t_load_ms
    public double t_p_eval_ms;  // double t_p_eval_ms
    public double t_eval_ms;    // double t_eval_ms
    public int n_p_eval;        // int32_t n_p_eval
    public int n_eval;          // int32_t n_eval
    public int n_reused;        // int32_t n_reused
}

/// <summary><c>struct llama_perf_sampler_data</c></summary>
[StructLayout(LayoutKind.Sequential)]
public struct llama_perf_sampler_data
{
    public double t_sample_ms;  // double t_sample_ms
    public int n_sample;        // int32_t n_sample
}

/// <summary><c>struct llama_opt_params</c></summary>
[StructLayout(LayoutKind.Sequential)]
public struct llama_opt_params
{
    public uint n_ctx_train;      // uint32_t n_ctx_train
    public nint param_filter;     // llama_opt_param_filter param_filter
    public nint param_filter_ud;  // void * param_filter_ud
    public nint get_opt_pars;     // ggml_opt_get_optimizer_params get_opt_pars
    public nint get_opt_pars_ud;  // void * get_opt_pars_ud
    public int optimizer_type;    // enum ggml_opt_optimizer_type optimizer_type
}
