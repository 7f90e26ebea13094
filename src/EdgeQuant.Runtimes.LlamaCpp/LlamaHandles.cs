using System.Runtime.InteropServices;
using EdgeQuant.Runtimes.LlamaCpp.Native;

namespace EdgeQuant.Runtimes.LlamaCpp;

/// <summary>Owns a <c>llama_model *</c>; freed with <c>llama_model_free</c> once no context holds it.</summary>
public sealed class LlamaModelHandle : SafeHandle
{
    public LlamaModelHandle() : base(0, ownsHandle: true) { }

    internal LlamaModelHandle(nint model) : base(0, ownsHandle: true) => SetHandle(model);

    public override bool IsInvalid => handle == 0;

    protected override bool ReleaseHandle()
    {
        LlamaNative.llama_model_free(handle);
        return true;
    }
}

/// <summary>
/// Owns a <c>llama_context *</c>. A context reads its model's weights on every decode, so it holds a reference on the
/// model handle (<see cref="SafeHandle.DangerousAddRef"/>) from creation until it is freed: disposing the model first
/// only marks it closed, and the model is freed after its last context.
/// </summary>
public sealed class LlamaContextHandle : SafeHandle
{
    private readonly LlamaModelHandle? _model;

    public LlamaContextHandle() : base(0, ownsHandle: true) { }

    private LlamaContextHandle(LlamaModelHandle model) : base(0, ownsHandle: true) => _model = model;

    public override bool IsInvalid => handle == 0;

    /// <summary>Creates a context on <paramref name="model"/>; returns null when llama.cpp refuses (the reason is in the log).</summary>
    internal static LlamaContextHandle? Create(LlamaModelHandle model, llama_context_params parameters)
    {
        bool added = false;
        model.DangerousAddRef(ref added);
        try
        {
            var ctx = LlamaNative.llama_init_from_model(model.DangerousGetHandle(), parameters);
            if (ctx == 0) return null;
            var h = new LlamaContextHandle(model);
            h.SetHandle(ctx);
            added = false; // the reference now belongs to h and is released in ReleaseHandle
            return h;
        }
        finally
        {
            if (added) model.DangerousRelease();
        }
    }

    protected override bool ReleaseHandle()
    {
        LlamaNative.llama_free(handle);
        _model?.DangerousRelease();
        return true;
    }
}

/// <summary>Keeps a SafeHandle's native pointer valid for the duration of a native call, and hands the pointer out.</summary>
internal readonly ref struct HandleLease
{
    private readonly SafeHandle _handle;
    private readonly bool _added;

    public HandleLease(SafeHandle handle)
    {
        _handle = handle;
        bool added = false;
        handle.DangerousAddRef(ref added); // throws ObjectDisposedException once the handle is closed
        _added = added;
        Pointer = handle.DangerousGetHandle();
    }

    public nint Pointer { get; }

    public void Dispose()
    {
        if (_added) _handle.DangerousRelease();
    }
}
