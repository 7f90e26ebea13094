using System.Runtime.InteropServices;
using EdgeQuant.Core.Errors;
using EdgeQuant.Formats.Onnx.Proto;
using Google.Protobuf;

namespace EdgeQuant.Export.Onnx;

/// <summary>
/// Builds one ONNX graph: nodes, initializers (raw_data, little-endian), graph inputs/outputs with symbolic
/// dimensions, opset imports, metadata_props. Initializers can be streamed to an external data file as they are
/// added (<see cref="UseExternalData"/>), so a model over protobuf's 2 GB limit never exists whole in memory.
/// </summary>
public sealed class OnnxGraphBuilder : IDisposable
{
    /// <summary>The default opset: ORT 1.30 runs it and Debian's onnx 1.12 checker still knows it.</summary>
    public const int DefaultOpset = 17;

    /// <summary>Protobuf refuses messages of 2 GiB and more; keep headroom for the graph itself.</summary>
    public const long InlineLimitBytes = (2L << 30) - (64L << 20);

    // Small initializers stay inline even in external-data mode (as onnx's own converter does): shape
    // constants must be readable by shape inference without opening the data file.
    private const int ExternalMinBytes = 1024;

    // External tensors start on 4 KiB boundaries so a runtime may map them directly.
    private const int ExternalAlignment = 4096;

    private readonly GraphProto _graph;
    // Where Node() appends: the main graph, or the subgraph being built by Subgraph().
    private Google.Protobuf.Collections.RepeatedField<NodeProto> _nodes;
    private readonly Dictionary<string, string> _constants = new(StringComparer.Ordinal);
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);
    private readonly HashSet<string> _nodeNames = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _metadata = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long> _opsets = new(StringComparer.Ordinal);
    private FileStream? _external;
    private string? _externalName;
    private int _auto;

    public OnnxGraphBuilder(string graphName, int opset = DefaultOpset)
    {
        if (opset is < 17 or > 21) throw new ArgumentOutOfRangeException(nameof(opset), opset, "opsets 17..21 are supported");
        _graph = new GraphProto { Name = graphName };
        _nodes = _graph.Node;
        _opsets[""] = opset;
    }

    /// <summary>The default-domain opset.</summary>
    public int Opset => (int)_opsets[""];

    /// <summary>Bytes of initializer data held inline (in the protobuf message).</summary>
    public long InlineBytes { get; private set; }

    /// <summary>Bytes of initializer data written to the external data file.</summary>
    public long ExternalBytes { get; private set; }

    /// <summary>The external data file's name (relative to the model), or null when everything is inline.</summary>
    public string? ExternalDataFile => _externalName;

    /// <summary>
    /// IR version matching an opset, as the onnx release that introduced the opset writes it: 17–18 → 8,
    /// 19–20 → 9, 21 → 10.
    /// </summary>
    public static long IrVersionFor(int opset) => opset switch
    {
        <= 18 => 8,
        <= 20 => 9,
        _ => 10,
    };

    /// <summary>Imports another operator domain (e.g. com.microsoft) at a version.</summary>
    public void ImportDomain(string domain, long version) => _opsets[domain] = version;

    /// <summary>
    /// From now on, initializers of 1 KiB and more go to <paramref name="fileName"/> in <paramref name="folder"/>
    /// (written as they are added, 4 KiB aligned) and the model only references them.
    /// </summary>
    public void UseExternalData(string folder, string fileName)
    {
        if (_external is not null) throw new InvalidOperationException("external data is already in use");
        if (fileName.Contains('/') || fileName.Contains('\\') || fileName is "." or "..")
            throw new ArgumentException($"'{fileName}' must be a plain file name", nameof(fileName));
        _external = new FileStream(Path.Combine(folder, fileName), FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20);
        _externalName = fileName;
    }

    public void Metadata(string key, string value) => _metadata[key] = value;

    /// <summary>A graph input; each dim is a <see cref="long"/> (fixed) or a <see cref="string"/> (symbolic).</summary>
    public void Input(string name, TensorProto.Types.DataType type, params object[] dims) => _graph.Input.Add(ValueInfo(Claim(name), type, dims));

    /// <summary>A graph output: names an existing value; each dim is a <see cref="long"/> or a <see cref="string"/>.</summary>
    public void Output(string name, TensorProto.Types.DataType type, params object[] dims) => _graph.Output.Add(ValueInfo(name, type, dims));

    /// <summary>Adds a node writing <paramref name="outputs"/>; returns the first output's name.</summary>
    public string Node(string opType, IReadOnlyList<string> inputs, IReadOnlyList<string> outputs, string? name = null, string domain = "",
        params AttributeProto[] attributes)
    {
        // ORT refuses two nodes of one name.
        string nodeName = name ?? (outputs.Count > 0 && outputs[0].Length > 0 ? outputs[0] : $"{opType}_{_nodeNames.Count}");
        for (int i = 1; !_nodeNames.Add(nodeName); i++) nodeName = $"{name ?? opType}_{i}";
        var node = new NodeProto { OpType = opType, Name = nodeName, Domain = domain };
        node.Input.AddRange(inputs);
        foreach (var o in outputs) node.Output.Add(o.Length == 0 ? o : Claim(o));
        node.Attribute.AddRange(attributes);
        _nodes.Add(node);
        return outputs.Count > 0 ? outputs[0] : "";
    }

    /// <summary>Adds a single-output node whose output is named after <paramref name="name"/> (or generated); returns it.</summary>
    public string Op(string opType, string? name, IReadOnlyList<string> inputs, params AttributeProto[] attributes)
    {
        string output = Fresh(name is null ? opType : name + "/" + opType);
        return Node(opType, inputs, [output], output, "", attributes);
    }

    /// <summary>A float initializer in row-major order.</summary>
    public string Initializer(string name, ReadOnlySpan<float> data, params long[] dims) =>
        Initializer(name, TensorProto.Types.DataType.Float, MemoryMarshal.AsBytes(data), dims);

    /// <summary>An int64 initializer.</summary>
    public string Initializer(string name, ReadOnlySpan<long> data, params long[] dims) =>
        Initializer(name, TensorProto.Types.DataType.Int64, MemoryMarshal.AsBytes(data), dims);

    /// <summary>An initializer from little-endian element bytes (checked against the dims).</summary>
    public string Initializer(string name, TensorProto.Types.DataType type, ReadOnlySpan<byte> raw, params long[] dims)
    {
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("ONNX raw_data is little-endian; this writer assumes a little-endian host");
        int size = Formats.Onnx.OnnxTensorData.ElementSize(type);
        long count = 1;
        foreach (long d in dims)
        {
            if (d < 0) throw new ArgumentException($"initializer '{name}': negative dimension {d}");
            count = checked(count * d);
        }
        if (size == 0 || checked(count * size) != raw.Length)
            throw new InternalFailureException($"initializer '{name}': {raw.Length} bytes do not hold [{string.Join(",", dims)}] of {type}");

        var tensor = new TensorProto { Name = Claim(name), DataType = (int)type };
        tensor.Dims.AddRange(dims);
        if (_external is not null && raw.Length >= ExternalMinBytes)
        {
            long pad = (ExternalAlignment - _external.Position % ExternalAlignment) % ExternalAlignment;
            if (pad > 0) _external.Write(new byte[pad]);
            long offset = _external.Position;
            _external.Write(raw);
            tensor.DataLocation = TensorProto.Types.DataLocation.External;
            tensor.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = _externalName });
            tensor.ExternalData.Add(new StringStringEntryProto { Key = "offset", Value = offset.ToString(System.Globalization.CultureInfo.InvariantCulture) });
            tensor.ExternalData.Add(new StringStringEntryProto { Key = "length", Value = raw.Length.ToString(System.Globalization.CultureInfo.InvariantCulture) });
            ExternalBytes += raw.Length;
        }
        else
        {
            if (InlineBytes + raw.Length > InlineLimitBytes)
                throw new InternalFailureException($"initializer '{name}' would take the inline data past {InlineLimitBytes} bytes; use external data");
            tensor.RawData = ByteString.CopyFrom(raw);
            InlineBytes += raw.Length;
        }
        _graph.Initializer.Add(tensor);
        return tensor.Name;
    }

    /// <summary>
    /// The values of a float initializer written inline, e.g. a bias a quantized lowering re-encodes as INT32; false
    /// when there is none of that name or its data went to the external file.
    /// </summary>
    public bool TryReadInlineFloats(string name, out float[] data)
    {
        data = [];
        var t = _graph.Initializer.LastOrDefault(i => i.Name == name);
        if (t is null || t.DataType != (int)TensorProto.Types.DataType.Float || t.DataLocation == TensorProto.Types.DataLocation.External) return false;
        data = MemoryMarshal.Cast<byte, float>(t.RawData.Span).ToArray();
        return true;
    }

    /// <summary>An int64 constant (1-D, or a scalar when <paramref name="scalar"/>), shared by every user of the same values.</summary>
    public string Int64s(long[] values, bool scalar = false)
    {
        string key = (scalar ? "s:" : "v:") + string.Join(",", values);
        if (_constants.TryGetValue(key, out var existing)) return existing;
        if (scalar && values.Length != 1) throw new ArgumentException("a scalar holds one value");
        var name = Initializer(Fresh("const_i64"), values, scalar ? [] : [values.Length]);
        _constants[key] = name;
        return name;
    }

    /// <summary>A float constant (1-D, or a scalar when <paramref name="scalar"/>), shared by every user of the same values.</summary>
    public string Floats(float[] values, bool scalar = false)
    {
        string key = (scalar ? "fs:" : "fv:") + string.Join(",", values.Select(v => BitConverter.SingleToInt32Bits(v)));
        if (_constants.TryGetValue(key, out var existing)) return existing;
        if (scalar && values.Length != 1) throw new ArgumentException("a scalar holds one value");
        var name = Initializer(Fresh("const_f32"), values, scalar ? [] : [values.Length]);
        _constants[key] = name;
        return name;
    }

    public string Scalar(float value) => Floats([value], scalar: true);

    public string Scalar(long value) => Int64s([value], scalar: true);

    /// <summary>A value name not used yet, derived from <paramref name="stem"/>.</summary>
    public string Fresh(string stem)
    {
        string name = stem;
        while (_names.Contains(name)) name = $"{stem}_{++_auto}";
        return name;
    }

    /// <summary>
    /// A subgraph (an <c>If</c> branch): the nodes <paramref name="body"/> adds go into it, and it outputs the values
    /// body returns (float tensors, shapes left to inference). Value names stay unique across the model, and
    /// constants and initializers stay in the main graph, which subgraphs see as outer scope.
    /// </summary>
    public GraphProto Subgraph(string name, Func<IReadOnlyList<string>> body)
    {
        if (!ReferenceEquals(_nodes, _graph.Node)) throw new InvalidOperationException("subgraphs do not nest here");
        var g = new GraphProto { Name = name };
        _nodes = g.Node;
        try
        {
            foreach (var output in body())
                g.Output.Add(new ValueInfoProto { Name = output, Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Float } } });
        }
        finally
        {
            _nodes = _graph.Node;
        }
        return g;
    }

    public static AttributeProto Attr(string name, GraphProto graph) => new() { Name = name, Type = AttributeProto.Types.AttributeType.Graph, G = graph };

    public static AttributeProto Attr(string name, long value) => new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };

    public static AttributeProto Attr(string name, float value) => new() { Name = name, Type = AttributeProto.Types.AttributeType.Float, F = value };

    public static AttributeProto Attr(string name, string value) => new() { Name = name, Type = AttributeProto.Types.AttributeType.String, S = ByteString.CopyFromUtf8(value) };

    public static AttributeProto Attr(string name, long[] values)
    {
        var a = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        a.Ints.AddRange(values);
        return a;
    }

    /// <summary>The finished model. The external data file (if any) is flushed and closed.</summary>
    public ModelProto Build(string producerName, string producerVersion, string docString = "")
    {
        CloseExternal();
        var model = new ModelProto
        {
            IrVersion = IrVersionFor(Opset),
            ProducerName = producerName,
            ProducerVersion = producerVersion,
            DocString = docString,
            Graph = _graph,
        };
        foreach (var (domain, version) in _opsets) model.OpsetImport.Add(new OperatorSetIdProto { Domain = domain, Version = version });
        foreach (var (k, v) in _metadata) model.MetadataProps.Add(new StringStringEntryProto { Key = k, Value = v });
        return model;
    }

    /// <summary>Writes <paramref name="model"/> to <paramref name="path"/> (the caller renames the folder into place).</summary>
    public static void Save(ModelProto model, string path)
    {
        using var f = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20);
        model.WriteTo(f);
    }

    public void Dispose() => CloseExternal();

    private void CloseExternal()
    {
        _external?.Flush(flushToDisk: false);
        _external?.Dispose();
        _external = null;
    }

    private string Claim(string name)
    {
        if (string.IsNullOrEmpty(name)) throw new ArgumentException("value names must not be empty");
        if (!_names.Add(name)) throw new InternalFailureException($"ONNX value '{name}' is defined twice");
        return name;
    }

    private static ValueInfoProto ValueInfo(string name, TensorProto.Types.DataType type, object[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (var d in dims)
        {
            shape.Dim.Add(d switch
            {
                long v => new TensorShapeProto.Types.Dimension { DimValue = v },
                int v => new TensorShapeProto.Types.Dimension { DimValue = v },
                string s => new TensorShapeProto.Types.Dimension { DimParam = s },
                _ => throw new ArgumentException($"dimension {d} of '{name}' is neither a number nor a symbol"),
            });
        }
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)type, Shape = shape } },
        };
    }
}
