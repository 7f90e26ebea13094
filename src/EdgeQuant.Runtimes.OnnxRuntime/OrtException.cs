using EdgeQuant.Core.Errors;

namespace EdgeQuant.Runtimes.OnnxRuntime;

/// <summary>
/// A failed ONNX Runtime call: ORT's <see cref="OrtErrorCode"/> and its message. This is the only exception the
/// binding makes from an <c>OrtStatus</c> (see <c>OrtStatus.Check</c>).
/// </summary>
/// <remarks>
/// Derives from <see cref="InternalFailureException"/> (exit code 1), except that the codes which mean "the model
/// file is wrong" (no such file, not a protobuf, not a valid graph, no model) exit with
/// <see cref="ExitCodes.BadInput"/>, so a user sees their file blamed, not the tool.
/// </remarks>
public sealed class OrtException : InternalFailureException
{
    public OrtException(OrtErrorCode errorCode, string ortMessage, string operation)
        : base($"ONNX Runtime {operation} failed ({errorCode}): {ortMessage}")
    {
        ErrorCode = errorCode;
        OrtMessage = ortMessage;
        Operation = operation;
    }

    public OrtErrorCode ErrorCode { get; }

    /// <summary>ORT's message as it gave it.</summary>
    public string OrtMessage { get; }

    /// <summary>The C API function that failed, e.g. <c>Run</c>.</summary>
    public string Operation { get; }

    public override int ExitCode => ErrorCode is OrtErrorCode.NoSuchFile or OrtErrorCode.InvalidProtobuf
        or OrtErrorCode.InvalidGraph or OrtErrorCode.NoModel
        ? ExitCodes.BadInput
        : ExitCodes.InternalFailure;
}
