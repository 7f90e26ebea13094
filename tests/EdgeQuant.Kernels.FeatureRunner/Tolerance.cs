namespace EdgeQuant.Kernels.FeatureRunner;

/// <summary>
/// A named acceptance rule |actual − expected| ≤ Absolute + Relative·|expected|, with the reason for its size.
/// NaN must meet NaN and an infinity the same infinity: special values are compared exactly.
/// </summary>
public sealed record Tolerance(string Name, double Absolute, double Relative, string Why)
{
    public bool Accepts(double expected, double actual)
    {
        if (double.IsNaN(expected)) return double.IsNaN(actual);
        if (double.IsInfinity(expected)) return expected == actual;
        if (double.IsNaN(actual) || double.IsInfinity(actual)) return false;
        return Math.Abs(actual - expected) <= Absolute + Relative * Math.Abs(expected);
    }
}

/// <summary>The tolerances the kernel checks use. float's unit roundoff u = 2⁻²⁴ ≈ 6e-8.</summary>
public static class KernelTolerances
{
    public static readonly Tolerance Exact = new("exact", 0, 0,
        "pure data movement or a single correctly rounded operation: no error is acceptable");

    public static readonly Tolerance Elementwise = new("elementwise", 0, 4e-7,
        "one or two correctly rounded float operations per element (≤ ~2u) plus the double reference's rounding to float");

    public static readonly Tolerance Activation = new("activation", 1e-6, 2e-6,
        "a handful of float ops around a vectorized exp (≤ ~2 ulp): ~10u relative; the absolute part covers the far "
        + "negative tail, where the float-rounded exp argument (|arg| up to ~50) is amplified to ~1e-5 relative on "
        + "values below 1e-20, which are zero for any downstream use");

    public static readonly Tolerance Norm = new("norm", 1e-6, 1e-5,
        "a float reduction over the row (SIMD partial sums: error grows ~log n · u, and ≤ n·u in the worst case "
        + "of the 4099-long row) feeding one scale, then two to three rounded products per element");

    public static readonly Tolerance Softmax = new("softmax", 1e-7, 1e-5,
        "a float sum of up to ~4099 exponentials (≤ log n · u typical) and a vectorized exp (≤ 2 ulp) per element");

    public static readonly Tolerance Rope = new("rope", 1e-5, 1e-6,
        "x·cos ± y·sin on inputs of magnitude ≤ 8 with float tables: a few u of |x|+|y| absolute; relative is "
        + "meaningless where the two products cancel");
}
