using EdgeQuant.Kernels.FeatureRunner;

namespace EdgeQuant.Core.Tests.Kernels;

/// <summary>
/// Every kernel check in this process (widest SIMD the machine has; the GEMM/GEMV checks also force each narrower
/// micro-kernel family). The checks themselves live in EdgeQuant.Kernels.FeatureRunner so the child-process runs in
/// <see cref="FeatureRunnerTests"/> execute exactly the same code.
/// </summary>
public class KernelCheckTests
{
    public static TheoryData<string> Checks()
    {
        var data = new TheoryData<string>();
        foreach (var (name, _) in KernelChecks.All) data.Add(name);
        return data;
    }

    [Theory]
    [MemberData(nameof(Checks))]
    public void Kernel_matches_scalar_reference(string check)
    {
        var (_, run) = KernelChecks.All.Single(c => c.Name == check);
        run();
    }
}
