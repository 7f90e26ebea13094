namespace EdgeQuant.Cli.Framework.Progress;

/// <summary>Shows nothing: used when stderr is redirected and in tests.</summary>
public sealed class NullProgressSink : IProgressSink, IProgressReporter, IProgressTask
{
    public static NullProgressSink Instance { get; } = new();

    public Task<T> RunAsync<T>(Func<IProgressReporter, CancellationToken, Task<T>> work, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return work(this, cancellationToken);
    }

    public IProgressTask AddTask(string description, double total) => this;

    public void Increment(double amount) { }

    public string Description { set { } }
}
