using System.Diagnostics;

namespace EdgeQuant.Benchmarks;

/// <summary>Named suites, a filter on the command line, and a peak-RSS line at the end.</summary>
public sealed class BenchmarkRegistry
{
    private readonly List<(string Name, Action Run)> suites = [];

    public void Add(string name, Action run) => suites.Add((name, run));

    public int Run(string[] filters)
    {
        var chosen = suites.Where(s => filters.Length == 0 || filters.Any(f => s.Name.Contains(f, StringComparison.OrdinalIgnoreCase))).ToList();
        if (chosen.Count == 0)
        {
            Console.Error.WriteLine($"no suite matches '{string.Join(' ', filters)}'; suites: {string.Join(", ", suites.Select(s => s.Name))}");
            return 2;
        }
        Console.WriteLine($"# EdgeQuant benchmarks  {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC  {Environment.ProcessorCount} CPUs  .NET {Environment.Version}  load average {Measure.LoadAverage()}");
        var failed = new List<string>();
        foreach (var (name, run) in chosen)
        {
            Console.WriteLine();
            Console.WriteLine($"## {name}");
            // One suite's missing runtime or bug must not hide the others' figures; the exit code still says so.
            try { run(); }
            catch (Exception e)
            {
                failed.Add(name);
                Console.WriteLine($"SUITE FAILED: {e.GetType().Name}: {e.Message}");
            }
        }
        Console.WriteLine();
        Console.WriteLine($"peak RSS: {Measure.PeakRssMiB():F0} MiB   load average at end: {Measure.LoadAverage()}");
        if (failed.Count == 0) return 0;
        Console.Error.WriteLine($"failed suites: {string.Join(", ", failed)}");
        return 1;
    }
}

/// <summary>Timing: warm up, then the median of repeated runs (the machines are shared, so medians, not means).</summary>
public static class Measure
{
    /// <summary>Median seconds per call of <paramref name="action"/>, over at least <paramref name="minRuns"/> runs and ~<paramref name="budgetSeconds"/>.</summary>
    public static double MedianSeconds(Action action, int warmup = 3, int minRuns = 7, double budgetSeconds = 1.0)
    {
        for (int i = 0; i < warmup; i++) action();
        var times = new List<double>();
        var total = Stopwatch.StartNew();
        while (times.Count < minRuns || (total.Elapsed.TotalSeconds < budgetSeconds && times.Count < 1000))
        {
            long t0 = Stopwatch.GetTimestamp();
            action();
            times.Add(Stopwatch.GetElapsedTime(t0).TotalSeconds);
        }
        times.Sort();
        return times[times.Count / 2];
    }

    /// <summary>
    /// Median seconds per call of each action, measured round-robin (a, b, c, a, b, c, ...) so that every contender
    /// sees the same background load: on a shared machine that makes the ratios far steadier than the absolutes.
    /// </summary>
    public static double[] InterleavedMedianSeconds(Action[] actions, int warmup = 2, int minRounds = 7, double budgetSeconds = 3.0)
    {
        foreach (Action a in actions) for (int i = 0; i < warmup; i++) a();
        var times = actions.Select(_ => new List<double>()).ToArray();
        var total = Stopwatch.StartNew();
        while (times[0].Count < minRounds || (total.Elapsed.TotalSeconds < budgetSeconds && times[0].Count < 1000))
        {
            for (int i = 0; i < actions.Length; i++)
            {
                long t0 = Stopwatch.GetTimestamp();
                actions[i]();
                times[i].Add(Stopwatch.GetElapsedTime(t0).TotalSeconds);
            }
        }
        return times.Select(t => { t.Sort(); return t[t.Count / 2]; }).ToArray();
    }

    /// <summary>The 1-minute load average (Linux), printed with results so a reader can tell a busy machine.</summary>
    public static string LoadAverage()
    {
        try { return File.ReadAllText("/proc/loadavg").Split(' ')[0]; }
        catch (IOException) { return "?"; }
    }

    /// <summary>VmHWM from /proc/self/status (Linux); NaN elsewhere.</summary>
    public static double PeakRssMiB()
    {
        try
        {
            foreach (string line in File.ReadLines("/proc/self/status"))
                if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                    return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) / 1024.0;
        }
        catch (IOException) { }
        return double.NaN;
    }
}
