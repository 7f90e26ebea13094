using System.Diagnostics.CodeAnalysis;
using EdgeQuant.Core.Errors;

namespace EdgeQuant.Formats.Gguf;

/// <summary>The one place GGUF errors are raised, so every message has the same shape: file, field, byte offset, problem.</summary>
internal static class GgufThrow
{
    [DoesNotReturn]
    public static void Format(string file, string field, long offset, string problem) =>
        throw new FileFormatException(file, field, offset, problem);

    [DoesNotReturn]
    public static T Format<T>(string file, string field, long offset, string problem) =>
        throw new FileFormatException(file, field, offset, problem);

    [DoesNotReturn]
    public static void Write(string file, string field, string problem) =>
        throw new BadInputException($"{file}: {field}: {problem}");

    [DoesNotReturn]
    public static void WrongByteCount(string file, string tensor, long expected, long written) =>
        throw new InternalFailureException($"{file}: tensor '{tensor}': its data source wrote {written} bytes, expected {expected}");
}
