namespace EdgeQuant.Cli.Framework.Progress;

/// <summary>
/// Runs a piece of work while showing its progress. Commands take one from <see cref="CliContext.CreateProgress"/>
/// and never decide themselves whether a terminal is there.
/// </summary>
public interface IProgressSink
{
    /// <summary>
    /// Runs <paramref name="work"/>, which adds tasks to the reporter it is given and advances them (from any thread).
    /// Cancellation flows through <paramref name="cancellationToken"/>; the sink does not swallow it.
    /// </summary>
    Task<T> RunAsync<T>(Func<IProgressReporter, CancellationToken, Task<T>> work, CancellationToken cancellationToken);
}

/// <summary>Adds tasks to a running progress display.</summary>
public interface IProgressReporter
{
    /// <summary>A new task with a description and the total it counts up to (items, bytes, …).</summary>
    IProgressTask AddTask(string description, double total);
}

/// <summary>One line of progress. Thread-safe: parallel workers may call <see cref="Increment"/> concurrently.</summary>
public interface IProgressTask
{
    void Increment(double amount);
    string Description { set; }
}

public static class ProgressSinkExtensions
{
    /// <summary>Synchronous-work convenience: runs <paramref name="work"/> on the thread pool under the sink.</summary>
    public static Task<T> Run<T>(this IProgressSink sink, Func<IProgressReporter, CancellationToken, T> work, CancellationToken cancellationToken) =>
        sink.RunAsync((reporter, ct) => Task.Run(() => work(reporter, ct), ct), cancellationToken);
}
