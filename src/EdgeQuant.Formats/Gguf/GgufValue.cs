using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;

namespace EdgeQuant.Formats.Gguf;

/// <summary>
/// One GGUF metadata value: a scalar, a string, or an array. <see cref="Value"/> holds the CLR value: byte, sbyte,
/// ushort, short, uint, int, float, bool, string, ulong, long or double; an array holds a typed CLR array of its
/// element type (<c>uint[]</c>, <c>string[]</c>, …), and an array of arrays holds <c>GgufValue[]</c> whose items are
/// arrays themselves. The GGUF type is kept, so a value read and written again keeps its exact encoding.
/// </summary>
public sealed class GgufValue : IEquatable<GgufValue>
{
    private GgufValue(GgufValueType type, object value, GgufValueType elementType = GgufValueType.UInt8)
    {
        Type = type;
        Value = value;
        ElementType = elementType;
    }

    public GgufValueType Type { get; }

    /// <summary>For arrays, the type of every element; meaningless otherwise.</summary>
    public GgufValueType ElementType { get; }

    public object Value { get; }

    public bool IsArray => Type == GgufValueType.Array;

    /// <summary>Element count of an array value.</summary>
    public int ArrayLength => IsArray ? ((Array)Value).Length : throw new InvalidOperationException($"a {Type} value is not an array");

    public static GgufValue From(byte v) => new(GgufValueType.UInt8, v);
    public static GgufValue From(sbyte v) => new(GgufValueType.Int8, v);
    public static GgufValue From(ushort v) => new(GgufValueType.UInt16, v);
    public static GgufValue From(short v) => new(GgufValueType.Int16, v);
    public static GgufValue From(uint v) => new(GgufValueType.UInt32, v);
    public static GgufValue From(int v) => new(GgufValueType.Int32, v);
    public static GgufValue From(float v) => new(GgufValueType.Float32, v);
    public static GgufValue From(bool v) => new(GgufValueType.Bool, v);
    public static GgufValue From(string v) => new(GgufValueType.String, v ?? throw new ArgumentNullException(nameof(v)));
    public static GgufValue From(ulong v) => new(GgufValueType.UInt64, v);
    public static GgufValue From(long v) => new(GgufValueType.Int64, v);
    public static GgufValue From(double v) => new(GgufValueType.Float64, v);

    public static GgufValue Array(byte[] v) => new(GgufValueType.Array, v, GgufValueType.UInt8);
    public static GgufValue Array(sbyte[] v) => new(GgufValueType.Array, v, GgufValueType.Int8);
    public static GgufValue Array(ushort[] v) => new(GgufValueType.Array, v, GgufValueType.UInt16);
    public static GgufValue Array(short[] v) => new(GgufValueType.Array, v, GgufValueType.Int16);
    public static GgufValue Array(uint[] v) => new(GgufValueType.Array, v, GgufValueType.UInt32);
    public static GgufValue Array(int[] v) => new(GgufValueType.Array, v, GgufValueType.Int32);
    public static GgufValue Array(float[] v) => new(GgufValueType.Array, v, GgufValueType.Float32);
    public static GgufValue Array(bool[] v) => new(GgufValueType.Array, v, GgufValueType.Bool);
    public static GgufValue Array(ulong[] v) => new(GgufValueType.Array, v, GgufValueType.UInt64);
    public static GgufValue Array(long[] v) => new(GgufValueType.Array, v, GgufValueType.Int64);
    public static GgufValue Array(double[] v) => new(GgufValueType.Array, v, GgufValueType.Float64);

    public static GgufValue Array(string[] v)
    {
        ArgumentNullException.ThrowIfNull(v);
        foreach (var s in v) ArgumentNullException.ThrowIfNull(s, nameof(v));
        return new(GgufValueType.Array, v, GgufValueType.String);
    }

    public static GgufValue Array(IEnumerable<string> v) => Array(v.ToArray());

    /// <summary>An array whose elements are arrays (each with its own element type).</summary>
    public static GgufValue ArrayOfArrays(GgufValue[] arrays)
    {
        ArgumentNullException.ThrowIfNull(arrays);
        foreach (var a in arrays)
            if (a is null || !a.IsArray) throw new ArgumentException("every element of an array of arrays must be an array", nameof(arrays));
        return new(GgufValueType.Array, arrays, GgufValueType.Array);
    }

    public static implicit operator GgufValue(byte v) => From(v);
    public static implicit operator GgufValue(sbyte v) => From(v);
    public static implicit operator GgufValue(ushort v) => From(v);
    public static implicit operator GgufValue(short v) => From(v);
    public static implicit operator GgufValue(uint v) => From(v);
    public static implicit operator GgufValue(int v) => From(v);
    public static implicit operator GgufValue(float v) => From(v);
    public static implicit operator GgufValue(bool v) => From(v);
    public static implicit operator GgufValue(string v) => From(v);
    public static implicit operator GgufValue(ulong v) => From(v);
    public static implicit operator GgufValue(long v) => From(v);
    public static implicit operator GgufValue(double v) => From(v);
    public static implicit operator GgufValue(uint[] v) => Array(v);
    public static implicit operator GgufValue(int[] v) => Array(v);
    public static implicit operator GgufValue(float[] v) => Array(v);
    public static implicit operator GgufValue(string[] v) => Array(v);

    /// <summary>The value as a signed 64-bit integer when it is an integer of any width that fits.</summary>
    public bool TryGetInt64(out long value)
    {
        switch (Value)
        {
            case byte b: value = b; return true;
            case sbyte sb: value = sb; return true;
            case ushort us: value = us; return true;
            case short s: value = s; return true;
            case uint ui: value = ui; return true;
            case int i: value = i; return true;
            case long l: value = l; return true;
            case ulong ul when ul <= long.MaxValue: value = (long)ul; return true;
            default: value = 0; return false;
        }
    }

    /// <summary>The value as a double when it is a number (integer or float).</summary>
    public bool TryGetDouble(out double value)
    {
        switch (Value)
        {
            case float f: value = f; return true;
            case double d: value = d; return true;
            case ulong ul: value = ul; return true;
            default:
                bool ok = TryGetInt64(out long l);
                value = l;
                return ok;
        }
    }

    public string? AsString() => Value as string;

    /// <summary>The typed CLR array of an array value whose elements are <typeparamref name="T"/>, else null.</summary>
    public T[]? AsArray<T>() => IsArray ? Value as T[] : null;

    /// <summary>Elements of an integer array widened to long, or null when this is not an array of integers (or a u64 overflows).</summary>
    public long[]? AsInt64Array()
    {
        if (!IsArray) return null;
        switch (Value)
        {
            case byte[] a: return System.Array.ConvertAll(a, x => (long)x);
            case sbyte[] a: return System.Array.ConvertAll(a, x => (long)x);
            case ushort[] a: return System.Array.ConvertAll(a, x => (long)x);
            case short[] a: return System.Array.ConvertAll(a, x => (long)x);
            case uint[] a: return System.Array.ConvertAll(a, x => (long)x);
            case int[] a: return System.Array.ConvertAll(a, x => (long)x);
            case long[] a: return (long[])a.Clone();
            case ulong[] a when a.All(x => x <= long.MaxValue): return System.Array.ConvertAll(a, x => (long)x);
            default: return null;
        }
    }

    /// <summary>Elements of a numeric array as float (f32 kept exactly), or null when this is not a numeric array.</summary>
    public float[]? AsSingleArray()
    {
        if (!IsArray) return null;
        if (Value is float[] f) return (float[])f.Clone();
        if (Value is double[] d) return System.Array.ConvertAll(d, x => (float)x);
        return AsInt64Array() is { } l ? System.Array.ConvertAll(l, x => (float)x) : null;
    }

    public bool Equals(GgufValue? other)
    {
        if (other is null) return false;
        if (ReferenceEquals(this, other)) return true;
        if (Type != other.Type) return false;
        if (!IsArray) return ScalarEquals(Value, other.Value);
        if (ElementType != other.ElementType) return false;
        var a = (Array)Value;
        var b = (Array)other.Value;
        if (a.Length != b.Length) return false;
        switch (Value)
        {
            case string[] sa:
                return sa.AsSpan().SequenceEqual((string[])other.Value);
            case GgufValue[] va:
                var vb = (GgufValue[])other.Value;
                for (int i = 0; i < va.Length; i++) if (!va[i].Equals(vb[i])) return false;
                return true;
            case bool[] ba:
                return ba.AsSpan().SequenceEqual((bool[])other.Value);
            default:
                // Numeric arrays compare by bytes so NaN payloads count as equal to themselves.
                return RawBytes(a).SequenceEqual(RawBytes(b));
        }
    }

    public override bool Equals(object? obj) => obj is GgufValue v && Equals(v);

    public override int GetHashCode() => IsArray ? HashCode.Combine(Type, ElementType, ((Array)Value).Length) : HashCode.Combine(Type, Value);

    /// <summary>A short display form: scalars as they are, strings quoted, arrays as their type, length and first items.</summary>
    public override string ToString()
    {
        if (!IsArray) return Scalar(Value);
        var a = (Array)Value;
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"[{ElementType} x {a.Length}]");
        int shown = Math.Min(a.Length, 4);
        if (shown > 0)
        {
            sb.Append(' ');
            for (int i = 0; i < shown; i++)
            {
                if (i > 0) sb.Append(", ");
                sb.Append(Scalar(a.GetValue(i)!));
            }
            if (a.Length > shown) sb.Append(", …");
        }
        return sb.ToString();
    }

    private static string Scalar(object v) => v switch
    {
        string s => "\"" + (s.Length > 60 ? s[..60] + "…" : s).Replace("\n", "\\n", StringComparison.Ordinal) + "\"",
        float f => f.ToString("R", CultureInfo.InvariantCulture),
        double d => d.ToString("R", CultureInfo.InvariantCulture),
        bool b => b ? "true" : "false",
        IFormattable x => x.ToString(null, CultureInfo.InvariantCulture),
        _ => v.ToString() ?? "",
    };

    private static bool ScalarEquals(object a, object b) => (a, b) switch
    {
        (float x, float y) => BitConverter.SingleToInt32Bits(x) == BitConverter.SingleToInt32Bits(y),
        (double x, double y) => BitConverter.DoubleToInt64Bits(x) == BitConverter.DoubleToInt64Bits(y),
        _ => a.Equals(b),
    };

    private static ReadOnlySpan<byte> RawBytes(Array a) => a switch
    {
        byte[] x => x,
        sbyte[] x => MemoryMarshal.AsBytes(x.AsSpan()),
        ushort[] x => MemoryMarshal.AsBytes(x.AsSpan()),
        short[] x => MemoryMarshal.AsBytes(x.AsSpan()),
        uint[] x => MemoryMarshal.AsBytes(x.AsSpan()),
        int[] x => MemoryMarshal.AsBytes(x.AsSpan()),
        float[] x => MemoryMarshal.AsBytes(x.AsSpan()),
        ulong[] x => MemoryMarshal.AsBytes(x.AsSpan()),
        long[] x => MemoryMarshal.AsBytes(x.AsSpan()),
        double[] x => MemoryMarshal.AsBytes(x.AsSpan()),
        _ => throw new InvalidOperationException($"not a numeric array: {a.GetType()}"),
    };

    /// <summary>Bytes one element of a fixed-size type takes, or 0 for strings and arrays.</summary>
    public static int FixedSize(GgufValueType type) => type switch
    {
        GgufValueType.UInt8 or GgufValueType.Int8 or GgufValueType.Bool => 1,
        GgufValueType.UInt16 or GgufValueType.Int16 => 2,
        GgufValueType.UInt32 or GgufValueType.Int32 or GgufValueType.Float32 => 4,
        GgufValueType.UInt64 or GgufValueType.Int64 or GgufValueType.Float64 => 8,
        _ => 0,
    };

    /// <summary>The fewest bytes one value of <paramref name="type"/> takes in a file (a string is at least its 8-byte length).</summary>
    public static int MinEncodedSize(GgufValueType type) => type switch
    {
        GgufValueType.String => 8,
        GgufValueType.Array => 12,
        _ => FixedSize(type),
    };

    public static bool IsDefined(uint type) => type <= (uint)GgufValueType.Float64;
}
