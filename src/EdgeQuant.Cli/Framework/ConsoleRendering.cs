using Spectre.Console;

namespace EdgeQuant.Cli.Framework;

/// <summary>Builds Spectre consoles over injected writers.</summary>
public static class ConsoleRendering
{
    /// <summary>
    /// Width used when output is not a terminal. Wide enough for a tensor table with long HF names, and fixed so
    /// piped output and snapshot files do not depend on whoever ran the command.
    /// </summary>
    public const int RedirectedWidth = 160;

    public static IAnsiConsole Create(TextWriter writer, bool isTerminal, int? width)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = isTerminal ? AnsiSupport.Detect : AnsiSupport.No,
            ColorSystem = isTerminal ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
            Interactive = isTerminal ? InteractionSupport.Detect : InteractionSupport.No,
            Out = new AnsiConsoleOutput(writer),
        });
        console.Profile.Width = width ?? RedirectedWidth;
        if (!isTerminal)
        {
            // Logs and CI consoles often mangle box-drawing characters; Spectre falls back to ASCII borders.
            console.Profile.Capabilities.Unicode = false;
        }
        return console;
    }
}
