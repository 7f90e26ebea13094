using Spectre.Console;

namespace EdgeQuant.Cli.Framework.Progress;

/// <summary>Live progress bars on stderr with Spectre.Console; cleared when the work ends.</summary>
public sealed class SpectreProgressSink(TextWriter stderr) : IProgressSink
{
    public async Task<T> RunAsync<T>(Func<IProgressReporter, CancellationToken, Task<T>> work, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(stderr),
            Interactive = InteractionSupport.Yes,
        });
        return await console.Progress()
            .AutoClear(true)
            .HideCompleted(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new SpinnerColumn())
            .StartAsync(ctx => work(new Reporter(ctx), cancellationToken)).ConfigureAwait(false);
    }

    private sealed class Reporter(ProgressContext context) : IProgressReporter
    {
        public IProgressTask AddTask(string description, double total) =>
            new Task(context.AddTask(Markup.Escape(description), autoStart: true, maxValue: Math.Max(total, 1e-9)));
    }

    // Spectre's ProgressTask locks internally, so concurrent increments from worker threads are safe.
    private sealed class Task(ProgressTask task) : IProgressTask
    {
        public void Increment(double amount) => task.Increment(amount);

        public string Description { set => task.Description = Markup.Escape(value); }
    }
}
