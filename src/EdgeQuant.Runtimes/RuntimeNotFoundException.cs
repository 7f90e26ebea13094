using EdgeQuant.Core.Errors;

namespace EdgeQuant.Runtimes;

/// <summary>
/// A native runtime (ONNX Runtime, llama.cpp) could not be found or loaded. It derives from
/// <see cref="InternalFailureException"/> (exit code 1) rather than <see cref="BadInputException"/>: the user's
/// files and arguments are fine, the machine lacks a piece the tool needs. The message is numbered
/// (<see cref="Code"/>, e.g. <c>EQ-RT-001</c>) and says where EdgeQuant looked and how to fix it, so no
/// <see cref="DllNotFoundException"/> stack ever reaches a user.
/// </summary>
public sealed class RuntimeNotFoundException : InternalFailureException
{
    public RuntimeNotFoundException(string code, string message, IReadOnlyList<string> searched, Exception? inner = null)
        : base(message, inner)
    {
        Code = code;
        Searched = searched;
    }

    /// <summary>The stable error number, e.g. <c>EQ-RT-001</c> (see <see cref="NativeLibraries"/>).</summary>
    public string Code { get; }

    /// <summary>The locations probed, in the order they were tried.</summary>
    public IReadOnlyList<string> Searched { get; }
}
