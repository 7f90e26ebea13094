namespace EdgeQuant.Cli.Framework;

/// <summary>
/// Where a command writes, injected so tests capture both streams. Commands never touch <see cref="Console"/>.
/// </summary>
public interface ICliConsole
{
    /// <summary>Reports and tables; in <c>--json</c> mode the JSON document and nothing else.</summary>
    TextWriter Out { get; }

    /// <summary>Errors, warnings and progress.</summary>
    TextWriter Error { get; }

    /// <summary>True when <see cref="Out"/> is an interactive terminal (colours and terminal width apply).</summary>
    bool IsOutputTerminal { get; }

    /// <summary>True when <see cref="Error"/> is an interactive terminal (live progress is shown only then).</summary>
    bool IsErrorTerminal { get; }

    /// <summary>Terminal width in columns, or null when output is redirected.</summary>
    int? TerminalWidth { get; }
}

/// <summary>The process's real console.</summary>
public sealed class SystemCliConsole : ICliConsole
{
    public TextWriter Out => Console.Out;
    public TextWriter Error => Console.Error;
    public bool IsOutputTerminal => !Console.IsOutputRedirected;
    public bool IsErrorTerminal => !Console.IsErrorRedirected;

    public int? TerminalWidth
    {
        get
        {
            if (Console.IsOutputRedirected) return null;
            try { return Console.WindowWidth > 0 ? Console.WindowWidth : null; }
            catch (IOException) { return null; }
        }
    }
}
