using System.Runtime.ExceptionServices;

namespace EdgeQuant.Core.Kernels;

/// <summary>A unit of fork-join work: part 0 .. parts-1, each called exactly once.</summary>
public interface IParallelWork
{
    void Execute(int part);
}

/// <summary>
/// A tiny fork-join pool for the kernels. Why not Parallel.For: a GEMV for one decoded token takes ~0.1–1 ms and the
/// engine makes hundreds per token, so the ThreadPool's queueing, work stealing and ramp-up are a visible tax;
/// dedicated workers that spin briefly on an event before sleeping wake in microseconds. The caller runs part 0
/// itself. One job at a time: a concurrent or nested caller that finds the pool busy runs its parts inline, so the
/// pool can neither deadlock nor oversubscribe the cores.
/// </summary>
public static class KernelThreadPool
{
    // More workers than this is surely a mistake in a thread-count argument, not a real machine.
    private const int MaxWorkers = 255;

    // 1 while a job owns the workers. A flag rather than a Monitor because a Monitor is re-entrant: a part running on
    // the calling thread that starts a nested job would "acquire" it again and hijack workers that are still busy.
    private static int busy;
    private static readonly ManualResetEventSlim Done = new(false, SpinCount);
    private static Worker[] workers = [];
    private static int pending;
    private static IParallelWork? current;

    // Spins before a worker or the caller blocks: long enough to bridge the gap between back-to-back kernels in a
    // forward pass, short enough not to burn a core for long when the engine goes idle.
    private const int SpinCount = 2000;

    /// <summary>Default thread count for the kernels: the logical processor count.</summary>
    public static int DefaultThreads => Environment.ProcessorCount;

    /// <summary>Runs parts 0..parts-1 of <paramref name="work"/>, on up to <paramref name="parts"/> threads.</summary>
    public static void Run(IParallelWork work, int parts)
    {
        ArgumentNullException.ThrowIfNull(work);
        if (parts <= 1)
        {
            if (parts == 1) work.Execute(0);
            return;
        }
        if (parts - 1 > MaxWorkers) throw new ArgumentOutOfRangeException(nameof(parts), parts, $"at most {MaxWorkers + 1} parts");
        if (Interlocked.CompareExchange(ref busy, 1, 0) != 0)
        {
            for (int p = 0; p < parts; p++) work.Execute(p);
            return;
        }
        try
        {
            EnsureWorkers(parts - 1);
            current = work;
            Done.Reset();
            Volatile.Write(ref pending, parts - 1);
            for (int p = 1; p < parts; p++) workers[p - 1].Start(p);
            Exception? first = null;
            try { work.Execute(0); }
            catch (Exception e) { first = e; }
            Done.Wait();
            current = null;
            for (int w = 0; w < parts - 1; w++)
            {
                first ??= workers[w].Error;
                workers[w].Error = null;
            }
            if (first is not null) ExceptionDispatchInfo.Capture(first).Throw();
        }
        finally
        {
            Volatile.Write(ref busy, 0);
        }
    }

    private static void EnsureWorkers(int count)
    {
        if (workers.Length >= count) return;
        var grown = new Worker[count];
        Array.Copy(workers, grown, workers.Length);
        for (int i = workers.Length; i < count; i++) grown[i] = new Worker(i);
        workers = grown;
    }

    private sealed class Worker
    {
        private readonly ManualResetEventSlim wake = new(false, SpinCount);
        private int part;

        public Worker(int index)
        {
            var thread = new Thread(Loop) { IsBackground = true, Name = $"EdgeQuant kernel {index + 1}" };
            thread.Start();
        }

        public Exception? Error { get; set; }

        public void Start(int p)
        {
            part = p;
            wake.Set();
        }

        private void Loop()
        {
            while (true)
            {
                wake.Wait();
                wake.Reset();
                try { current!.Execute(part); }
                catch (Exception e) { Error = e; }
                if (Interlocked.Decrement(ref pending) == 0) Done.Set();
            }
        }
    }
}
