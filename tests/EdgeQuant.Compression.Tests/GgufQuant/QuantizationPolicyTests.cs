using EdgeQuant.Compression.GgufQuant;
using EdgeQuant.Core.Errors;
using EdgeQuant.Core.Tensors;

namespace EdgeQuant.Compression.Tests.GgufQuant;

/// <summary>The plan's contract (order, notes, bad input); its type choices are checked against llama.cpp elsewhere.</summary>
public sealed class QuantizationPolicyTests
{
    private static readonly QuantFileType Q4KM = QuantFileTypes.Parse("Q4_K_M");

    [Fact]
    public void PlanKeepsTheInputOrderAndExplainsItsChoices()
    {
        var config = PolicyModels.All["stories260k"];
        var tensors = PolicyModels.Tensors(config);
        var plan = QuantizationPolicy.Plan(config, tensors, Q4KM, new());
        Assert.Equal(tensors.Select(t => t.Name), plan.Tensors.Select(t => t.Name));
        Assert.Same(Q4KM, plan.FileType);
        var norm = plan.Tensors.Single(t => t.Name == "blk.0.attn_norm.weight");
        Assert.Equal((TensorType.F32, false), (norm.Type, norm.Quantize));
        Assert.Contains("1-D", norm.Note);
        var down = plan.Tensors.Single(t => t.Name == "blk.0.ffn_down.weight");
        Assert.Equal((TensorType.F16, false), (down.Type, down.Quantize)); // F16 source, F16 fallback: copied
        Assert.Contains("rows of 172", down.Note);
        var q = plan.Tensors.Single(t => t.Name == "blk.0.attn_q.weight");
        Assert.Equal((TensorType.Q5_0, true), (q.Type, q.Quantize));
        Assert.All(plan.Tensors, t => Assert.False(t.RequiresImatrix));
    }

    [Fact]
    public void LlamaQuantizeOrderSortsBlocksNumerically()
    {
        string[] names = ["blk.10.attn_q.weight", "token_embd.weight", "blk.9.ffn_up.weight", "blk.9.attn_k.weight", "output.weight", "blk.2.x", "output_norm.weight"];
        var order = QuantizationPolicy.LlamaQuantizeOrder(names);
        Assert.Equal(["output.weight", "output_norm.weight", "token_embd.weight", "blk.2.x", "blk.9.attn_k.weight", "blk.9.ffn_up.weight", "blk.10.attn_q.weight"], order.Select(i => names[i]));
        Assert.Equal(12, QuantizationPolicy.BlockIndex("blk.12.attn_q.weight"));
        Assert.Equal(3, QuantizationPolicy.BlockIndex("blk.3x")); // sscanf stores the number before the '.' fails
        Assert.Equal(-1, QuantizationPolicy.BlockIndex("blk.x.3"));
        Assert.Equal(-1, QuantizationPolicy.BlockIndex("output.weight"));
    }

    [Fact]
    public void RowMajorShapesAreRefusedNotMisplanned()
    {
        var config = PolicyModels.All["tinyllama-1.1b"];
        var rowMajor = PolicyModels.Tensors(config).Select(t => (t.Name, t.Shape.Reverse().ToArray(), t.SourceType)).ToList();
        var e = Assert.Throws<BadInputException>(() => QuantizationPolicy.Plan(config, rowMajor, Q4KM, new()));
        Assert.Contains("ggml order", e.Message);
    }

    [Fact]
    public void BadTensorListsAreRefused()
    {
        var config = PolicyModels.All["stories260k"];
        var good = PolicyModels.Tensors(config);
        Assert.Contains("twice", Assert.Throws<BadInputException>(() => QuantizationPolicy.Plan(config, [.. good, good[3]], Q4KM, new())).Message);
        Assert.Contains("5 blocks", Assert.Throws<BadInputException>(() =>
            QuantizationPolicy.Plan(config, [.. good, ("blk.5.attn_q.weight", [64, 64], TensorType.F16)], Q4KM, new())).Message);
        Assert.Throws<BadInputException>(() => QuantizationPolicy.Plan(config, [.. good, ("extra.weight", [64, 0], TensorType.F16)], Q4KM, new()));
        Assert.Throws<BadInputException>(() => QuantizationPolicy.Plan(config, [.. good, ("extra.weight", [], TensorType.F16)], Q4KM, new()));
        // An explicit type the rows do not fit (llama.cpp would abort in ggml_row_size).
        var e = Assert.Throws<BadInputException>(() => QuantizationPolicy.Plan(config, good, Q4KM, new() { OutputTensorType = TensorType.Q4_K }));
        Assert.Contains("output.weight", e.Message);
        Assert.Throws<BadInputException>(() => QuantizationPolicy.Plan(config, good, Q4KM, new() { TokenEmbeddingType = TensorType.Q8_K }));
    }

    [Fact]
    public void Q2_K_SNeedsAnImatrix()
    {
        var config = PolicyModels.All["tinyllama-1.1b"];
        var tensors = PolicyModels.Tensors(config);
        var q2ks = QuantFileTypes.Parse("Q2_K_S");
        var e = Assert.Throws<BadInputException>(() => QuantizationPolicy.Plan(config, tensors, q2ks, new()));
        Assert.Contains("--imatrix", e.Message);
        var plan = QuantizationPolicy.Plan(config, tensors, q2ks, new() { HasImatrix = true });
        Assert.Contains(plan.Tensors, t => t.RequiresImatrix && t.Type == TensorType.Q2_K);
        Assert.DoesNotContain(plan.Tensors, t => t.RequiresImatrix && t.Name is "token_embd.weight" or "output.weight");
    }
}
