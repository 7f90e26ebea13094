using System.Runtime.CompilerServices;

// The kernel tests force each SIMD width (GemmKernelKind) in-process; the feature runner re-checks dispatch per ISA.
[assembly: InternalsVisibleTo("EdgeQuant.Core.Tests")]
[assembly: InternalsVisibleTo("EdgeQuant.Kernels.FeatureRunner")]
[assembly: InternalsVisibleTo("EdgeQuant.Benchmarks")]
