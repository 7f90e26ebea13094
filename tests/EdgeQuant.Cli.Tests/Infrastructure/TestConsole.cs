using EdgeQuant.Cli.Framework;

namespace EdgeQuant.Cli.Tests.Infrastructure;

/// <summary>A console whose two streams are captured; by default both are "redirected" (no terminal).</summary>
public sealed class TestConsole : ICliConsole
{
    private readonly StringWriter _out = new() { NewLine = "\n" };
    private readonly StringWriter _err = new() { NewLine = "\n" };

    public TextWriter Out => _out;
    public TextWriter Error => _err;
    public bool IsOutputTerminal { get; init; }
    public bool IsErrorTerminal { get; init; }
    public int? TerminalWidth { get; init; }

    public string StdOut => _out.ToString();
    public string StdErr => _err.ToString();
}
