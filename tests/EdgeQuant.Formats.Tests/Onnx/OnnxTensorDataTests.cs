using System.Buffers.Binary;
using EdgeQuant.Core.Errors;
using EdgeQuant.Formats.Onnx;
using EdgeQuant.Formats.Onnx.Proto;
using Google.Protobuf;

namespace EdgeQuant.Formats.Tests.Onnx;

public sealed class OnnxTensorDataTests
{
    private const string Source = "t.pb";

    [Fact]
    public void Raw_data_and_typed_fields_give_the_same_little_endian_bytes()
    {
        float[] values = [1.5f, -2f, float.NaN, 0f, 3.25e-8f, float.NegativeInfinity];
        var raw = new byte[values.Length * 4];
        for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(raw.AsSpan(i * 4), values[i]);
        var fromRaw = new TensorProto { Name = "a", DataType = (int)TensorProto.Types.DataType.Float, Dims = { 2, 3 }, RawData = ByteString.CopyFrom(raw) };
        var fromField = new TensorProto { Name = "a", DataType = (int)TensorProto.Types.DataType.Float, Dims = { 2, 3 }, FloatData = { values } };
        Assert.Equal(raw, OnnxTensorData.GetElementBytes(fromRaw, Source));
        Assert.Equal(raw, OnnxTensorData.GetElementBytes(fromField, Source));
        Assert.Equal(values, OnnxTensorData.GetElements<float>(fromField, Source));
    }

    [Fact]
    public void Narrow_types_live_one_per_entry_in_int32_data_and_unsigned_wide_types_in_uint64_data()
    {
        var f16 = new TensorProto { DataType = (int)TensorProto.Types.DataType.Float16, Dims = { 3 }, Int32Data = { BitConverter.HalfToUInt16Bits((Half)1.5f), BitConverter.HalfToUInt16Bits((Half)(-2f)), 0 } };
        Assert.Equal([(Half)1.5f, (Half)(-2f), (Half)0f], OnnxTensorData.GetElements<Half>(f16, Source));
        var i8 = new TensorProto { DataType = (int)TensorProto.Types.DataType.Int8, Dims = { 3 }, Int32Data = { -128, 127, -1 } };
        Assert.Equal(new sbyte[] { -128, 127, -1 }, OnnxTensorData.GetElements<sbyte>(i8, Source));
        var boolean = new TensorProto { DataType = (int)TensorProto.Types.DataType.Bool, Dims = { 2 }, Int32Data = { 1, 0 } };
        Assert.Equal([1, 0], OnnxTensorData.GetElementBytes(boolean, Source));
        var u32 = new TensorProto { DataType = (int)TensorProto.Types.DataType.Uint32, Dims = { 2 }, Uint64Data = { uint.MaxValue, 7 } };
        Assert.Equal([uint.MaxValue, 7u], OnnxTensorData.GetElements<uint>(u32, Source));
        var i64 = new TensorProto { DataType = (int)TensorProto.Types.DataType.Int64, Dims = { 2 }, Int64Data = { long.MinValue, 5 } };
        Assert.Equal([long.MinValue, 5L], OnnxTensorData.GetElements<long>(i64, Source));
        var text = new TensorProto { DataType = (int)TensorProto.Types.DataType.String, Dims = { 2 }, StringData = { ByteString.CopyFromUtf8("héllo"), ByteString.Empty } };
        Assert.Equal(["héllo", ""], OnnxTensorData.GetStrings(text, Source));
    }

    [Fact]
    public void Scalars_and_empty_tensors_have_one_and_zero_elements()
    {
        var scalar = new TensorProto { DataType = (int)TensorProto.Types.DataType.Int64, Int64Data = { 42 } };
        Assert.Equal(1, OnnxTensorData.ElementCount(scalar, Source));
        Assert.Equal([42L], OnnxTensorData.GetElements<long>(scalar, Source));
        var empty = new TensorProto { DataType = (int)TensorProto.Types.DataType.Float, Dims = { 0, 3 } };
        Assert.Empty(OnnxTensorData.GetElementBytes(empty, Source));
    }

    [Fact]
    public void Mismatched_or_unsupported_data_is_a_format_error_naming_file_and_tensor()
    {
        var shortRaw = new TensorProto { Name = "w", DataType = (int)TensorProto.Types.DataType.Float, Dims = { 4 }, RawData = ByteString.CopyFrom(new byte[12]) };
        var e = Assert.Throws<FileFormatException>(() => OnnxTensorData.GetElementBytes(shortRaw, Source));
        Assert.Equal(Source, e.FilePath);
        Assert.Contains("'w'", e.Message);
        Assert.Contains("16", e.Message);

        var fewEntries = new TensorProto { Name = "b", DataType = (int)TensorProto.Types.DataType.Int64, Dims = { 3 }, Int64Data = { 1, 2 } };
        Assert.Contains("int64_data", Assert.Throws<FileFormatException>(() => OnnxTensorData.GetElementBytes(fewEntries, Source)).Message);

        var negative = new TensorProto { Name = "n", DataType = (int)TensorProto.Types.DataType.Float, Dims = { 2, -1 } };
        Assert.Throws<FileFormatException>(() => OnnxTensorData.GetElementBytes(negative, Source));

        var huge = new TensorProto { Name = "h", DataType = (int)TensorProto.Types.DataType.Double, Dims = { 1L << 40, 1L << 20 } };
        Assert.Throws<FileFormatException>(() => OnnxTensorData.GetElementBytes(huge, Source));

        var external = new TensorProto { Name = "x", DataType = (int)TensorProto.Types.DataType.Float, Dims = { 1 }, DataLocation = TensorProto.Types.DataLocation.External };
        Assert.Contains("external", Assert.Throws<FileFormatException>(() => OnnxTensorData.GetElementBytes(external, Source)).Message);

        var text = new TensorProto { Name = "s", DataType = (int)TensorProto.Types.DataType.String, Dims = { 1 } };
        Assert.Throws<FileFormatException>(() => OnnxTensorData.GetElementBytes(text, Source));
        var notText = new TensorProto { Name = "f", DataType = (int)TensorProto.Types.DataType.Float, Dims = { 1 }, FloatData = { 1 } };
        Assert.Throws<FileFormatException>(() => OnnxTensorData.GetStrings(notText, Source));
    }

    [Fact]
    public void A_model_written_with_the_schema_parses_back_equal()
    {
        var model = new ModelProto
        {
            IrVersion = 8,
            ProducerName = "edgequant",
            OpsetImport = { new OperatorSetIdProto { Version = 17 }, new OperatorSetIdProto { Domain = "com.microsoft", Version = 1 } },
            MetadataProps = { new StringStringEntryProto { Key = "k", Value = "v" } },
            Graph = new GraphProto
            {
                Name = "g",
                Node = { new NodeProto { OpType = "Gemm", Input = { "a", "b" }, Output = { "c" }, Attribute = { new AttributeProto { Name = "alpha", Type = AttributeProto.Types.AttributeType.Float, F = 0.5f } } } },
                Initializer = { new TensorProto { Name = "b", DataType = (int)TensorProto.Types.DataType.Float, Dims = { 2, 2 }, FloatData = { 1, 2, 3, 4 } } },
                Input = { new ValueInfoProto { Name = "a", Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = 1, Shape = new TensorShapeProto { Dim = { new TensorShapeProto.Types.Dimension { DimParam = "batch" }, new TensorShapeProto.Types.Dimension { DimValue = 2 } } } } } } },
                Output = { new ValueInfoProto { Name = "c", Type = new TypeProto { SequenceType = new TypeProto.Types.Sequence { ElemType = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = 1 } } } } } },
            },
        };
        var parsed = ModelProto.Parser.ParseFrom(model.ToByteArray());
        Assert.Equal(model, parsed);
        Assert.Equal("batch", parsed.Graph.Input[0].Type.TensorType.Shape.Dim[0].DimParam);
        Assert.Equal(TensorShapeProto.Types.Dimension.ValueOneofCase.DimValue, parsed.Graph.Input[0].Type.TensorType.Shape.Dim[1].ValueCase);
    }
}
