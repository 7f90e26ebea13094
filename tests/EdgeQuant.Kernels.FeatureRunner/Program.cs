using System.Diagnostics;
using System.Runtime.Intrinsics;
using EdgeQuant.Kernels.FeatureRunner;

// Prints which vector widths this process accelerates (the launching test asserts them, so a renamed or ignored
// DOTNET_Enable* switch cannot silently test the same path twice), runs every kernel check (or those whose names
// contain an argument) and exits 1 on the first mismatch.
Console.WriteLine($"features: V512={Vector512.IsHardwareAccelerated} V256={Vector256.IsHardwareAccelerated} V128={Vector128.IsHardwareAccelerated}");
int failed = 0;
foreach (var (name, run) in KernelChecks.All)
{
    if (args.Length > 0 && !args.Any(a => name.Contains(a, StringComparison.Ordinal))) continue;
    var sw = Stopwatch.StartNew();
    try
    {
        run();
        Console.WriteLine($"ok   {name} ({sw.ElapsedMilliseconds} ms)");
    }
    catch (KernelCheckException e)
    {
        failed++;
        Console.WriteLine($"FAIL {name}: {e.Message}");
    }
}
return failed == 0 ? 0 : 1;
