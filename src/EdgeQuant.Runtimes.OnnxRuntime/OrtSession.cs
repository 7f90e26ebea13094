using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using EdgeQuant.Core.Errors;
using EdgeQuant.Runtimes.OnnxRuntime.Native;

namespace EdgeQuant.Runtimes.OnnxRuntime;

/// <summary>An ONNX model loaded in ONNX Runtime (<c>OrtSession*</c>), with its input/output metadata and timed runs.</summary>
public sealed unsafe class OrtSession : IDisposable
{
    private readonly OrtSessionHandle _handle;
    private readonly string[] _outputNames;
    private readonly Dictionary<string, byte[]> _names = new(StringComparer.Ordinal);
    private long _lastRunTicks;

    private OrtSession(OrtSessionHandle handle, string source)
    {
        _handle = handle;
        Source = source;
        Inputs = ReadNodes(input: true);
        Outputs = ReadNodes(input: false);
        _outputNames = Outputs.Select(o => o.Name).ToArray();
    }

    /// <summary>The model file, or "(bytes)" for a model loaded from memory.</summary>
    public string Source { get; }

    public IReadOnlyList<OrtNodeInfo> Inputs { get; }

    public IReadOnlyList<OrtNodeInfo> Outputs { get; }

    /// <summary>Wall time of the native <c>Run</c> call of the most recent <see cref="Run"/>.</summary>
    public TimeSpan LastRunTime => Stopwatch.GetElapsedTime(0, Interlocked.Read(ref _lastRunTicks));

    /// <summary>The native handle (for advanced callers; do not release it).</summary>
    public OrtSessionHandle Handle => _handle;

    /// <summary>Loads a model file. A missing or malformed file is reported as <see cref="BadInputException"/>/<see cref="OrtException"/> with exit code 2.</summary>
    public static OrtSession FromFile(string path, OrtSessionSettings? settings = null)
    {
        var full = Path.GetFullPath(path);
        if (!File.Exists(full)) throw new BadInputException($"{full}: ONNX model file not found");
        byte[] pathUtf8 = Utf8Z(full);
        return Create(settings, full, (api, env, options, outSession) =>
        {
            fixed (byte* p = pathUtf8)
                OrtStatus.Check(api.CreateSession(env, p, options, outSession), "CreateSession");
        });
    }

    /// <summary>Loads a model from its serialized bytes (ORT parses them during the call; the buffer is not kept).</summary>
    public static OrtSession FromBytes(ReadOnlySpan<byte> model, OrtSessionSettings? settings = null)
    {
        if (model.IsEmpty) throw new BadInputException("(bytes): ONNX model is empty");
        fixed (byte* data = model)
        {
            var pointer = (IntPtr)data;
            var length = (nuint)model.Length;
            return Create(settings, "(bytes)", (api, env, options, outSession) =>
                OrtStatus.Check(api.CreateSessionFromArray(env, (void*)pointer, length, options, outSession), "CreateSessionFromArray"));
        }
    }

    private delegate void CreateCall(OrtApi api, IntPtr env, IntPtr options, IntPtr* outSession);

    private static OrtSession Create(OrtSessionSettings? settings, string source, CreateCall create)
    {
        var api = OrtApi.Instance;
        var env = OrtEnvironment.Env;
        using var options = CreateOptions(api, settings ?? new OrtSessionSettings());
        var handle = new OrtSessionHandle();
        bool envRef = false, optionsRef = false;
        try
        {
            env.DangerousAddRef(ref envRef);
            options.DangerousAddRef(ref optionsRef);
            IntPtr session;
            create(api, env.DangerousGetHandle(), options.DangerousGetHandle(), &session);
            handle.SetPointer(session);
            handle.KeepAlive(env);
            return new OrtSession(handle, source);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
        finally
        {
            if (optionsRef) options.DangerousRelease();
            if (envRef) env.DangerousRelease();
        }
    }

    private static OrtSessionOptionsHandle CreateOptions(OrtApi api, OrtSessionSettings s)
    {
        if (s.IntraOpThreads < 0 || s.InterOpThreads < 0) throw new ArgumentException("thread counts must be >= 0 (0: ORT's choice)");
        var options = new OrtSessionOptionsHandle();
        try
        {
            IntPtr p;
            OrtStatus.Check(api.CreateSessionOptions(&p), "CreateSessionOptions");
            options.SetPointer(p);
            OrtStatus.Check(api.SetSessionLogSeverityLevel(p, (int)s.LogSeverity), "SetSessionLogSeverityLevel");
            OrtStatus.Check(api.SetSessionGraphOptimizationLevel(p, (int)s.OptimizationLevel), "SetSessionGraphOptimizationLevel");
            if (s.IntraOpThreads > 0) OrtStatus.Check(api.SetIntraOpNumThreads(p, s.IntraOpThreads), "SetIntraOpNumThreads");
            if (s.InterOpThreads > 0) OrtStatus.Check(api.SetInterOpNumThreads(p, s.InterOpThreads), "SetInterOpNumThreads");
            if (s.MemoryPattern is { } pattern)
                OrtStatus.Check(pattern ? api.EnableMemPattern(p) : api.DisableMemPattern(p), "EnableMemPattern/DisableMemPattern");
            if (s.CpuArena is { } arena)
                OrtStatus.Check(arena ? api.EnableCpuMemArena(p) : api.DisableCpuMemArena(p), "EnableCpuMemArena/DisableCpuMemArena");
            if (s.OptimizedModelPath is { } optimized)
            {
                fixed (byte* path = Utf8Z(Path.GetFullPath(optimized)))
                    OrtStatus.Check(api.SetOptimizedModelFilePath(p, path), "SetOptimizedModelFilePath");
            }
            if (s.ProfilePrefix is { } profile)
            {
                fixed (byte* prefix = Utf8Z(Path.GetFullPath(profile)))
                    OrtStatus.Check(api.EnableProfiling(p, prefix), "EnableProfiling");
            }
            return options;
        }
        catch
        {
            options.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Runs the model. Every input value stays referenced for the duration of the call; the outputs are new
    /// values owned by the returned result (dispose it). <paramref name="outputNames"/> null means all outputs.
    /// </summary>
    public OrtRunResult Run(IReadOnlyList<KeyValuePair<string, OrtValue>> inputs, IReadOnlyList<string>? outputNames = null)
    {
        var names = outputNames?.ToArray() ?? _outputNames;
        if (names.Length == 0) throw new ArgumentException("no outputs requested", nameof(outputNames));
        // A fresh zeroed array every call: ORT treats non-NULL entries as caller-preallocated outputs.
        var outValues = new IntPtr[names.Length];
        long elapsed = RunCore(inputs, names, outValues, preallocated: null);
        var values = new OrtValue[names.Length];
        for (int i = 0; i < values.Length; i++)
        {
            var h = new OrtValueHandle();
            h.SetPointer(outValues[i]);
            values[i] = new OrtValue(h);
        }
        return new OrtRunResult(names, values, Stopwatch.GetElapsedTime(0, elapsed));
    }

    /// <summary>
    /// Runs the model writing into caller-made output tensors (for example over pinned managed arrays from
    /// <see cref="OrtValue.CreateTensor{T}(T[], ReadOnlySpan{long}, OrtElementType?)"/>); each must have the exact
    /// type and shape the model produces, or ORT fails the run. Returns the wall time of the native call.
    /// </summary>
    public TimeSpan RunInto(IReadOnlyList<KeyValuePair<string, OrtValue>> inputs, IReadOnlyList<KeyValuePair<string, OrtValue>> outputs)
    {
        if (outputs.Count == 0) throw new ArgumentException("no outputs given", nameof(outputs));
        var names = outputs.Select(o => o.Key).ToArray();
        var outValues = new IntPtr[names.Length];
        return Stopwatch.GetElapsedTime(0, RunCore(inputs, names, outValues, outputs.Select(o => o.Value).ToArray()));
    }

    /// <summary>The native Run: references every handle involved, pins every name, converts the status once.</summary>
    private long RunCore(IReadOnlyList<KeyValuePair<string, OrtValue>> inputs, string[] outputNames, IntPtr[] outValues, OrtValue[]? preallocated)
    {
        var api = OrtApi.Instance;
        int nIn = inputs.Count, nOut = outputNames.Length;
        var inValues = new IntPtr[nIn];
        var inNamePtrs = new IntPtr[nIn];
        var outNamePtrs = new IntPtr[nOut];
        var added = new bool[nIn];
        var outAdded = new bool[nOut];
        bool sessionRef = false;
        long elapsed;
        try
        {
            _handle.DangerousAddRef(ref sessionRef);
            for (int i = 0; i < nIn; i++)
            {
                var h = inputs[i].Value.Handle;
                h.DangerousAddRef(ref added[i]);
                inValues[i] = h.DangerousGetHandle();
                inNamePtrs[i] = NamePointer(inputs[i].Key);
            }
            for (int i = 0; i < nOut; i++)
            {
                outNamePtrs[i] = NamePointer(outputNames[i]);
                if (preallocated is not null)
                {
                    var h = preallocated[i].Handle;
                    h.DangerousAddRef(ref outAdded[i]);
                    outValues[i] = h.DangerousGetHandle();
                }
            }
            IntPtr status;
            fixed (IntPtr* pInNames = inNamePtrs)
            fixed (IntPtr* pInValues = inValues)
            fixed (IntPtr* pOutNames = outNamePtrs)
            fixed (IntPtr* pOutValues = outValues)
            {
                long start = Stopwatch.GetTimestamp();
                status = api.Run(_handle.DangerousGetHandle(), IntPtr.Zero, (byte**)pInNames, pInValues, (nuint)nIn,
                    (byte**)pOutNames, (nuint)nOut, pOutValues);
                elapsed = Stopwatch.GetTimestamp() - start;
            }
            if (status != IntPtr.Zero)
            {
                // Values ORT created before failing are ours to free; caller-made outputs stay the caller's.
                if (preallocated is null)
                    foreach (var v in outValues) if (v != IntPtr.Zero) api.ReleaseValue(v);
                OrtStatus.Check(status, "Run");
            }
        }
        finally
        {
            for (int i = 0; i < nIn; i++) if (added[i]) inputs[i].Value.Handle.DangerousRelease();
            for (int i = 0; i < nOut; i++) if (outAdded[i]) preallocated![i].Handle.DangerousRelease();
            if (sessionRef) _handle.DangerousRelease();
        }
        Interlocked.Exchange(ref _lastRunTicks, elapsed);
        return elapsed;
    }

    /// <summary>
    /// A NUL-terminated UTF-8 copy of a name on the pinned object heap, made once per distinct name and kept for
    /// the session's life (names are few: the model's inputs and outputs, plus any wrong ones a caller tries). The
    /// dictionary keeps each array reachable, so the pointer stays valid during the native call.
    /// </summary>
    private IntPtr NamePointer(string name)
    {
        lock (_names)
        {
            if (!_names.TryGetValue(name, out var bytes))
            {
                var utf8 = Utf8Z(name);
                bytes = GC.AllocateArray<byte>(utf8.Length, pinned: true);
                utf8.CopyTo(bytes, 0);
                _names[name] = bytes;
            }
            return (IntPtr)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(bytes));
        }
    }

    /// <summary>Runs with inputs given as (name, value) pairs.</summary>
    public OrtRunResult Run(params (string Name, OrtValue Value)[] inputs) =>
        Run(inputs.Select(i => KeyValuePair.Create(i.Name, i.Value)).ToArray());

    public void Dispose() => _handle.Dispose();

    private OrtNodeInfo[] ReadNodes(bool input)
    {
        var api = OrtApi.Instance;
        var session = _handle.Pointer;
        nuint count;
        OrtStatus.Check(input ? api.SessionGetInputCount(session, &count) : api.SessionGetOutputCount(session, &count),
            input ? "SessionGetInputCount" : "SessionGetOutputCount");
        var nodes = new OrtNodeInfo[(int)count];
        var allocator = OrtEnvironment.Allocator;
        for (nuint i = 0; i < count; i++)
        {
            byte* namePtr;
            OrtStatus.Check(input ? api.SessionGetInputName(session, i, allocator, &namePtr) : api.SessionGetOutputName(session, i, allocator, &namePtr),
                input ? "SessionGetInputName" : "SessionGetOutputName");
            string name;
            try
            {
                name = Marshal.PtrToStringUTF8((IntPtr)namePtr) ?? "";
            }
            finally
            {
                OrtStatus.Check(api.AllocatorFree(allocator, namePtr), "AllocatorFree");
            }
            IntPtr typeInfo;
            OrtStatus.Check(input ? api.SessionGetInputTypeInfo(session, i, &typeInfo) : api.SessionGetOutputTypeInfo(session, i, &typeInfo),
                input ? "SessionGetInputTypeInfo" : "SessionGetOutputTypeInfo");
            nodes[(int)i] = OrtTypeInfoReader.ReadNodeInfo(name, typeInfo);
        }
        return nodes;
    }

    internal static byte[] Utf8Z(string s)
    {
        if (s.Contains('\0')) throw new ArgumentException($"name '{s.Replace("\0", "\\0")}' contains NUL");
        return Encoding.UTF8.GetBytes(s + "\0");
    }
}

/// <summary>The outputs of one <see cref="OrtSession.Run"/>, owned by this object: dispose it to release them.</summary>
public sealed class OrtRunResult : IReadOnlyList<OrtValue>, IDisposable
{
    private readonly string[] _names;
    private readonly OrtValue[] _values;

    internal OrtRunResult(string[] names, OrtValue[] values, TimeSpan elapsed)
    {
        _names = names;
        _values = values;
        Elapsed = elapsed;
    }

    /// <summary>Wall time of the native <c>Run</c> call.</summary>
    public TimeSpan Elapsed { get; }

    public IReadOnlyList<string> Names => _names;

    public int Count => _values.Length;

    public OrtValue this[int index] => _values[index];

    /// <summary>The output of that name.</summary>
    public OrtValue this[string name]
    {
        get
        {
            int i = Array.IndexOf(_names, name);
            if (i < 0) throw new KeyNotFoundException($"no output '{name}' (outputs: {string.Join(", ", _names)})");
            return _values[i];
        }
    }

    public IEnumerator<OrtValue> GetEnumerator() => ((IEnumerable<OrtValue>)_values).GetEnumerator();

    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();

    public void Dispose()
    {
        foreach (var v in _values) v.Dispose();
    }
}
