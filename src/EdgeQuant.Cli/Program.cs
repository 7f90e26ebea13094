using EdgeQuant.Cli.Framework;

using var interruption = new ProcessInterruption(Console.Error);
return await CliApp.RunAsync(args, new CliContext(new SystemCliConsole()), interruption.Token);
