namespace EdgeQuant.Core.Errors;

/// <summary>Process exit codes shared by every command.</summary>
public static class ExitCodes
{
    public const int Ok = 0;
    public const int InternalFailure = 1;
    public const int BadInput = 2;
    /// <summary>A verification gate failed (used by verify/compare).</summary>
    public const int GateFailed = 3;
    public const int Interrupted = 130;
}

/// <summary>Base of every error EdgeQuant raises on purpose.</summary>
public abstract class EdgeQuantException : Exception
{
    protected EdgeQuantException(string message, Exception? inner = null) : base(message, inner) { }

    /// <summary>The exit code a command returns when this error ends it.</summary>
    public abstract int ExitCode { get; }
}

/// <summary>
/// The user's input is wrong (a file, an argument, a value): exit code 2. The message is one line that names
/// the file, the field and (when there is one) the byte offset, so a person can act on it.
/// </summary>
public class BadInputException : EdgeQuantException
{
    public BadInputException(string message, Exception? inner = null) : base(message, inner) { }

    public override int ExitCode => ExitCodes.BadInput;
}

/// <summary>A model or data file is malformed. Carries where: file, field (or tensor) and byte offset.</summary>
public sealed class FileFormatException : BadInputException
{
    public FileFormatException(string file, string field, long? offset, string problem, Exception? inner = null)
        : base(Format(file, field, offset, problem), inner)
    {
        FilePath = file;
        Field = field;
        Offset = offset;
        Problem = problem;
    }

    public string FilePath { get; }
    public string Field { get; }
    public long? Offset { get; }
    public string Problem { get; }

    private static string Format(string file, string field, long? offset, string problem) =>
        offset is { } o
            ? $"{file}: {field} at byte offset {o}: {problem}"
            : $"{file}: {field}: {problem}";
}

/// <summary>Something EdgeQuant itself got wrong or could not do (a native runtime failed, an invariant broke): exit code 1.</summary>
public class InternalFailureException : EdgeQuantException
{
    public InternalFailureException(string message, Exception? inner = null) : base(message, inner) { }

    public override int ExitCode => ExitCodes.InternalFailure;
}
