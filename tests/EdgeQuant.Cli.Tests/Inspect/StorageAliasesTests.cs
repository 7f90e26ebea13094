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
