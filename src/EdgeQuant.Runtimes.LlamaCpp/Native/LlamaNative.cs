// Matches include/llama.h of node-llama-cpp@3.22.1 (llama.cpp tag v0.5.0): the functions EdgeQuant calls, in header
// order, with the C signature in a comment. Opaque handles (llama_model *, llama_context *, llama_vocab *,
// llama_memory_t) are `nint`; the SafeHandles in this assembly own them. C `bool` is one byte (U1).
//
// The library names are logical ("llama", "ggml", "ggml-base"): LlamaLibrary registers a resolver that maps them to the
// files it located (libllama.v0.5.0.so, ...) and has already loaded, so nothing here is looked up by the system loader
// on its own. Call LlamaLibrary.EnsureInitialized() before any of these.
#pragma warning disable CA1707, IDE1006 // C spelling, see LlamaStructs.cs.

using System.Runtime.InteropServices;

namespace EdgeQuant.Runtimes.LlamaCpp.Native;

public static unsafe partial class LlamaNative
{
    public const string LibLlama = "llama";
    public const string LibGgml = "ggml";
    public const string LibGgmlBase = "ggml-base";

    // const char * llama_ftype_name(enum llama_ftype ftype);
    [LibraryImport(LibLlama)] public static partial nint llama_ftype_name(LlamaFileType ftype);

    // const char * llama_flash_attn_type_name(enum llama_flash_attn_type flash_attn_type);
    [LibraryImport(LibLlama)] public static partial nint llama_flash_attn_type_name(LlamaFlashAttnType flash_attn_type);

    // const char * llama_version(void);
    [LibraryImport(LibLlama)] public static partial nint llama_version();

    // struct llama_model_params llama_model_default_params(void);
    [LibraryImport(LibLlama)] public static partial llama_model_params llama_model_default_params();

    // struct llama_context_params llama_context_default_params(void);
    [LibraryImport(LibLlama)] public static partial llama_context_params llama_context_default_params();

    // struct llama_sampler_chain_params llama_sampler_chain_default_params(void);
    [LibraryImport(LibLlama)] public static partial llama_sampler_chain_params llama_sampler_chain_default_params();

    // struct llama_model_quantize_params llama_model_quantize_default_params(void);
    [LibraryImport(LibLlama)] public static partial llama_model_quantize_params llama_model_quantize_default_params();

    // void llama_backend_init(void);
    [LibraryImport(LibLlama)] public static partial void llama_backend_init();

    // void llama_backend_free(void);
    [LibraryImport(LibLlama)] public static partial void llama_backend_free();

    // void llama_numa_init(enum ggml_numa_strategy numa);
    [LibraryImport(LibLlama)] public static partial void llama_numa_init(GgmlNumaStrategy numa);

    // struct llama_model * llama_model_load_from_file(const char * path_model, struct llama_model_params params);
    [LibraryImport(LibLlama, StringMarshalling = StringMarshalling.Utf8)]
    public static partial nint llama_model_load_from_file(string path_model, llama_model_params @params);

    // void llama_model_free(struct llama_model * model);
    [LibraryImport(LibLlama)] public static partial void llama_model_free(nint model);

    // struct llama_context * llama_init_from_model(struct llama_model * model, struct llama_context_params params);
    [LibraryImport(LibLlama)] public static partial nint llama_init_from_model(nint model, llama_context_params @params);

    // void llama_free(struct llama_context * ctx);
    [LibraryImport(LibLlama)] public static partial void llama_free(nint ctx);

    // int64_t llama_time_us(void);
    [LibraryImport(LibLlama)] public static partial long llama_time_us();

    // size_t llama_max_devices(void);
    [LibraryImport(LibLlama)] public static partial nuint llama_max_devices();

    // bool llama_supports_mmap(void);
    [LibraryImport(LibLlama)] [return: MarshalAs(UnmanagedType.U1)] public static partial bool llama_supports_mmap();

    // bool llama_supports_mlock(void);
    [LibraryImport(LibLlama)] [return: MarshalAs(UnmanagedType.U1)] public static partial bool llama_supports_mlock();

    // bool llama_supports_gpu_offload(void);
    [LibraryImport(LibLlama)] [return: MarshalAs(UnmanagedType.U1)] public static partial bool llama_supports_gpu_offload();

    // uint32_t llama_n_ctx(const struct llama_context * ctx);
    [LibraryImport(LibLlama)] public static partial uint llama_n_ctx(nint ctx);

    // uint32_t llama_n_batch(const struct llama_context * ctx);
    [LibraryImport(LibLlama)] public static partial uint llama_n_batch(nint ctx);

    // uint32_t llama_n_ubatch(const struct llama_context * ctx);
    [LibraryImport(LibLlama)] public static partial uint llama_n_ubatch(nint ctx);

    // uint32_t llama_n_seq_max(const struct llama_context * ctx);
    [LibraryImport(LibLlama)] public static partial uint llama_n_seq_max(nint ctx);

    // const struct llama_model * llama_get_model(const struct llama_context * ctx);
    [LibraryImport(LibLlama)] public static partial nint llama_get_model(nint ctx);

    // llama_memory_t llama_get_memory(const struct llama_context * ctx);
    [LibraryImport(LibLlama)] public static partial nint llama_get_memory(nint ctx);

    // const struct llama_vocab * llama_model_get_vocab(const struct llama_model * model);
    [LibraryImport(LibLlama)] public static partial nint llama_model_get_vocab(nint model);

    // int32_t llama_model_n_ctx_train(const struct llama_model * model);
    [LibraryImport(LibLlama)] public static partial int llama_model_n_ctx_train(nint model);

    // int32_t llama_model_n_embd(const struct llama_model * model);
    [LibraryImport(LibLlama)] public static partial int llama_model_n_embd(nint model);

    // int32_t llama_model_n_layer(const struct llama_model * model);
    [LibraryImport(LibLlama)] public static partial int llama_model_n_layer(nint model);

    // int32_t llama_model_n_head(const struct llama_model * model);
    [LibraryImport(LibLlama)] public static partial int llama_model_n_head(nint model);

    // int32_t llama_model_n_head_kv(const struct llama_model * model);
    [LibraryImport(LibLlama)] public static partial int llama_model_n_head_kv(nint model);

    // enum llama_vocab_type llama_vocab_type(const struct llama_vocab * vocab);
    [LibraryImport(LibLlama)] public static partial LlamaVocabType llama_vocab_type(nint vocab);

    // int32_t llama_vocab_n_tokens(const struct llama_vocab * vocab);
    [LibraryImport(LibLlama)] public static partial int llama_vocab_n_tokens(nint vocab);

    // int32_t llama_model_meta_val_str(const struct llama_model * model, const char * key, char * buf, size_t buf_size);
    [LibraryImport(LibLlama, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int llama_model_meta_val_str(nint model, string key, byte* buf, nuint buf_size);

    // int32_t llama_model_meta_count(const struct llama_model * model);
    [LibraryImport(LibLlama)] public static partial int llama_model_meta_count(nint model);

    // int32_t llama_model_meta_key_by_index(const struct llama_model * model, int32_t i, char * buf, size_t buf_size);
    [LibraryImport(LibLlama)] public static partial int llama_model_meta_key_by_index(nint model, int i, byte* buf, nuint buf_size);

    // int32_t llama_model_meta_val_str_by_index(const struct llama_model * model, int32_t i, char * buf, size_t buf_size);
    [LibraryImport(LibLlama)] public static partial int llama_model_meta_val_str_by_index(nint model, int i, byte* buf, nuint buf_size);

    // int32_t llama_model_desc(const struct llama_model * model, char * buf, size_t buf_size);
    [LibraryImport(LibLlama)] public static partial int llama_model_desc(nint model, byte* buf, nuint buf_size);

    // enum llama_ftype llama_model_ftype(const struct llama_model * model);
    [LibraryImport(LibLlama)] public static partial LlamaFileType llama_model_ftype(nint model);

    // uint64_t llama_model_size(const struct llama_model * model);
    [LibraryImport(LibLlama)] public static partial ulong llama_model_size(nint model);

    // uint64_t llama_model_n_params(const struct llama_model * model);
    [LibraryImport(LibLlama)] public static partial ulong llama_model_n_params(nint model);

    // uint32_t llama_model_quantize(const char * fname_inp, const char * fname_out, const llama_model_quantize_params * params);
    [LibraryImport(LibLlama, StringMarshalling = StringMarshalling.Utf8)]
    public static partial uint llama_model_quantize(string fname_inp, string fname_out, llama_model_quantize_params* @params);

    // void llama_memory_clear(llama_memory_t mem, bool data);
    [LibraryImport(LibLlama)] public static partial void llama_memory_clear(nint mem, [MarshalAs(UnmanagedType.U1)] bool data);

    // bool llama_memory_seq_rm(llama_memory_t mem, llama_seq_id seq_id, llama_pos p0, llama_pos p1);
    [LibraryImport(LibLlama)] [return: MarshalAs(UnmanagedType.U1)] public static partial bool llama_memory_seq_rm(nint mem, int seq_id, int p0, int p1);

    // llama_pos llama_memory_seq_pos_max(llama_memory_t mem, llama_seq_id seq_id);
    [LibraryImport(LibLlama)] public static partial int llama_memory_seq_pos_max(nint mem, int seq_id);

    // struct llama_batch llama_batch_get_one(llama_token * tokens, int32_t n_tokens);
    [LibraryImport(LibLlama)] public static partial llama_batch llama_batch_get_one(int* tokens, int n_tokens);

    // struct llama_batch llama_batch_init(int32_t n_tokens, int32_t embd, int32_t n_seq_max);
    [LibraryImport(LibLlama)] public static partial llama_batch llama_batch_init(int n_tokens, int embd, int n_seq_max);

    // void llama_batch_free(struct llama_batch batch);
    [LibraryImport(LibLlama)] public static partial void llama_batch_free(llama_batch batch);

    // int32_t llama_decode(struct llama_context * ctx, struct llama_batch batch);
    [LibraryImport(LibLlama)] public static partial int llama_decode(nint ctx, llama_batch batch);

    // void llama_set_n_threads(struct llama_context * ctx, int32_t n_threads, int32_t n_threads_batch);
    [LibraryImport(LibLlama)] public static partial void llama_set_n_threads(nint ctx, int n_threads, int n_threads_batch);

    // int32_t llama_n_threads(struct llama_context * ctx);
    [LibraryImport(LibLlama)] public static partial int llama_n_threads(nint ctx);

    // int32_t llama_n_threads_batch(struct llama_context * ctx);
    [LibraryImport(LibLlama)] public static partial int llama_n_threads_batch(nint ctx);

    // void llama_set_abort_callback(struct llama_context * ctx, ggml_abort_callback abort_callback, void * abort_callback_data);
    [LibraryImport(LibLlama)] public static partial void llama_set_abort_callback(nint ctx, nint abort_callback, nint abort_callback_data);

    // void llama_synchronize(struct llama_context * ctx);
    [LibraryImport(LibLlama)] public static partial void llama_synchronize(nint ctx);

    // float * llama_get_logits(struct llama_context * ctx);
    [LibraryImport(LibLlama)] public static partial float* llama_get_logits(nint ctx);

    // float * llama_get_logits_ith(struct llama_context * ctx, int32_t i);
    [LibraryImport(LibLlama)] public static partial float* llama_get_logits_ith(nint ctx, int i);

    // const char * llama_vocab_get_text(const struct llama_vocab * vocab, llama_token token);
    [LibraryImport(LibLlama)] public static partial nint llama_vocab_get_text(nint vocab, int token);

    // float llama_vocab_get_score(const struct llama_vocab * vocab, llama_token token);
    [LibraryImport(LibLlama)] public static partial float llama_vocab_get_score(nint vocab, int token);

    // enum llama_token_attr llama_vocab_get_attr(const struct llama_vocab * vocab, llama_token token);
    [LibraryImport(LibLlama)] public static partial LlamaTokenAttr llama_vocab_get_attr(nint vocab, int token);

    // bool llama_vocab_is_eog(const struct llama_vocab * vocab, llama_token token);
    [LibraryImport(LibLlama)] [return: MarshalAs(UnmanagedType.U1)] public static partial bool llama_vocab_is_eog(nint vocab, int token);

    // bool llama_vocab_is_control(const struct llama_vocab * vocab, llama_token token);
    [LibraryImport(LibLlama)] [return: MarshalAs(UnmanagedType.U1)] public static partial bool llama_vocab_is_control(nint vocab, int token);

    // llama_token llama_vocab_bos(const struct llama_vocab * vocab);
    [LibraryImport(LibLlama)] public static partial int llama_vocab_bos(nint vocab);

    // llama_token llama_vocab_eos(const struct llama_vocab * vocab);
    [LibraryImport(LibLlama)] public static partial int llama_vocab_eos(nint vocab);

    // llama_token llama_vocab_eot(const struct llama_vocab * vocab);
    [LibraryImport(LibLlama)] public static partial int llama_vocab_eot(nint vocab);

    // llama_token llama_vocab_nl(const struct llama_vocab * vocab);
    [LibraryImport(LibLlama)] public static partial int llama_vocab_nl(nint vocab);

    // llama_token llama_vocab_pad(const struct llama_vocab * vocab);
    [LibraryImport(LibLlama)] public static partial int llama_vocab_pad(nint vocab);

    // bool llama_vocab_get_add_bos(const struct llama_vocab * vocab);
    [LibraryImport(LibLlama)] [return: MarshalAs(UnmanagedType.U1)] public static partial bool llama_vocab_get_add_bos(nint vocab);

    // bool llama_vocab_get_add_eos(const struct llama_vocab * vocab);
    [LibraryImport(LibLlama)] [return: MarshalAs(UnmanagedType.U1)] public static partial bool llama_vocab_get_add_eos(nint vocab);

    // int32_t llama_tokenize(const struct llama_vocab * vocab, const char * text, int32_t text_len,
    //                        llama_token * tokens, int32_t n_tokens_max, bool add_special, bool parse_special);
    [LibraryImport(LibLlama)]
    public static partial int llama_tokenize(nint vocab, byte* text, int text_len, int* tokens, int n_tokens_max,
        [MarshalAs(UnmanagedType.U1)] bool add_special, [MarshalAs(UnmanagedType.U1)] bool parse_special);

    // int32_t llama_token_to_piece(const struct llama_vocab * vocab, llama_token token, char * buf, int32_t length,
    //                              int32_t lstrip, bool special);
    [LibraryImport(LibLlama)]
    public static partial int llama_token_to_piece(nint vocab, int token, byte* buf, int length, int lstrip,
        [MarshalAs(UnmanagedType.U1)] bool special);

    // int32_t llama_detokenize(const struct llama_vocab * vocab, const llama_token * tokens, int32_t n_tokens,
    //                          char * text, int32_t text_len_max, bool remove_special, bool unparse_special);
    [LibraryImport(LibLlama)]
    public static partial int llama_detokenize(nint vocab, int* tokens, int n_tokens, byte* text, int text_len_max,
        [MarshalAs(UnmanagedType.U1)] bool remove_special, [MarshalAs(UnmanagedType.U1)] bool unparse_special);

    // const char * llama_print_system_info(void);
    [LibraryImport(LibLlama)] public static partial nint llama_print_system_info();

    // void llama_log_set(ggml_log_callback log_callback, void * user_data);
    //   typedef void (*ggml_log_callback)(enum ggml_log_level level, const char * text, void * user_data);
    [LibraryImport(LibLlama)] public static partial void llama_log_set(delegate* unmanaged[Cdecl]<GgmlLogLevel, byte*, nint, void> log_callback, nint user_data);

    // struct llama_perf_context_data llama_perf_context(const struct llama_context * ctx);
    [LibraryImport(LibLlama)] public static partial llama_perf_context_data llama_perf_context(nint ctx);

    // void llama_perf_context_reset(struct llama_context * ctx);
    [LibraryImport(LibLlama)] public static partial void llama_perf_context_reset(nint ctx);
}

/// <summary>The few ggml functions EdgeQuant needs (ggml.h / ggml-backend.h of the same bundle).</summary>
public static unsafe partial class GgmlNative
{
    // void ggml_backend_load_all_from_path(const char * dir_path);   (libggml)
    [LibraryImport(LlamaNative.LibGgml, StringMarshalling = StringMarshalling.Utf8)]
    public static partial void ggml_backend_load_all_from_path(string? dir_path);

    // size_t ggml_backend_reg_count(void);   (libggml)
    [LibraryImport(LlamaNative.LibGgml)] public static partial nuint ggml_backend_reg_count();

    // ggml_backend_reg_t ggml_backend_reg_get(size_t index);   (libggml)
    [LibraryImport(LlamaNative.LibGgml)] public static partial nint ggml_backend_reg_get(nuint index);

    // size_t ggml_backend_dev_count(void);   (libggml)
    [LibraryImport(LlamaNative.LibGgml)] public static partial nuint ggml_backend_dev_count();

    // ggml_backend_dev_t ggml_backend_dev_get(size_t index);   (libggml)
    [LibraryImport(LlamaNative.LibGgml)] public static partial nint ggml_backend_dev_get(nuint index);

    // const char * ggml_backend_reg_name(ggml_backend_reg_t reg);   (libggml-base)
    [LibraryImport(LlamaNative.LibGgmlBase)] public static partial nint ggml_backend_reg_name(nint reg);

    // const char * ggml_backend_dev_name(ggml_backend_dev_t device);   (libggml-base)
    [LibraryImport(LlamaNative.LibGgmlBase)] public static partial nint ggml_backend_dev_name(nint device);

    // const char * ggml_backend_dev_description(ggml_backend_dev_t device);   (libggml-base)
    [LibraryImport(LlamaNative.LibGgmlBase)] public static partial nint ggml_backend_dev_description(nint device);

    // const char * ggml_version(void);   (libggml-base)
    [LibraryImport(LlamaNative.LibGgmlBase)] public static partial nint ggml_version();

    // const char * ggml_commit(void);   (libggml-base)
    [LibraryImport(LlamaNative.LibGgmlBase)] public static partial nint ggml_commit();
}
