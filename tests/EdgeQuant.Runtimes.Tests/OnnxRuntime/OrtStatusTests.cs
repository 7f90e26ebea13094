using EdgeQuant.Runtimes.OnnxRuntime;
using EdgeQuant.Runtimes.OnnxRuntime.Native;

namespace EdgeQuant.Runtimes.Tests.OnnxRuntime;

/// <summary>
/// The OrtStatus conversion, through a status ORT itself creates. This also pins four slots of the function table
/// (CreateStatus 0, GetErrorCode 1, GetErrorMessage 2, ReleaseStatus 93): a wrong index would return the wrong
/// code or message, or crash.
/// </summary>
public sealed class OrtStatusTests
{
    public OrtStatusTests() => RuntimeAvailability.Configure();

    [OnnxRuntimeFact]
    public unsafe void A_native_status_becomes_an_OrtException_with_its_code_and_message()
    {
        var api = OrtApi.Instance;
        Assert.Equal(30u, OrtApi.ApiVersion);
        foreach (var code in new[] { OrtErrorCode.Fail, OrtErrorCode.InvalidArgument, OrtErrorCode.NoSuchFile, OrtErrorCode.NotImplemented })
        {
            IntPtr status;
            fixed (byte* message = "boom: détail\0"u8)
                status = api.CreateStatus((int)code, message);
            Assert.NotEqual(IntPtr.Zero, status);
            var e = Assert.Throws<OrtException>(() => OrtStatus.Check(status, "Probe"));
            Assert.Equal(code, e.ErrorCode);
            Assert.Equal("boom: détail", e.OrtMessage);
            Assert.Equal($"ONNX Runtime Probe failed ({code}): boom: détail", e.Message);
        }
        OrtStatus.Check(IntPtr.Zero, "Nothing"); // success is a NULL status
    }
}
