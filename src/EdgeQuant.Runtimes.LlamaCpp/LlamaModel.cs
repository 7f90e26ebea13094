using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using EdgeQuant.Core.Errors;
using EdgeQuant.Runtimes.LlamaCpp.Native;

namespace EdgeQuant.Runtimes.LlamaCpp;

/// <summary>How to load a model. Defaults are llama.cpp's, CPU only.</summary>
public sealed record LlamaModelOptions
{
    /// <summary>Load only the tokenizer, no weights (fast; enough for tokenize/detokenize).</summary>
    public bool VocabOnly { get; init; }

    /// <summary><c>load_mode</c>; llama.cpp's default is to memory-map when the platform can.</summary>
    public LlamaLoadMode? LoadMode { get; init; }

    /// <summary>Have llama.cpp validate tensor data (NaN/Inf, bad quant blocks) while loading.</summary>
    public bool CheckTensors { get; init; }
}

/// <summary>A GGUF model loaded in llama.cpp. Disposing it while contexts live is safe: it is freed after them.</summary>
public sealed class LlamaModel : IDisposable
{
    private readonly LlamaModelHandle _handle;
    private readonly nint _vocab; // owned by the model; valid while _handle is
    private volatile bool _disposed;

    private LlamaModel(LlamaModelHandle handle, string path, bool vocabOnly)
    {
        _handle = handle;
        Path = path;
        IsVocabOnly = vocabOnly;
        var m = handle.DangerousGetHandle();
        _vocab = LlamaNative.llama_model_get_vocab(m);
        VocabSize = LlamaNative.llama_vocab_n_tokens(_vocab);
        VocabType = LlamaNative.llama_vocab_type(_vocab);
        ContextLengthTrain = LlamaNative.llama_model_n_ctx_train(m);
        EmbeddingLength = LlamaNative.llama_model_n_embd(m);
        LayerCount = LlamaNative.llama_model_n_layer(m);
        if (LayerCount > 0)
        {
            // These read layer 0's entry and abort the process (GGML_ABORT) on a model without layers (vocab only).
            HeadCount = LlamaNative.llama_model_n_head(m);
            KvHeadCount = LlamaNative.llama_model_n_head_kv(m);
        }
        SizeBytes = LlamaNative.llama_model_size(m);
        ParameterCount = LlamaNative.llama_model_n_params(m);
        FileType = LlamaNative.llama_model_ftype(m);
        Bos = LlamaNative.llama_vocab_bos(_vocab);
        Eos = LlamaNative.llama_vocab_eos(_vocab);
        AddsBos = LlamaNative.llama_vocab_get_add_bos(_vocab);
        AddsEos = LlamaNative.llama_vocab_get_add_eos(_vocab);
        Description = ReadString((buf, n) => { unsafe { return LlamaNative.llama_model_desc(m, (byte*)buf, n); } });
    }

    public string Path { get; }

    /// <summary>Loaded with <see cref="LlamaModelOptions.VocabOnly"/>: tokenizer only, no context can be created.</summary>
    public bool IsVocabOnly { get; }

    public int VocabSize { get; }
    public LlamaVocabType VocabType { get; }
    public int ContextLengthTrain { get; }
    public int EmbeddingLength { get; }
    public int LayerCount { get; }
    public int HeadCount { get; }
    public int KvHeadCount { get; }
    public ulong SizeBytes { get; }
    public ulong ParameterCount { get; }
    public LlamaFileType FileType { get; }

    /// <summary>llama.cpp's one-line description, e.g. <c>llama ?B all F32</c>.</summary>
    public string Description { get; }

    public int Bos { get; }
    public int Eos { get; }

    /// <summary>Whether the tokenizer adds BOS when asked to add special tokens (GGUF <c>tokenizer.ggml.add_bos_token</c>).</summary>
    public bool AddsBos { get; }

    public bool AddsEos { get; }

    internal LlamaModelHandle Handle => _handle;

    /// <summary>Loads a GGUF file. <paramref name="progress"/> receives 0..1; cancelling aborts the load.</summary>
    public static LlamaModel Load(string path, LlamaModelOptions? options = null, IProgress<float>? progress = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path)) throw new BadInputException($"{path}: no such file");
        LlamaLibrary.EnsureInitialized();
        options ??= new LlamaModelOptions();

        var p = LlamaNative.llama_model_default_params();
        p.n_gpu_layers = 0;
        p.vocab_only = options.VocabOnly ? (byte)1 : (byte)0;
        p.check_tensors = options.CheckTensors ? (byte)1 : (byte)0;
        if (options.LoadMode is { } mode) p.load_mode = mode;

        var state = new LoadProgress(progress, cancellationToken);
        var gc = GCHandle.Alloc(state);
        nint model;
        try
        {
            unsafe
            {
                // Without a callback llama.cpp prints dots to stderr; ours forwards progress or stays silent.
                p.progress_callback = (nint)(delegate* unmanaged[Cdecl]<float, nint, byte>)&OnProgress;
            }
            p.progress_callback_user_data = GCHandle.ToIntPtr(gc);
            LlamaLog.ClearHistory();
            model = LlamaNative.llama_model_load_from_file(System.IO.Path.GetFullPath(path), p);
        }
        finally
        {
            gc.Free();
        }
        if (model == 0)
        {
            cancellationToken.ThrowIfCancellationRequested();
            throw new BadInputException($"{path}: llama.cpp could not load the model{Reason()}");
        }
        var handle = new LlamaModelHandle(model);
        try
        {
            return new LlamaModel(handle, path, options.VocabOnly);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>A GGUF metadata value as text (arrays are not supported by llama.cpp here), or null when absent.</summary>
    public string? GetMetadata(string key)
    {
        using var lease = Lease();
        var m = lease.Pointer;
        unsafe
        {
            Span<byte> probe = stackalloc byte[1];
            int n;
            fixed (byte* b = probe) n = LlamaNative.llama_model_meta_val_str(m, key, b, 1);
            if (n < 0) return null;
            var buf = new byte[n + 1];
            fixed (byte* b = buf) n = LlamaNative.llama_model_meta_val_str(m, key, b, (nuint)buf.Length);
            return n < 0 ? null : Encoding.UTF8.GetString(buf, 0, n);
        }
    }

    /// <summary>Tokenizes with llama.cpp's own tokenizer.</summary>
    /// <param name="addSpecial">Add BOS/EOS where the model's tokenizer is configured to.</param>
    /// <param name="parseSpecial">Recognize special-token text such as <c>&lt;s&gt;</c>; off means it is plain text.</param>
    public int[] Tokenize(string text, bool addSpecial = true, bool parseSpecial = false) =>
        Tokenize(Encoding.UTF8.GetBytes(text), addSpecial, parseSpecial);

    /// <inheritdoc cref="Tokenize(string, bool, bool)"/>
    public unsafe int[] Tokenize(ReadOnlySpan<byte> utf8, bool addSpecial = true, bool parseSpecial = false)
    {
        if (utf8.Length > int.MaxValue - 16) throw new BadInputException($"text of {utf8.Length} bytes is too long for llama_tokenize");
        using var lease = Lease();
        // A byte never yields more than one token (byte fallback), plus BOS/EOS and a possible space prefix.
        var tokens = new int[utf8.Length + 8];
        fixed (byte* t = utf8)
        {
            for (int attempt = 0; attempt < 2; attempt++)
            {
                int n;
                fixed (int* o = tokens) n = LlamaNative.llama_tokenize(_vocab, t, utf8.Length, o, tokens.Length, addSpecial, parseSpecial);
                if (n >= 0) return n == tokens.Length ? tokens : tokens[..n];
                if (n == int.MinValue) throw new BadInputException($"text of {utf8.Length} bytes tokenizes to more than {int.MaxValue} tokens");
                tokens = new int[-n];
            }
        }
        throw new InternalFailureException("llama_tokenize asked for a larger buffer twice");
    }

    /// <summary>The bytes of one token's piece (may be a partial UTF-8 sequence for byte tokens).</summary>
    public unsafe byte[] TokenToPiece(int token, bool renderSpecial = false)
    {
        CheckToken(token);
        using var lease = Lease();
        var buf = new byte[64];
        for (int attempt = 0; attempt < 2; attempt++)
        {
            int n;
            fixed (byte* b = buf) n = LlamaNative.llama_token_to_piece(_vocab, token, b, buf.Length, 0, renderSpecial);
            if (n >= 0) return buf[..n];
            buf = new byte[-n];
        }
        throw new InternalFailureException("llama_token_to_piece asked for a larger buffer twice");
    }

    /// <summary>Text of a token sequence (inverse of <see cref="Tokenize(string, bool, bool)"/>).</summary>
    public unsafe string Detokenize(ReadOnlySpan<int> tokens, bool removeSpecial = false, bool unparseSpecial = false)
    {
        foreach (var t in tokens) CheckToken(t);
        using var lease = Lease();
        var buf = new byte[Math.Max(16, tokens.Length * 8)];
        fixed (int* tp = tokens)
        {
            for (int attempt = 0; attempt < 2; attempt++)
            {
                int n;
                fixed (byte* b = buf) n = LlamaNative.llama_detokenize(_vocab, tp, tokens.Length, b, buf.Length, removeSpecial, unparseSpecial);
                if (n >= 0) return Encoding.UTF8.GetString(buf, 0, n);
                buf = new byte[-n];
            }
        }
        throw new InternalFailureException("llama_detokenize asked for a larger buffer twice");
    }

    /// <summary>The text llama.cpp stores for a token in the vocabulary (e.g. <c>▁the</c>).</summary>
    public string TokenText(int token)
    {
        CheckToken(token);
        using var lease = Lease();
        return LlamaLibrary.Str(LlamaNative.llama_vocab_get_text(_vocab, token));
    }

    /// <summary>Creates an inference context. Disposing this model while the context lives is safe.</summary>
    public LlamaContext CreateContext(LlamaContextOptions? options = null)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (IsVocabOnly) throw new InvalidOperationException($"{Path}: loaded vocabulary-only; no context can be created");
        return LlamaContext.Create(this, options ?? new LlamaContextOptions());
    }

    public void Dispose()
    {
        _disposed = true;
        _handle.Dispose();
    }

    /// <summary>
    /// Pins the native model for one call. The flag matters: while a context holds a reference, disposing the handle
    /// does not close it, so the handle alone would keep accepting calls on a model its owner disposed.
    /// </summary>
    internal HandleLease Lease()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return new HandleLease(_handle);
    }

    internal static string Reason()
    {
        var lines = LlamaLog.RecentWarningsAndErrors();
        return lines.Count == 0 ? " (llama.cpp logged no reason)" : ": " + string.Join(" | ", lines.TakeLast(3));
    }

    private void CheckToken(int token)
    {
        if ((uint)token >= (uint)VocabSize)
            throw new ArgumentOutOfRangeException(nameof(token), token, $"token id outside the vocabulary (0..{VocabSize - 1})");
    }

    private static unsafe string ReadString(Func<nint, nuint, int> call)
    {
        var buf = new byte[256];
        fixed (byte* b = buf)
        {
            int n = call((nint)b, (nuint)buf.Length);
            return n <= 0 ? "" : Encoding.UTF8.GetString(buf, 0, Math.Min(n, buf.Length - 1));
        }
    }

    private sealed record LoadProgress(IProgress<float>? Progress, CancellationToken Token);

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static byte OnProgress(float progress, nint userData)
    {
        try
        {
            var state = (LoadProgress)GCHandle.FromIntPtr(userData).Target!;
            if (state.Token.IsCancellationRequested) return 0;
            state.Progress?.Report(progress);
            return 1;
        }
        catch (Exception)
        {
            return 0; // a failing progress sink aborts the load rather than unwinding through native frames
        }
    }
}
