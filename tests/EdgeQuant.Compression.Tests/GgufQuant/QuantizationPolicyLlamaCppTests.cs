using EdgeQuant.Compression.GgufQuant;
using EdgeQuant.Core.Tensors;
using EdgeQuant.Models;
using Xunit.Abstractions;

namespace EdgeQuant.Compression.Tests.GgufQuant;

/// <summary>
/// Our plan against llama.cpp's own policy (llama_quant_compute_types on a model built from the same
/// hyperparameters, with the same ggml tensors), for every file type, pure on/off, leave-output on/off, explicit
/// output/embedding types and --tensor-type overrides, on realistic shapes. llama.cpp is given the tensors in its
/// loader's order, as llama_model_quantize walks them; we are given them in our export order.
/// </summary>
public sealed class QuantizationPolicyLlamaCppTests(ITestOutputHelper output)
{
    public static TheoryData<string> Models => new(PolicyModels.All.Keys);

    private static IEnumerable<(string Label, QuantizationPolicyOptions Options)> Variants(ModelConfig c)
    {
        // Explicit types must fit the rows they are given to (llama.cpp aborts otherwise): 32-block types where n_embd
        // allows, F16/BF16 where it does not.
        bool fits32 = c.EmbeddingLength % 32 == 0;
        var outType = fits32 ? TensorType.Q5_0 : TensorType.F16;
        var embType = fits32 ? TensorType.Q8_0 : TensorType.BF16;
        var overrides = new[] { "attn_v=q8_0", @"blk\.0\.ffn_down=q5_k", "ffn_up=q4_k", "output=q4_1", @"blk\.[13]\.attn_(q|qkv)=q6_k" }
            .Select(r => TensorTypeOverride.Parse(r)).ToList();
        // An override on one ffn_down only: the mix rules then skip it, which shifts llama.cpp's ffn_down counter.
        var counterShift = new[] { @"blk\.2\.ffn_down=q8_0" }.Select(r => TensorTypeOverride.Parse(r)).ToList();
        yield return ("default", new());
        yield return ("pure", new() { Pure = true });
        yield return ("leave-output", new() { LeaveOutputTensor = true });
        yield return ("pure+leave-output", new() { Pure = true, LeaveOutputTensor = true });
        yield return ("output+embedding types", new() { OutputTensorType = outType, TokenEmbeddingType = embType });
        yield return ("output type", new() { OutputTensorType = outType });
        yield return ("output type+leave-output", new() { OutputTensorType = outType, LeaveOutputTensor = true });
        yield return ("overrides", new() { Overrides = overrides });
        yield return ("overrides+pure", new() { Overrides = overrides, Pure = true });
        yield return ("counter shift", new() { Overrides = counterShift });
    }

    [LlamaCppTheory]
    [MemberData(nameof(Models))]
    public void EveryFileTypeAndOptionChoosesLlamaCppsTypes(string model)
    {
        var config = PolicyModels.All[model];
        var tensors = PolicyModels.Tensors(config);
        var order = QuantizationPolicy.LlamaQuantizeOrder(tensors.Select(t => t.Name).ToList());
        var llamaOrder = order.Select(i => tensors[i]).ToList();
        var peer = LlamaQuantPeer.Instance;

        var mismatches = new List<string>();
        int compared = 0, changedByMix = 0, fallbacks = 0;
        foreach (var fileType in QuantFileTypes.All.Where(t => !t.IsAlias))
        {
            foreach (var (label, baseOptions) in Variants(config))
            {
                // Q2_K_S needs an imatrix before llama_model_quantize will run; the type choice does not depend on it.
                var options = fileType.Name == "Q2_K_S" ? baseOptions with { HasImatrix = true } : baseOptions;
                var plan = QuantizationPolicy.Plan(config, tensors, fileType, options);
                var theirs = peer.ComputeTypes(config, llamaOrder, fileType.LlamaFtype, baseOptions);
                for (int j = 0; j < order.Count; j++)
                {
                    var ours = plan.Tensors[order[j]];
                    var (name, shape, _) = tensors[order[j]];
                    Assert.Equal(name, ours.Name);
                    bool allows = QuantizationPolicy.AllowsQuantization(name, shape, options.LeaveOutputTensor);
                    if (ours.Type != theirs.Types[j] || allows != theirs.Allows[j])
                        mismatches.Add($"{fileType.Name} {label} {name}: ours {ours.Type} (allows {allows}), llama.cpp {theirs.Types[j]} (allows {theirs.Allows[j]})");
                    if (ours.Quantize && ours.Type != fileType.DefaultType) changedByMix++;
                    compared++;
                }
                if (plan.Fallbacks != theirs.Fallbacks)
                    mismatches.Add($"{fileType.Name} {label}: {plan.Fallbacks} fallbacks, llama.cpp warned of {theirs.Fallbacks}");
                fallbacks += plan.Fallbacks;
            }
        }
        output.WriteLine($"{model}: {compared} tensor choices compared, {changedByMix} differ from the file type's default type, {fallbacks} fallbacks, {mismatches.Count} mismatches");
        Assert.True(mismatches.Count == 0, string.Join("\n", mismatches.Take(30)));
        // Not vacuous: the mix rules did change types on every model.
        Assert.True(changedByMix > 0);
    }

    [LlamaCppFact]
    public void DefaultTypesAreLlamaCpps()
    {
        foreach (var t in QuantFileTypes.All)
            Assert.Equal((int)t.DefaultType, LlamaQuantPeer.Instance.DefaultType(t.LlamaFtype));
    }

    [LlamaCppFact]
    public void WhichTensorsMayBeQuantizedIsLlamaCpps()
    {
        // Names beyond our architectures' too: the rule is by name and rank, whatever the model.
        var config = PolicyModels.All["stories260k"];
        string[] names =
        [
            "token_embd.weight", "output.weight", "output_norm.weight", "position_embd.weight", "token_types.weight",
            "blk.0.attn_norm.weight", "blk.0.attn_q.weight", "blk.0.attn_q.bias", "blk.0.ffn_gate_inp.weight", "blk.0.ssm_conv1d.weight",
            "blk.0.attn_rel_b.weight", "v.position_embd.weight", "blk.0.altup_proj.weight", "rope_freqs.weight", "abcde", "abcdef",
            "blk.0.weight_x", "blk.0.attn_q_norm.weight", "per_layer_model_proj.weight", "blk.0.time_mix_w1.weight",
        ];
        var shapes = new long[][] { [64, 32], [64], [64, 1], [1, 64], [64, 1, 3], [64, 2, 1, 1] };
        foreach (bool leave in new[] { false, true })
            foreach (var shape in shapes)
            {
                var list = names.Select(n => (n, shape, TensorType.F16)).ToList();
                var theirs = LlamaQuantPeer.Instance.ComputeTypes(config, list, QuantFileTypes.Parse("Q8_0").LlamaFtype, new() { LeaveOutputTensor = leave });
                for (int i = 0; i < names.Length; i++)
                    Assert.True(theirs.Allows[i] == QuantizationPolicy.AllowsQuantization(names[i], shape, leave),
                        $"{names[i]} [{string.Join(", ", shape)}] leave-output {leave}: llama.cpp says {theirs.Allows[i]}");
            }
    }
}
