using System.Runtime.InteropServices;
using System.Text;
using EdgeQuant.Compression.GgufQuant;
using EdgeQuant.Core.Tensors;
using EdgeQuant.Models;
using EdgeQuant.Runtimes;
using EdgeQuant.Runtimes.LlamaCpp;
using EdgeQuant.Runtimes.LlamaCpp.Native;
using EdgeQuant.Testing;

namespace EdgeQuant.Compression.Tests.GgufQuant;

/// <summary>
/// Test-only interop with llama.cpp's own type policy, through the C++ helpers libllama exports for testing
/// (src/llama-ext.h of the pinned bundle: llama_quant_model_from_metadata, llama_quant_init,
/// llama_quant_compute_types, llama_quant_tensor_allows_quantization, llama_quant_free,
/// llama_ftype_get_default_type). They are C++ symbols, so they are found by their Itanium-mangled names; the
/// tensors they look at are real ggml_tensors made in a no_alloc ggml context (shape, type and name only).
/// </summary>
internal sealed unsafe class LlamaQuantPeer
{
    /// <summary><c>struct llama_quant_model_desc</c> (llama-ext.h).</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct ModelDesc
    {
        public nint Architecture;   // const char * architecture
        public uint NEmbd, NFf, NLayer, NHead, NHeadKv, NExpert, NEmbdHeadK, NEmbdHeadV;
    }

    /// <summary><c>struct ggml_init_params</c> (ggml.h), passed by value.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct GgmlInitParams
    {
        public nuint MemSize;   // size_t mem_size
        public nint MemBuffer;  // void * mem_buffer
        public byte NoAlloc;    // bool no_alloc
    }

    /// <summary><c>struct llama_model_tensor_override</c> (llama.h).</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct TensorOverride
    {
        public nint Pattern;    // const char * pattern
        public int Type;        // enum ggml_type type
    }

    private readonly delegate* unmanaged<ModelDesc*, nint> _modelFromMetadata;
    private readonly delegate* unmanaged<nint, llama_model_quantize_params*, nint> _quantInit;
    private readonly delegate* unmanaged<nint, int, nint*, int*, nuint, void> _computeTypes;
    private readonly delegate* unmanaged<nint, nint, byte> _allowsQuantization;
    private readonly delegate* unmanaged<nint, void> _quantFree;
    private readonly delegate* unmanaged<int, int> _defaultType;
    private readonly delegate* unmanaged<nint, void> _modelFree;
    private readonly delegate* unmanaged<GgmlInitParams, nint> _ggmlInit;
    private readonly delegate* unmanaged<nint, int, int, long*, nint> _ggmlNewTensor;
    private readonly delegate* unmanaged<nint, byte*, nint> _ggmlSetName;
    private readonly delegate* unmanaged<nuint> _ggmlTensorOverhead;
    private readonly delegate* unmanaged<nint, void> _ggmlFree;

    private static readonly Lazy<LlamaQuantPeer> Shared = new(() => new LlamaQuantPeer());

    /// <summary>The peer, loading llama.cpp on first use (throws <see cref="RuntimeNotFoundException"/> when it is missing).</summary>
    public static LlamaQuantPeer Instance => Shared.Value;

    private LlamaQuantPeer()
    {
        var info = LlamaLibrary.EnsureInitialized();
        var llama = NativeLibrary.Load(info.LlamaPath);
        var ggmlBase = NativeLibrary.Load(Path.Combine(Path.GetDirectoryName(info.LlamaPath)!, "libggml-base.so"));
        _modelFromMetadata = (delegate* unmanaged<ModelDesc*, nint>)NativeLibrary.GetExport(llama, "_Z31llama_quant_model_from_metadataPK22llama_quant_model_desc");
        _quantInit = (delegate* unmanaged<nint, llama_model_quantize_params*, nint>)NativeLibrary.GetExport(llama, "_Z16llama_quant_initPK11llama_modelPK27llama_model_quantize_params");
        _computeTypes = (delegate* unmanaged<nint, int, nint*, int*, nuint, void>)NativeLibrary.GetExport(llama, "_Z25llama_quant_compute_typesP19quantize_state_impl11llama_ftypePP11ggml_tensorP9ggml_typem");
        _allowsQuantization = (delegate* unmanaged<nint, nint, byte>)NativeLibrary.GetExport(llama, "_Z38llama_quant_tensor_allows_quantizationPK19quantize_state_implPK11ggml_tensor");
        _quantFree = (delegate* unmanaged<nint, void>)NativeLibrary.GetExport(llama, "_Z16llama_quant_freeP19quantize_state_impl");
        _defaultType = (delegate* unmanaged<int, int>)NativeLibrary.GetExport(llama, "_Z28llama_ftype_get_default_type11llama_ftype");
        _modelFree = (delegate* unmanaged<nint, void>)NativeLibrary.GetExport(llama, "llama_model_free");
        _ggmlInit = (delegate* unmanaged<GgmlInitParams, nint>)NativeLibrary.GetExport(ggmlBase, "ggml_init");
        _ggmlNewTensor = (delegate* unmanaged<nint, int, int, long*, nint>)NativeLibrary.GetExport(ggmlBase, "ggml_new_tensor");
        _ggmlSetName = (delegate* unmanaged<nint, byte*, nint>)NativeLibrary.GetExport(ggmlBase, "ggml_set_name");
        _ggmlTensorOverhead = (delegate* unmanaged<nuint>)NativeLibrary.GetExport(ggmlBase, "ggml_tensor_overhead");
        _ggmlFree = (delegate* unmanaged<nint, void>)NativeLibrary.GetExport(ggmlBase, "ggml_free");
    }

    /// <summary>The counters of <c>struct quantize_state_impl</c> after a computation.</summary>
    public readonly record struct Counters(int NAttentionWv, int NFfnDown, int IAttentionWv, int IFfnDown, int NFallback);

    /// <summary>
    /// Reads the counters of llama.cpp's <c>struct quantize_state_impl</c> (src/llama-quant.cpp): a reference and a
    /// pointer (16 bytes on 64-bit), then the ints n_attention_wv, n_ffn_down, n_ffn_gate, n_ffn_up, i_attention_wv,
    /// i_ffn_down, i_ffn_gate, i_ffn_up, n_fallback. No accessor is exported; the caller checks the layout on values
    /// it knows (n_attention_wv, n_ffn_down) before trusting the rest.
    /// </summary>
    private static Counters ReadCounters(nint qs)
    {
        var ints = (int*)(qs + 2 * sizeof(nint));
        return new Counters(ints[0], ints[1], ints[4], ints[5], ints[8]);
    }

    /// <summary>llama_ftype_get_default_type, as a ggml type id (GGML_TYPE_COUNT for file types it does not know).</summary>
    public int DefaultType(int ftype) => _defaultType(ftype);

    /// <summary>What llama.cpp decided for one list of tensors.</summary>
    public sealed record Result(TensorType[] Types, bool[] Allows, int Fallbacks);

    /// <summary>
    /// llama.cpp's choice for every tensor of <paramref name="tensors"/> (ggml-order shapes), walked in the order given,
    /// as llama_model_quantize walks its loader's weights. Fallbacks are llama.cpp's own count (n_fallback).
    /// </summary>
    public Result ComputeTypes(ModelConfig config, IReadOnlyList<(string Name, long[] Shape, TensorType SourceType)> tensors,
        int ftype, QuantizationPolicyOptions options)
    {
        var strings = new List<nint>();
        nint model = 0, qs = 0, ctx = 0;
        try
        {
            nint Utf8(string s)
            {
                var p = Marshal.StringToCoTaskMemUTF8(s);
                strings.Add(p);
                return p;
            }

            var desc = new ModelDesc
            {
                Architecture = Utf8(config.Architecture switch { Models.Architecture.Qwen2 => "qwen2", Models.Architecture.Gpt2 => "gpt2", _ => "llama" }),
                NEmbd = (uint)config.EmbeddingLength,
                NFf = (uint)config.FeedForwardLength,
                NLayer = (uint)config.BlockCount,
                NHead = (uint)config.HeadCount,
                NHeadKv = (uint)config.HeadCountKv,
                NExpert = 0,
                NEmbdHeadK = (uint)config.HeadDim,
                NEmbdHeadV = (uint)config.HeadDim,
            };
            model = _modelFromMetadata(&desc);
            if (model == 0) throw new InvalidOperationException("llama_quant_model_from_metadata returned NULL");

            // The state keeps the params pointer (and compiles the override patterns when made), so both live in
            // native memory until it is freed.
            var overrides = (TensorOverride*)NativeMemory.AllocZeroed((nuint)(options.Overrides.Count + 1), (nuint)sizeof(TensorOverride));
            var p = (llama_model_quantize_params*)NativeMemory.AllocZeroed((nuint)sizeof(llama_model_quantize_params));
            try
            {
                *p = LlamaNative.llama_model_quantize_default_params();
                p->ftype = (LlamaFileType)ftype;
                p->nthread = 1;
                p->pure = options.Pure ? (byte)1 : (byte)0;
                p->quantize_output_tensor = options.LeaveOutputTensor ? (byte)0 : (byte)1;
                p->output_tensor_type = options.OutputTensorType is { } ot ? (GgmlType)(int)ot : GgmlType.Count;
                p->token_embedding_type = options.TokenEmbeddingType is { } et ? (GgmlType)(int)et : GgmlType.Count;
                for (int i = 0; i < options.Overrides.Count; i++)
                    overrides[i] = new TensorOverride { Pattern = Utf8(options.Overrides[i].Pattern.ToString()), Type = (int)options.Overrides[i].Type };
                overrides[options.Overrides.Count] = new TensorOverride { Pattern = 0, Type = (int)GgmlType.Count };
                p->tt_overrides = options.Overrides.Count > 0 ? (nint)overrides : 0;
                qs = _quantInit(model, p);

                ctx = _ggmlInit(new GgmlInitParams { MemSize = (nuint)(tensors.Count + 1) * _ggmlTensorOverhead(), MemBuffer = 0, NoAlloc = 1 });
                if (ctx == 0) throw new InvalidOperationException("ggml_init returned NULL");
                var handles = new nint[tensors.Count];
                for (int i = 0; i < tensors.Count; i++)
                {
                    var (name, shape, type) = tensors[i];
                    fixed (long* ne = shape)
                        handles[i] = _ggmlNewTensor(ctx, (int)type, shape.Length, ne);
                    if (handles[i] == 0) throw new InvalidOperationException($"ggml_new_tensor failed for {name}");
                    var bytes = Encoding.UTF8.GetBytes(name + "\0");
                    fixed (byte* n = bytes) _ggmlSetName(handles[i], n);
                }

                var allows = new bool[tensors.Count];
                for (int i = 0; i < tensors.Count; i++) allows[i] = _allowsQuantization(qs, handles[i]) != 0;

                var result = new int[tensors.Count];
                fixed (nint* t = handles)
                fixed (int* r = result)
                    _computeTypes(qs, ftype, t, r, (nuint)tensors.Count);
                var counters = ReadCounters(qs);
                // The layout is checked on what compute_types just set from the list and the model.
                int attnV = tensors.Count(t => t.Name.Contains("attn_v.weight") || t.Name.Contains("attn_qkv.weight") || t.Name.Contains("attn_kv_b.weight"));
                if (counters.NAttentionWv != attnV || counters.NFfnDown != config.BlockCount)
                    throw new InvalidOperationException(
                        $"quantize_state_impl layout differs from the pinned source: n_attention_wv {counters.NAttentionWv} (expected {attnV}), n_ffn_down {counters.NFfnDown} (expected {config.BlockCount})");
                int fallbacks = counters.NFallback;
                return new Result(result.Select(r => (TensorType)r).ToArray(), allows, fallbacks);
            }
            finally
            {
                if (qs != 0) _quantFree(qs);
                qs = 0;
                NativeMemory.Free(p);
                NativeMemory.Free(overrides);
            }
        }
        finally
        {
            if (ctx != 0) _ggmlFree(ctx);
            if (model != 0) _modelFree(model);
            foreach (var s in strings) Marshal.FreeCoTaskMem(s);
        }
    }
}

/// <summary>
/// A fact that needs the llama.cpp runtime: skipped with the numbered reason on a developer machine without it, run
/// (and so failed) under CI=true.
/// </summary>
public sealed class LlamaCppFactAttribute : FactAttribute
{
    public LlamaCppFactAttribute(params string[] sharedFiles) => Skip = LlamaCppAvailability.SkipReason(sharedFiles);
}

/// <summary>The theory twin of <see cref="LlamaCppFactAttribute"/>.</summary>
public sealed class LlamaCppTheoryAttribute : TheoryAttribute
{
    public LlamaCppTheoryAttribute(params string[] sharedFiles) => Skip = LlamaCppAvailability.SkipReason(sharedFiles);
}

internal static class LlamaCppAvailability
{
    private static readonly Lazy<string?> Missing = new(() =>
    {
        try
        {
            LlamaLibrary.EnsureInitialized();
            return null;
        }
        catch (RuntimeNotFoundException e)
        {
            return $"llama.cpp runtime unavailable: {e.Message} (under CI=true this fails instead)";
        }
    });

    public static string? SkipReason(string[] sharedFiles)
    {
        if (SharedData.IsCi) return null;
        if (Missing.Value is { } reason) return reason;
        if (sharedFiles.Select(SharedData.PathOf).FirstOrDefault(p => !File.Exists(p)) is { } missing)
            return $"shared test data not found: {missing} (set EDGEQUANT_SHARED_DATA; under CI=true this fails instead)";
        return null;
    }
}
