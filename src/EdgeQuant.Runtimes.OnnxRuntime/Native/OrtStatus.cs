using System.Runtime.InteropServices;

namespace EdgeQuant.Runtimes.OnnxRuntime.Native;

/// <summary>The single place an <c>OrtStatus*</c> becomes an <see cref="OrtException"/>.</summary>
internal static unsafe class OrtStatus
{
    /// <summary>Throws when <paramref name="status"/> is non-NULL, always releasing it.</summary>
    public static void Check(IntPtr status, string operation)
    {
        if (status == IntPtr.Zero) return;
        Throw(status, operation);
    }

    private static void Throw(IntPtr status, string operation)
    {
        var api = OrtApi.Instance;
        OrtErrorCode code;
        string message;
        try
        {
            code = (OrtErrorCode)api.GetErrorCode(status);
            message = Marshal.PtrToStringUTF8((IntPtr)api.GetErrorMessage(status)) ?? "(no message)";
        }
        finally
        {
            api.ReleaseStatus(status);
        }
        throw new OrtException(code, message, operation);
    }
}
