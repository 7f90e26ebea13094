using System.Diagnostics.CodeAnalysis;
using EdgeQuant.Core.Errors;

namespace EdgeQuant.Formats.Llama2c;

internal static class Llama2cThrow
{
    [DoesNotReturn]
    public static void At(string file, string field, long offset, string problem) => throw new FileFormatException(file, field, offset, problem);
}
