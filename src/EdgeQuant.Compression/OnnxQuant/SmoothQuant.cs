using System.Runtime.InteropServices;
using EdgeQuant.Core.Errors;
using EdgeQuant.Core.Tensors;
using EdgeQuant.Models;
using EdgeQuant.Models.Engine;

namespace EdgeQuant.Compression.OnnxQuant;

/// <summary>
/// SmoothQuant (Xiao et al. 2023): moves activation outliers into the weights before static INT8 quantization. For each
/// input of the layers that follow a norm (attn q/k/v or GPT-2's fused qkv after attn_norm; ffn gate/up after
/// ffn_norm), channel j is divided by s_j = max|X_j|^α / max|W_j|^(1−α) and the weights' column j multiplied by it,
/// where max|X_j| comes from calibration and max|W_j| is taken over all the layers sharing that input. The division
/// is folded into the norm's weight (and bias, for LayerNorm), so the model computes the same function in exact
/// arithmetic; only the balance of magnitudes between activations and weights changes.
/// </summary>
/// <remarks>
/// attn_output and ffn_down are not smoothed: their inputs come from attention and the activation function, not from a
/// per-channel affine map one could fold into. The LM head is not smoothed either (its norm feeds it alone, but a tied
/// head shares its matrix with the embeddings).
/// </remarks>
public static class SmoothQuant
{
    /// <summary>One norm and the linear layers that read its output.</summary>
    private sealed record Group(string Hook, string Norm, string[] Weights);

    /// <summary>
    /// The smoothed model: new F32 tensors for the changed norms and weights, the rest read from
    /// <paramref name="model"/>, which must stay open while the result is used.
    /// </summary>
    public static Model Apply(Model model, IReadOnlyList<int[]> sequences, double alpha, int threads, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (!(alpha >= 0 && alpha <= 1)) throw new BadInputException($"--smooth-alpha: {alpha} must be between 0 and 1");
        var groups = Groups(model);
        if (groups.Count == 0) throw new BadInputException($"{model.Provenance.SourcePath}: no norm-fed linear layers to smooth");

        var engine = CalibrationRun.LoadEngine(model, sequences, threads, cancellationToken);
        var hook = new AbsMaxHook(groups.Select(g => g.Hook).ToHashSet(StringComparer.Ordinal), model.Provenance.SourcePath);
        CalibrationRun.Run(engine, hook, sequences, needOutput: false, null, cancellationToken);
        return Apply(model, groups.ToDictionary(g => g.Hook, g => hook.Max.TryGetValue(g.Hook, out var m) ? m
            : throw new InternalFailureException($"SmoothQuant: the engine never fed layer '{g.Hook}'")), alpha);
    }

    /// <summary>
    /// Smooths with given per-channel activation maxima (hook name → max|X_j|, e.g. from an earlier calibration).
    /// Channels whose activation or weight maximum is 0 keep s = 1.
    /// </summary>
    public static Model Apply(Model model, IReadOnlyDictionary<string, float[]> activationMax, double alpha)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(activationMax);
        if (!(alpha >= 0 && alpha <= 1)) throw new BadInputException($"--smooth-alpha: {alpha} must be between 0 and 1");
        string src = model.Provenance.SourcePath;
        var replaced = new Dictionary<string, ModelTensor>(StringComparer.Ordinal);
        foreach (var g in Groups(model))
        {
            if (!activationMax.TryGetValue(g.Hook, out var xmax)) throw new BadInputException($"SmoothQuant: no activation maxima for '{g.Hook}'");
            int d = xmax.Length;
            var weights = g.Weights.Select(n => (Name: n, Tensor: model.Get(n))).ToList();
            var data = new List<float[]>();
            var wmax = new float[d];
            foreach (var (name, t) in weights)
            {
                if (t.Shape.Length != 2 || t.Shape[1] != d)
                    throw new BadInputException($"{src}: tensor '{name}' has shape [{string.Join(", ", t.Shape)}], not [*, {d}] as its input");
                var w = t.ToFloat32();
                int rows = (int)t.Shape[0];
                for (int r = 0; r < rows; r++)
                {
                    var row = w.AsSpan(r * d, d);
                    for (int j = 0; j < d; j++) wmax[j] = Math.Max(wmax[j], Math.Abs(row[j]));
                }
                data.Add(w);
            }
            var s = new float[d];
            for (int j = 0; j < d; j++)
            {
                double v = xmax[j] > 0 && wmax[j] > 0 ? Math.Pow(xmax[j], alpha) / Math.Pow(wmax[j], 1 - alpha) : 1;
                // Far-off factors would push norm weights or weight columns towards under/overflow for nothing.
                s[j] = double.IsFinite(v) && v > 0 ? (float)Math.Clamp(v, 1e-5, 1e5) : 1f;
            }
            for (int i = 0; i < weights.Count; i++)
            {
                var w = data[i];
                int rows = w.Length / d;
                for (int r = 0; r < rows; r++)
                {
                    var row = w.AsSpan(r * d, d);
                    for (int j = 0; j < d; j++) row[j] *= s[j];
                }
                replaced[weights[i].Name] = F32(weights[i].Tensor, w);
            }
            foreach (var suffix in new[] { ".weight", ".bias" })
            {
                if (model.Find(g.Norm + suffix) is not { } t) continue;
                if (t.ElementCount != d) throw new BadInputException($"{src}: tensor '{t.Name}' has {t.ElementCount} elements, not {d}");
                var v = t.ToFloat32();
                for (int j = 0; j < d; j++) v[j] /= s[j];
                replaced[t.Name] = F32(t, v);
            }
        }
        var tensors = model.Tensors.Select(t => replaced.GetValueOrDefault(t.Name, t)).ToList();
        return new Model(model.Config, tensors, model.Tokenizer, model.Provenance, model.Metadata);
    }

    private static List<Group> Groups(Model model)
    {
        var groups = new List<Group>();
        for (int l = 0; l < model.Config.BlockCount; l++)
        {
            string p = $"blk.{l}.";
            if (model.Find(p + "attn_norm.weight") is not null)
            {
                if (model.Find(p + "attn_qkv.weight") is not null) groups.Add(new(p + "attn_qkv", p + "attn_norm", [p + "attn_qkv.weight"]));
                else if (model.Find(p + "attn_q.weight") is not null)
                    groups.Add(new(p + "attn_q", p + "attn_norm", [p + "attn_q.weight", p + "attn_k.weight", p + "attn_v.weight"]));
            }
            if (model.Find(p + "ffn_norm.weight") is not null && model.Find(p + "ffn_up.weight") is not null)
            {
                bool gated = model.Find(p + "ffn_gate.weight") is not null;
                groups.Add(gated ? new(p + "ffn_gate", p + "ffn_norm", [p + "ffn_gate.weight", p + "ffn_up.weight"])
                    : new(p + "ffn_up", p + "ffn_norm", [p + "ffn_up.weight"]));
            }
        }
        return groups;
    }

    private static ModelTensor F32(ModelTensor source, float[] data) => new()
    {
        Name = source.Name,
        Shape = (long[])source.Shape.Clone(),
        Type = TensorType.F32,
        SourceName = source.SourceName,
        Storage = new ArrayTensorStorage(MemoryMarshal.AsBytes(data.AsSpan()).ToArray()),
    };

    /// <summary>Per-channel max |x| of the chosen layers' inputs.</summary>
    private sealed class AbsMaxHook(HashSet<string> layers, string source) : ILinearInputHook
    {
        public Dictionary<string, float[]> Max { get; } = new(StringComparer.Ordinal);

        public void OnInput(string layer, Span<float> input, int rows, int cols)
        {
            if (rows <= 0 || !layers.Contains(layer)) return;
            if (!Max.TryGetValue(layer, out var m)) Max[layer] = m = new float[cols];
            for (int r = 0; r < rows; r++)
            {
                var row = input.Slice(r * cols, cols);
                for (int j = 0; j < cols; j++)
                {
                    float a = Math.Abs(row[j]);
                    if (!float.IsFinite(a)) throw new BadInputException($"{source}: SmoothQuant calibration: non-finite activations reached '{layer}'");
                    if (a > m[j]) m[j] = a;
                }
            }
        }
    }
}
