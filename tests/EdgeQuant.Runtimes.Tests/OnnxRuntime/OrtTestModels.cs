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
