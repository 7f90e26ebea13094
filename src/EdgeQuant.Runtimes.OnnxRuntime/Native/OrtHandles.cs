using System.Buffers;
using System.Runtime.InteropServices;

namespace EdgeQuant.Runtimes.OnnxRuntime.Native;

/// <summary>
/// Base of every ORT object handle: owns one native pointer, releases it once with the matching
/// <c>Release*</c> slot, and keeps a parent handle alive (ref-counted) for as long as it lives.
/// </summary>
public abstract class OrtHandle : SafeHandle
{
    private SafeHandle? _parent;

    protected OrtHandle() : base(IntPtr.Zero, ownsHandle: true) { }

    public override bool IsInvalid => handle == IntPtr.Zero;

    internal IntPtr Pointer => handle;

    internal void SetPointer(IntPtr pointer) => SetHandle(pointer);

    /// <summary>Keeps <paramref name="parent"/> alive until this handle is released.</summary>
    internal void KeepAlive(SafeHandle parent)
    {
        bool added = false;
        parent.DangerousAddRef(ref added);
        if (added) _parent = parent;
    }

    protected sealed override bool ReleaseHandle()
    {
        try
        {
            Release(handle);
        }
        finally
        {
            _parent?.DangerousRelease();
            _parent = null;
        }
        return true;
    }

    protected abstract void Release(IntPtr pointer);
}

/// <summary><c>OrtEnv*</c>. ORT keeps one environment per process and ref-counts <c>CreateEnv</c> calls.</summary>
public sealed class OrtEnvHandle : OrtHandle
{
    protected override unsafe void Release(IntPtr pointer) => OrtApi.Instance.ReleaseEnv(pointer);
}

/// <summary><c>OrtSessionOptions*</c>.</summary>
public sealed class OrtSessionOptionsHandle : OrtHandle
{
    protected override unsafe void Release(IntPtr pointer) => OrtApi.Instance.ReleaseSessionOptions(pointer);
}

/// <summary><c>OrtSession*</c>; keeps its environment alive.</summary>
public sealed class OrtSessionHandle : OrtHandle
{
    protected override unsafe void Release(IntPtr pointer) => OrtApi.Instance.ReleaseSession(pointer);
}

/// <summary><c>OrtMemoryInfo*</c>.</summary>
public sealed class OrtMemoryInfoHandle : OrtHandle
{
    protected override unsafe void Release(IntPtr pointer) => OrtApi.Instance.ReleaseMemoryInfo(pointer);
}

/// <summary><c>OrtTypeInfo*</c>.</summary>
public sealed class OrtTypeInfoHandle : OrtHandle
{
    protected override unsafe void Release(IntPtr pointer) => OrtApi.Instance.ReleaseTypeInfo(pointer);
}

/// <summary><c>OrtTensorTypeAndShapeInfo*</c> obtained from a value (the one cast from a type info is not owned).</summary>
public sealed class OrtTensorTypeAndShapeInfoHandle : OrtHandle
{
    protected override unsafe void Release(IntPtr pointer) => OrtApi.Instance.ReleaseTensorTypeAndShapeInfo(pointer);
}

/// <summary>
/// <c>OrtValue*</c>. When the value wraps managed memory (<c>CreateTensorWithDataAsOrtValue</c> does not copy),
/// the handle also owns the pin on that memory and drops it only after <c>ReleaseValue</c>, so ORT never sees
/// memory the GC has moved.
/// </summary>
public sealed class OrtValueHandle : OrtHandle
{
    private MemoryHandle _pin;
    private bool _pinned;

    internal void AttachPin(MemoryHandle pin)
    {
        _pin = pin;
        _pinned = true;
    }

    protected override unsafe void Release(IntPtr pointer)
    {
        try
        {
            OrtApi.Instance.ReleaseValue(pointer);
        }
        finally
        {
            if (_pinned) _pin.Dispose();
            _pinned = false;
        }
    }
}
