using System.Runtime.CompilerServices;
using EdgeQuant.Core.Quantization;
using EdgeQuant.Core.Tensors;

namespace EdgeQuant.Core.Tests.Quantization;

public class BlockLayoutTests
{
    // Sizes from ggml-common.h's static_asserts (e.g. sizeof(block_q8_0) == sizeof(ggml_half) + QK8_0).
    [Fact]
    public void Block_structs_have_ggml_sizes_and_match_the_type_table()
    {
        (TensorType Type, int Size)[] cases =
        [
            (TensorType.Q4_0, Unsafe.SizeOf<BlockQ4_0>()),
            (TensorType.Q4_1, Unsafe.SizeOf<BlockQ4_1>()),
            (TensorType.Q5_0, Unsafe.SizeOf<BlockQ5_0>()),
            (TensorType.Q5_1, Unsafe.SizeOf<BlockQ5_1>()),
            (TensorType.Q8_0, Unsafe.SizeOf<BlockQ8_0>()),
            (TensorType.Q8_1, Unsafe.SizeOf<BlockQ8_1>()),
            (TensorType.Q2_K, Unsafe.SizeOf<BlockQ2_K>()),
            (TensorType.Q3_K, Unsafe.SizeOf<BlockQ3_K>()),
            (TensorType.Q4_K, Unsafe.SizeOf<BlockQ4_K>()),
            (TensorType.Q5_K, Unsafe.SizeOf<BlockQ5_K>()),
            (TensorType.Q6_K, Unsafe.SizeOf<BlockQ6_K>()),
            (TensorType.Q8_K, Unsafe.SizeOf<BlockQ8_K>()),
        ];
        int[] ggml = [18, 20, 22, 24, 34, 36, 84, 110, 144, 176, 210, 292];
        Assert.Equal(ggml, cases.Select(c => c.Size));
        foreach (var (type, size) in cases) Assert.Equal(TensorTypes.Get(type).BlockBytes, size);
        Assert.Equal(34, System.Runtime.InteropServices.Marshal.SizeOf<BlockQ8_0>());
    }

    [Fact]
    public void Bits_per_weight_are_llama_cpp_figures()
    {
        Assert.Equal(8.5, TensorTypes.Get(TensorType.Q8_0).BitsPerWeight);
        Assert.Equal(4.5, TensorTypes.Get(TensorType.Q4_0).BitsPerWeight);
        Assert.Equal(2.625, TensorTypes.Get(TensorType.Q2_K).BitsPerWeight);
        Assert.Equal(3.4375, TensorTypes.Get(TensorType.Q3_K).BitsPerWeight);
        Assert.Equal(4.5, TensorTypes.Get(TensorType.Q4_K).BitsPerWeight);
        Assert.Equal(5.5, TensorTypes.Get(TensorType.Q5_K).BitsPerWeight);
        Assert.Equal(6.5625, TensorTypes.Get(TensorType.Q6_K).BitsPerWeight);
    }
}
