using System.Runtime.InteropServices;
using System.Text;
using EdgeQuant.Runtimes.OnnxRuntime.Native;

namespace EdgeQuant.Runtimes.OnnxRuntime;

/// <summary>
/// An ONNX Runtime value (<c>OrtValue*</c>): a tensor over pinned managed memory, a tensor ORT allocated (run
/// outputs, strings), or any other value ORT returned. Dispose it; the native value and any pin go together.
/// </summary>
public sealed unsafe class OrtValue : IDisposable
{
    private OrtElementType? _elementType;
    private long[]? _shape;

    internal OrtValue(OrtValueHandle handle) => Handle = handle;

    /// <summary>The owned native handle.</summary>
    public OrtValueHandle Handle { get; }

    /// <summary>
    /// A tensor viewing <paramref name="data"/> without copying: ORT reads (and for in-place ops may write) that
    /// memory. The memory stays pinned until this value is disposed or finalized.
    /// </summary>
    /// <param name="data">Exactly <c>product(shape)</c> elements.</param>
    /// <param name="shape">Dimensions (none for a scalar); each &gt;= 0.</param>
    /// <param name="elementType">The ONNX type when <typeparamref name="T"/> alone is ambiguous (BFloat16 over ushort, Float8 over byte).</param>
    public static OrtValue CreateTensor<T>(Memory<T> data, ReadOnlySpan<long> shape, OrtElementType? elementType = null) where T : unmanaged
    {
        var type = elementType ?? OrtElementTypes.Of<T>();
        int size = OrtElementTypes.SizeOf(type);
        if (size != sizeof(T))
            throw new ArgumentException($"{type} elements take {size} bytes, {typeof(T).Name} takes {sizeof(T)}", nameof(elementType));
        long count = ElementCount(shape);
        if (count != data.Length)
            throw new ArgumentException($"shape [{string.Join(",", shape.ToArray())}] holds {count} elements, the buffer {data.Length}", nameof(data));
        if (count == 0) return Allocate(type, shape);

        var api = OrtApi.Instance;
        var memory = OrtEnvironment.CpuMemory;
        var handle = new OrtValueHandle();
        var pin = data.Pin();
        IntPtr value = IntPtr.Zero;
        try
        {
            fixed (long* dims = shape)
            {
                OrtStatus.Check(api.CreateTensorWithDataAsOrtValue(memory.Pointer, pin.Pointer, (nuint)((long)data.Length * sizeof(T)),
                    dims, (nuint)shape.Length, (int)type, &value), "CreateTensorWithDataAsOrtValue");
            }
        }
        catch
        {
            pin.Dispose();
            handle.Dispose();
            throw;
        }
        handle.SetPointer(value);
        handle.AttachPin(pin);
        return new OrtValue(handle) { _elementType = type, _shape = shape.ToArray() };
    }

    /// <inheritdoc cref="CreateTensor{T}(Memory{T}, ReadOnlySpan{long}, OrtElementType?)"/>
    public static OrtValue CreateTensor<T>(T[] data, ReadOnlySpan<long> shape, OrtElementType? elementType = null) where T : unmanaged =>
        CreateTensor(data.AsMemory(), shape, elementType);

    /// <summary>A tensor ORT allocates (contents unspecified), for outputs or zero-sized tensors.</summary>
    public static OrtValue Allocate(OrtElementType type, ReadOnlySpan<long> shape)
    {
        ElementCount(shape);
        var api = OrtApi.Instance;
        var handle = new OrtValueHandle();
        IntPtr value;
        fixed (long* dims = shape)
        {
            OrtStatus.Check(api.CreateTensorAsOrtValue(OrtEnvironment.Allocator, dims, (nuint)shape.Length, (int)type, &value), "CreateTensorAsOrtValue");
        }
        handle.SetPointer(value);
        return new OrtValue(handle) { _elementType = type, _shape = shape.ToArray() };
    }

    /// <summary>A string tensor; ORT copies the strings (UTF-8, no embedded NUL).</summary>
    public static OrtValue CreateStringTensor(IReadOnlyList<string> values, ReadOnlySpan<long> shape)
    {
        long count = ElementCount(shape);
        if (count != values.Count)
            throw new ArgumentException($"shape holds {count} elements, {values.Count} strings given", nameof(values));
        var result = Allocate(OrtElementType.String, shape);
        if (count == 0) return result;
        try
        {
            var encoded = new byte[values.Count][];
            for (int i = 0; i < encoded.Length; i++)
            {
                if (values[i].Contains('\0')) throw new ArgumentException($"string {i} contains NUL, which ORT's C API cannot take", nameof(values));
                encoded[i] = Encoding.UTF8.GetBytes(values[i] + "\0");
            }
            var handles = new GCHandle[encoded.Length];
            var pointers = new IntPtr[encoded.Length];
            try
            {
                for (int i = 0; i < encoded.Length; i++)
                {
                    handles[i] = GCHandle.Alloc(encoded[i], GCHandleType.Pinned);
                    pointers[i] = handles[i].AddrOfPinnedObject();
                }
                fixed (IntPtr* p = pointers)
                    OrtStatus.Check(OrtApi.Instance.FillStringTensor(result.Handle.Pointer, (byte**)p, (nuint)pointers.Length), "FillStringTensor");
            }
            finally
            {
                foreach (var h in handles) if (h.IsAllocated) h.Free();
            }
            return result;
        }
        catch
        {
            result.Dispose();
            throw;
        }
    }

    /// <summary>Tensor, sequence, map, optional, ...</summary>
    public OrtValueKind Kind
    {
        get
        {
            int kind;
            OrtStatus.Check(OrtApi.Instance.GetValueType(Live(), &kind), "GetValueType");
            return (OrtValueKind)kind;
        }
    }

    /// <summary>The element type of a tensor.</summary>
    public OrtElementType ElementType
    {
        get
        {
            if (_elementType is null) ReadTypeAndShape();
            return _elementType!.Value;
        }
    }

    /// <summary>The dimensions of a tensor (empty for a scalar).</summary>
    public IReadOnlyList<long> Shape
    {
        get
        {
            if (_shape is null) ReadTypeAndShape();
            return _shape!;
        }
    }

    /// <summary>Number of elements of a tensor.</summary>
    public long ElementCount()
    {
        long n = 1;
        foreach (long d in Shape) n = checked(n * d);
        return n;
    }

    /// <summary>The tensor's elements, in place (no copy). Valid until the value is disposed.</summary>
    public Span<T> GetTensorData<T>() where T : unmanaged
    {
        var type = ElementType;
        if (OrtElementTypes.SizeOf(type) != sizeof(T))
            throw new InvalidOperationException($"tensor elements are {type} ({OrtElementTypes.SizeOf(type)} bytes), not {typeof(T).Name}");
        long count = ElementCount();
        if (count == 0) return Span<T>.Empty;
        if (count > int.MaxValue) throw new InvalidOperationException($"tensor of {count} elements is too large for a span");
        void* data;
        OrtStatus.Check(OrtApi.Instance.GetTensorMutableData(Live(), &data), "GetTensorMutableData");
        return new Span<T>(data, (int)count);
    }

    /// <summary>The strings of a string tensor (UTF-8 decoded), in row-major order.</summary>
    public string[] GetStrings()
    {
        if (ElementType != OrtElementType.String) throw new InvalidOperationException($"tensor elements are {ElementType}, not strings");
        long count = ElementCount();
        var result = new string[count];
        if (count == 0) return result;
        var api = OrtApi.Instance;
        nuint length;
        OrtStatus.Check(api.GetStringTensorDataLength(Live(), &length), "GetStringTensorDataLength");
        var bytes = new byte[checked((int)length)];
        var offsets = new nuint[count];
        fixed (byte* b = bytes)
        fixed (nuint* o = offsets)
        {
            OrtStatus.Check(api.GetStringTensorContent(Live(), b, length, o, (nuint)count), "GetStringTensorContent");
        }
        for (int i = 0; i < count; i++)
        {
            int start = (int)offsets[i];
            int end = i + 1 < count ? (int)offsets[i + 1] : bytes.Length;
            result[i] = Encoding.UTF8.GetString(bytes, start, end - start);
        }
        return result;
    }

    public void Dispose() => Handle.Dispose();

    private IntPtr Live()
    {
        ObjectDisposedException.ThrowIf(Handle.IsClosed, this);
        return Handle.Pointer;
    }

    private void ReadTypeAndShape()
    {
        var api = OrtApi.Instance;
        if (Kind != OrtValueKind.Tensor) throw new InvalidOperationException($"value is a {Kind}, not a tensor");
        IntPtr info;
        OrtStatus.Check(api.GetTensorTypeAndShape(Live(), &info), "GetTensorTypeAndShape");
        using var owned = new OrtTensorTypeAndShapeInfoHandle();
        owned.SetPointer(info);
        var (type, shape, _) = OrtTypeInfoReader.ReadTensorInfo(info);
        _elementType = type;
        _shape = shape;
    }

    internal static long ElementCount(ReadOnlySpan<long> shape)
    {
        long n = 1;
        foreach (long d in shape)
        {
            if (d < 0) throw new ArgumentException($"dimension {d} is negative", nameof(shape));
            if (d != 0 && n > long.MaxValue / d) throw new ArgumentException($"shape [{string.Join(",", shape.ToArray())}] overflows an element count", nameof(shape));
            n *= d;
        }
        return n;
    }
}
