namespace EdgeQuant.Runtimes.OnnxRuntime;

/// <summary>
/// <c>ONNXTensorElementDataType</c> of onnxruntime_c_api.h (1.30.0); the values equal ONNX's
/// <c>TensorProto.DataType</c>, so a TensorProto's <c>data_type</c> maps by cast.
/// </summary>
public enum OrtElementType
{
    Undefined = 0,
    Float = 1,
    UInt8 = 2,
    Int8 = 3,
    UInt16 = 4,
    Int16 = 5,
    Int32 = 6,
    Int64 = 7,
    String = 8,
    Bool = 9,
    Float16 = 10,
    Double = 11,
    UInt32 = 12,
    UInt64 = 13,
    Complex64 = 14,
    Complex128 = 15,
    BFloat16 = 16,
    Float8E4M3FN = 17,
    Float8E4M3FNUZ = 18,
    Float8E5M2 = 19,
    Float8E5M2FNUZ = 20,
    UInt4 = 21,
    Int4 = 22,
    Float4E2M1 = 23,
}

/// <summary><c>ONNXType</c>: what kind of value an input, output or <see cref="OrtValue"/> is.</summary>
public enum OrtValueKind
{
    Unknown = 0,
    Tensor = 1,
    Sequence = 2,
    Map = 3,
    Opaque = 4,
    SparseTensor = 5,
    Optional = 6,
}

/// <summary><c>OrtErrorCode</c>: the code carried by every failed <c>OrtStatus</c>.</summary>
public enum OrtErrorCode
{
    Ok = 0,
    Fail = 1,
    InvalidArgument = 2,
    NoSuchFile = 3,
    NoModel = 4,
    EngineError = 5,
    RuntimeException = 6,
    InvalidProtobuf = 7,
    ModelLoaded = 8,
    NotImplemented = 9,
    InvalidGraph = 10,
    EpFail = 11,
    ModelLoadCanceled = 12,
    ModelRequiresCompilation = 13,
    NotFound = 14,
}

/// <summary><c>GraphOptimizationLevel</c>: how much ONNX Runtime rewrites the graph when it loads it.</summary>
public enum OrtGraphOptimizationLevel
{
    DisableAll = 0,
    Basic = 1,
    Extended = 2,
    All = 99,
}

/// <summary><c>OrtLoggingLevel</c>: the least severe message ONNX Runtime prints (to stderr).</summary>
public enum OrtLoggingLevel
{
    Verbose = 0,
    Info = 1,
    Warning = 2,
    Error = 3,
    Fatal = 4,
}
