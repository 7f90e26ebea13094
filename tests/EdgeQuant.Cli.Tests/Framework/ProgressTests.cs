using EdgeQuant.Cli.Framework;
using EdgeQuant.Cli.Framework.Progress;
using EdgeQuant.Cli.Tests.Infrastructure;

namespace EdgeQuant.Cli.Tests.Framework;

public class ProgressTests
{
    [Fact]
    public void Context_picks_live_progress_only_for_a_terminal_stderr_and_honours_the_opt_out()
    {
        Assert.IsType<NullProgressSink>(new CliContext(new TestConsole(), _ => null).CreateProgress());
        Assert.IsType<SpectreProgressSink>(new CliContext(new TestConsole { IsErrorTerminal = true }, _ => null).CreateProgress());
        Assert.IsType<NullProgressSink>(new CliContext(new TestConsole { IsErrorTerminal = true },
            n => n == "EDGEQUANT_NO_PROGRESS" ? "1" : null).CreateProgress());
    }

    [Fact]
    public async Task Spectre_sink_counts_concurrent_increments_and_returns_the_result()
    {
        var stderr = new StringWriter();
        var sink = new SpectreProgressSink(stderr);
        var result = await sink.Run((reporter, ct) =>
        {
            var task = reporter.AddTask("work", 1000);
            Parallel.For(0, 1000, new ParallelOptions { CancellationToken = ct }, _ => task.Increment(1));
            return 42;
        }, CancellationToken.None);
        Assert.Equal(42, result);
        Assert.Contains("work", stderr.ToString());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Both_sinks_surface_cancellation(bool spectre)
    {
        IProgressSink sink = spectre ? new SpectreProgressSink(new StringWriter()) : NullProgressSink.Instance;
        using var cts = new CancellationTokenSource();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => sink.Run<int>((reporter, ct) =>
        {
            reporter.AddTask("cancelled", 10);
            cts.Cancel();
            ct.ThrowIfCancellationRequested();
            return 0;
        }, cts.Token));
    }
}
