using EdgeQuant.Cli.Commands.Inspect;
using EdgeQuant.Core.Tensors;
using EdgeQuant.Models;

namespace EdgeQuant.Cli.Tests.Inspect;

public class StorageAliasesTests
{
    private sealed class SliceStorage(byte[] buffer, int start, int length) : ITensorStorage
    {
        public ReadOnlySpan<byte> Bytes => buffer.AsSpan(start, length);
    }

    private static ModelTensor T(string name, ITensorStorage storage, int elements) => new()
    {
        Name = name, Shape = [elements], Type = TensorType.F32, SourceName = name, Storage = storage,
    };

    [Fact]
    public void Same_memory_is_an_alias_equal_bytes_elsewhere_are_not()
    {
        var buffer = new byte[64];
        var copy = new byte[16]; // same (zero) contents as buffer[0..16], different memory
        var tensors = new[]
        {
            T("a", new SliceStorage(buffer, 0, 16), 4),
            T("b", new SliceStorage(buffer, 16, 16), 4),
            T("a_alias", new SliceStorage(buffer, 0, 16), 4), // a separate storage object over the same bytes
            T("a_copy", new ArrayTensorStorage(copy), 4),
            T("a_prefix", new SliceStorage(buffer, 0, 8), 2), // same start, shorter: not the same tensor data
            T("a_alias2", new SliceStorage(buffer, 0, 16), 4),
        };
        var aliases = StorageAliases.Find(tensors);
        Assert.Equal([null, null, 0, null, null, 0], aliases);
    }
}

public class TensorStatisticsCountTests
{
    /// <summary>Every length around the vector width, with zeros of both signs, NaN and infinities planted.</summary>
    [Fact]
    public void Zero_and_non_finite_counts_match_a_scalar_count_on_every_length()
    {
        var rng = new Random(5);
        float[] specials = [0f, -0f, float.NaN, float.PositiveInfinity, float.NegativeInfinity, 1f, -2.5f, float.Epsilon];
        for (var n = 0; n <= 70; n++)
        {
            var x = new float[n];
            for (var i = 0; i < n; i++) x[i] = specials[rng.Next(specials.Length)];
            var (zeros, nonFinite) = EdgeQuant.Cli.Commands.Inspect.TensorStatisticsCalculator.Moments.CountZerosAndNonFinite(x);
            Assert.Equal(x.Count(v => v == 0f), zeros);
            Assert.Equal(x.Count(v => float.IsNaN(v) || float.IsInfinity(v)), nonFinite);
        }
    }
}
