using System.Diagnostics.CodeAnalysis;
using EdgeQuant.Core.Errors;

namespace EdgeQuant.Formats.Safetensors;

/// <summary>The one place safetensors errors are built, so they all read "file: field at byte offset N: problem".</summary>
internal static class SafetensorsThrow
{
    [DoesNotReturn]
    public static void At(string file, string field, long offset, string problem) => throw new FileFormatException(file, field, offset, problem);

    [DoesNotReturn]
    public static void Tensor(string file, string tensor, string field, long offset, string problem) =>
        throw new FileFormatException(file, $"tensor '{SafetensorsReader.Printable(tensor)}' {field}", offset, problem);
}
