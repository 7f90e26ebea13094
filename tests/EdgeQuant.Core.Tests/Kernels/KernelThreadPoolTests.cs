using EdgeQuant.Core.Kernels;
using EdgeQuant.Kernels.FeatureRunner;

namespace EdgeQuant.Core.Tests.Kernels;

public class KernelThreadPoolTests
{
    private sealed class Recorder(int parts) : IParallelWork
    {
        public readonly int[] Calls = new int[parts];
        public readonly int[] Threads = new int[parts];

        public void Execute(int part)
        {
            Interlocked.Increment(ref Calls[part]);
            Threads[part] = Environment.CurrentManagedThreadId;
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(7)]
    public void Every_part_runs_exactly_once(int parts)
    {
        var work = new Recorder(parts);
        KernelThreadPool.Run(work, parts);
        Assert.All(work.Calls, c => Assert.Equal(1, c));
    }

    private sealed class Thrower : IParallelWork
    {
        public void Execute(int part)
        {
            if (part == 1) throw new InvalidOperationException("part 1 failed");
        }
    }

    [Fact]
    public void A_worker_exception_reaches_the_caller_and_the_pool_still_works()
    {
        var e = Assert.Throws<InvalidOperationException>(() => KernelThreadPool.Run(new Thrower(), 2));
        Assert.Equal("part 1 failed", e.Message);
        var work = new Recorder(2);
        KernelThreadPool.Run(work, 2);
        Assert.All(work.Calls, c => Assert.Equal(1, c));
    }

    private sealed class Nested : IParallelWork
    {
        public readonly Recorder[] Inner = [new Recorder(3), new Recorder(3)];

        public void Execute(int part) => KernelThreadPool.Run(Inner[part], 3);
    }

    [Fact]
    public async Task Nested_runs_complete_inline_instead_of_deadlocking()
    {
        var work = new Nested();
        var task = Task.Run(() => KernelThreadPool.Run(work, 2));
        Assert.Same(task, await Task.WhenAny(task, Task.Delay(TimeSpan.FromSeconds(30))));
        await task;
        Assert.All(work.Inner.SelectMany(r => r.Calls), c => Assert.Equal(1, c));
    }

    [Fact]
    public void Concurrent_gemms_from_many_threads_are_all_correct()
    {
        const int m = 40, n = 50, k = 300;
        float[] a = KernelChecks.RandomArray(1, m * k, -1, 1), b = KernelChecks.RandomArray(2, n * k, -1, 1);
        var expected = KernelChecks.GemmRef(a, k, b, true, k, m, n, k, null, n);
        Parallel.For(0, 16, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i =>
        {
            float[] c = new float[m * n];
            Sgemm.MultiplyTransposedB(a, b, c, m, n, k, threads: 2 + i % 3);
            KernelChecks.CompareGemm($"concurrent gemm {i}", expected, c, m, n, n);
        });
    }
}
