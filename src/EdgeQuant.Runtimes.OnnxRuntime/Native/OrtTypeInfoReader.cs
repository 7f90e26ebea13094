using System.Runtime.InteropServices;

namespace EdgeQuant.Runtimes.OnnxRuntime.Native;

/// <summary>Reads element type, dimensions and symbolic dimension names out of ORT's type descriptions.</summary>
internal static unsafe class OrtTypeInfoReader
{
    /// <summary>Element type, dims (-1 where unknown) and symbolic names ("" where none) of an <c>OrtTensorTypeAndShapeInfo*</c>.</summary>
    public static (OrtElementType Type, long[] Shape, string[] Symbolic) ReadTensorInfo(IntPtr info)
    {
        var api = OrtApi.Instance;
        int type;
        OrtStatus.Check(api.GetTensorElementType(info, &type), "GetTensorElementType");
        nuint rank;
        OrtStatus.Check(api.GetDimensionsCount(info, &rank), "GetDimensionsCount");
        if (rank > 64) throw new InvalidOperationException($"ONNX Runtime reported a tensor of rank {rank}");
        var dims = new long[(int)rank];
        var symbolic = new string[(int)rank];
        if (rank > 0)
        {
            var names = new IntPtr[(int)rank];
            fixed (long* d = dims)
                OrtStatus.Check(api.GetDimensions(info, d, rank), "GetDimensions");
            fixed (IntPtr* n = names)
                OrtStatus.Check(api.GetSymbolicDimensions(info, (byte**)n, rank), "GetSymbolicDimensions");
            for (int i = 0; i < symbolic.Length; i++)
                symbolic[i] = names[i] == IntPtr.Zero ? "" : Marshal.PtrToStringUTF8(names[i]) ?? "";
        }
        return ((OrtElementType)type, dims, symbolic);
    }

    /// <summary>Describes one session input or output from its <c>OrtTypeInfo*</c> (which this releases).</summary>
    public static OrtNodeInfo ReadNodeInfo(string name, IntPtr typeInfo)
    {
        using var owned = new OrtTypeInfoHandle();
        owned.SetPointer(typeInfo);
        var api = OrtApi.Instance;
        int kind;
        OrtStatus.Check(api.GetOnnxTypeFromTypeInfo(typeInfo, &kind), "GetOnnxTypeFromTypeInfo");
        if ((OrtValueKind)kind != OrtValueKind.Tensor)
            return new OrtNodeInfo(name, (OrtValueKind)kind, OrtElementType.Undefined, [], []);
        IntPtr tensorInfo;
        OrtStatus.Check(api.CastTypeInfoToTensorInfo(typeInfo, &tensorInfo), "CastTypeInfoToTensorInfo");
        var (type, shape, symbolic) = ReadTensorInfo(tensorInfo);
        return new OrtNodeInfo(name, OrtValueKind.Tensor, type, shape, symbolic);
    }
}
