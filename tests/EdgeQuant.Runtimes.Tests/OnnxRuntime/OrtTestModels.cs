using EdgeQuant.Formats.Onnx.Proto;
using Google.Protobuf;

namespace EdgeQuant.Runtimes.Tests.OnnxRuntime;

/// <summary>Small ONNX models built in the test with the project's own onnx.proto (so they also exercise it).</summary>
internal static class OrtTestModels
{
    /// <summary>y = Identity(x) with x, y of <paramref name="elementType"/> and shape [N, 3] (N symbolic).</summary>
    public static byte[] Identity(TensorProto.Types.DataType elementType)
    {
        var model = new ModelProto
        {
            IrVersion = 8,
            ProducerName = "EdgeQuant tests",
            OpsetImport = { new OperatorSetIdProto { Domain = "", Version = 17 } },
            Graph = new GraphProto
            {
                Name = "identity",
                Node = { new NodeProto { OpType = "Identity", Input = { "x" }, Output = { "y" }, Name = "id" } },
                Input = { Tensor("x", elementType, "N", 3) },
                Output = { Tensor("y", elementType, "N", 3) },
            },
        };
        return model.ToByteArray();
    }

    /// <summary>z = Add(x, y), float [2, 3].</summary>
    public static byte[] Add()
    {
        var model = new ModelProto
        {
            IrVersion = 8,
            OpsetImport = { new OperatorSetIdProto { Domain = "", Version = 17 } },
            Graph = new GraphProto
            {
                Name = "add",
                Node = { new NodeProto { OpType = "Add", Input = { "x", "y" }, Output = { "z" } } },
                Input = { Tensor("x", TensorProto.Types.DataType.Float, null, 2, 3), Tensor("y", TensorProto.Types.DataType.Float, null, 2, 3) },
                Output = { Tensor("z", TensorProto.Types.DataType.Float, null, 2, 3) },
            },
        };
        return model.ToByteArray();
    }

    /// <summary>
    /// A synthetic decoder with the modern signature (input_ids, attention_mask, position_ids int64;
    /// past_key_values.0.key|value float [1,1,past,1] -> logits [1,S,V], present.0.key|value), whose logits expose
    /// what it was fed: at row s, 1 at the token id, 10 at the position id, 100 at (mask length - 1) and 1000 at
    /// (sum of the cached token ids mod V). The cache holds every token id seen so far.
    /// </summary>
    public static byte[] ProbeDecoder(int vocab)
    {
        var type = TensorProto.Types.DataType.Float;
        var g = new GraphProto { Name = "probe" };
        g.Input.Add(Tensor("input_ids", TensorProto.Types.DataType.Int64, "batch", Dims("seq")));
        g.Input.Add(Tensor("attention_mask", TensorProto.Types.DataType.Int64, "batch", Dims("total")));
        g.Input.Add(Tensor("position_ids", TensorProto.Types.DataType.Int64, "batch", Dims("seq")));
        g.Input.Add(Tensor("past_key_values.0.key", type, "batch", Dims(1, "past", 1)));
        g.Input.Add(Tensor("past_key_values.0.value", type, "batch", Dims(1, "past", 1)));
        g.Output.Add(Tensor("logits", type, "batch", Dims("seq", vocab)));
        g.Output.Add(Tensor("present.0.key", type, "batch", Dims(1, "total", 1)));
        g.Output.Add(Tensor("present.0.value", type, "batch", Dims(1, "total", 1)));

        g.Initializer.Add(Int64Tensor("depth", [], vocab));
        g.Initializer.Add(Int64Tensor("one", [], 1));
        g.Initializer.Add(Int64Tensor("axes13", [2], 1, 3));
        g.Initializer.Add(Int64Tensor("axes01", [2], 0, 1));
        foreach (var (name, hot) in new[] { ("v1", 1f), ("v10", 10f), ("v100", 100f), ("v1000", 1000f) })
            g.Initializer.Add(new TensorProto { Name = name, DataType = (int)type, Dims = { 2 }, FloatData = { 0f, hot } });

        g.Node.Add(Node("OneHot", ["input_ids", "depth", "v1"], ["oh_id"]));
        g.Node.Add(Node("OneHot", ["position_ids", "depth", "v10"], ["oh_pos"]));
        g.Node.Add(Node("ReduceSum", ["attention_mask"], ["total"], ("keepdims", 0)));
        g.Node.Add(Node("Sub", ["total", "one"], ["last"]));
        // OneHot wants indices of rank >= 1: [1, 1] broadcasts over [1, S, V] after the one-hot axis is added.
        g.Node.Add(Node("Unsqueeze", ["last", "axes01"], ["last11"]));
        g.Node.Add(Node("OneHot", ["last11", "depth", "v100"], ["oh_total"]));
        g.Node.Add(Node("ReduceSum", ["past_key_values.0.key"], ["past_sum"], ("keepdims", 0)));
        g.Node.Add(Node("Cast", ["past_sum"], ["past_sum_i"], ("to", (long)TensorProto.Types.DataType.Int64)));
        g.Node.Add(Node("Mod", ["past_sum_i", "depth"], ["past_mod"]));
        g.Node.Add(Node("Unsqueeze", ["past_mod", "axes01"], ["past_mod11"]));
        g.Node.Add(Node("OneHot", ["past_mod11", "depth", "v1000"], ["oh_past"]));
        g.Node.Add(Node("Add", ["oh_id", "oh_pos"], ["s1"]));
        g.Node.Add(Node("Add", ["s1", "oh_total"], ["s2"]));
        g.Node.Add(Node("Add", ["s2", "oh_past"], ["logits"]));
        g.Node.Add(Node("Cast", ["input_ids"], ["ids_f"], ("to", (long)type)));
        g.Node.Add(Node("Unsqueeze", ["ids_f", "axes13"], ["new_kv"]));
        g.Node.Add(Node("Concat", ["past_key_values.0.key", "new_kv"], ["present.0.key"], ("axis", 2)));
        g.Node.Add(Node("Concat", ["past_key_values.0.value", "new_kv"], ["present.0.value"], ("axis", 2)));
        return Model(g);
    }

    /// <summary>A decoder without KV cache: logits[s] is the one-hot of input_ids[s] (so every call sees the whole history).</summary>
    public static byte[] NoCacheDecoder(int vocab)
    {
        var g = new GraphProto { Name = "nocache" };
        g.Input.Add(Tensor("input_ids", TensorProto.Types.DataType.Int64, "batch", Dims("seq")));
        g.Output.Add(Tensor("logits", TensorProto.Types.DataType.Float, "batch", Dims("seq", vocab)));
        g.Initializer.Add(Int64Tensor("depth", [], vocab));
        g.Initializer.Add(new TensorProto { Name = "v1", DataType = (int)TensorProto.Types.DataType.Float, Dims = { 2 }, FloatData = { 0f, 1f } });
        g.Node.Add(Node("OneHot", ["input_ids", "depth", "v1"], ["logits"]));
        return Model(g);
    }

    private static byte[] Model(GraphProto graph) => new ModelProto
    {
        IrVersion = 8,
        OpsetImport = { new OperatorSetIdProto { Domain = "", Version = 17 } },
        Graph = graph,
    }.ToByteArray();

    private static object[] Dims(params object[] dims) => dims;

    private static ValueInfoProto Tensor(string name, TensorProto.Types.DataType type, string first, object[] rest)
    {
        var shape = new TensorShapeProto { Dim = { new TensorShapeProto.Types.Dimension { DimParam = first } } };
        foreach (var d in rest)
            shape.Dim.Add(d is string s ? new TensorShapeProto.Types.Dimension { DimParam = s } : new TensorShapeProto.Types.Dimension { DimValue = Convert.ToInt64(d) });
        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)type, Shape = shape } } };
    }

    private static TensorProto Int64Tensor(string name, long[] dims, params long[] values) =>
        new() { Name = name, DataType = (int)TensorProto.Types.DataType.Int64, Dims = { dims }, Int64Data = { values } };

    private static NodeProto Node(string op, string[] inputs, string[] outputs, params (string Name, long Value)[] attributes)
    {
        var node = new NodeProto { OpType = op, Input = { inputs }, Output = { outputs } };
        foreach (var (n, v) in attributes) node.Attribute.Add(new AttributeProto { Name = n, Type = AttributeProto.Types.AttributeType.Int, I = v });
        return node;
    }

    private static ValueInfoProto Tensor(string name, TensorProto.Types.DataType type, string? symbolicFirst, params long[] dims)
    {
        var shape = new TensorShapeProto();
        if (symbolicFirst is not null) shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimParam = symbolicFirst });
        foreach (var d in dims) shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = d });
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)type, Shape = shape } },
        };
    }
}
