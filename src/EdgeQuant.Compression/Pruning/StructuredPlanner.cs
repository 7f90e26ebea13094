using System.Globalization;
using EdgeQuant.Core.Errors;
using EdgeQuant.Models;

namespace EdgeQuant.Compression.Pruning;

/// <summary>The unit a structured plan removes.</summary>
public enum StructuredMethod
{
    /// <summary>KV-head groups (a KV head and its query heads).</summary>
    Heads,

    /// <summary>FFN intermediate channels.</summary>
    Channels,

    /// <summary>Whole transformer blocks.</summary>
    Layers,
}

/// <summary>A plan chosen for a parameter target, with what it achieves.</summary>
public sealed record ParameterTargetPlan(StructuredPlan Plan, string Description, long ParametersBefore, long ParametersAfter)
{
    /// <summary>Share of the model's parameters removed.</summary>
    public double Removed => 1 - (double)ParametersAfter / ParametersBefore;
}

/// <summary>
/// Plans from <see cref="StructuredImportance"/> scores: each layer removes its least important units. Uniform by
/// default (the same count in every layer), so the pruned config stays standard and every runtime loads it.
/// </summary>
public static class StructuredPlanner
{
    public static StructuredMethod ParseMethod(string text) => text.ToLowerInvariant() switch
    {
        "heads" => StructuredMethod.Heads,
        "channels" => StructuredMethod.Channels,
        "layers" => StructuredMethod.Layers,
        _ => throw new BadInputException($"--method: '{text}' is not one of heads, channels, layers"),
    };

    public static string Name(StructuredMethod m) => m.ToString().ToLowerInvariant();

    /// <summary>True when <paramref name="text"/> names structured units: heads, channels, layers, or a comma-separated mix ("heads,channels").</summary>
    public static bool TryParseMethods(string text, out IReadOnlyList<StructuredMethod> methods)
    {
        ArgumentNullException.ThrowIfNull(text);
        var parts = text.Split(',', StringSplitOptions.TrimEntries);
        var list = new List<StructuredMethod>();
        foreach (var part in parts)
        {
            StructuredMethod? m = part.ToLowerInvariant() switch
            {
                "heads" => StructuredMethod.Heads,
                "channels" => StructuredMethod.Channels,
                "layers" => StructuredMethod.Layers,
                _ => null,
            };
            if (m is null)
            {
                methods = [];
                if (list.Count > 0 || parts.Length > 1)
                    throw new BadInputException($"--method: '{part}' in '{text}' is not one of heads, channels, layers");
                return false;
            }
            if (list.Contains(m.Value)) throw new BadInputException($"--method: '{part}' is listed twice in '{text}'");
            list.Add(m.Value);
        }
        methods = list;
        return true;
    }

    /// <summary>
    /// <see cref="Uniform(ModelConfig, StructuredImportance, StructuredMethod, double)"/> for several unit kinds at once:
    /// each removes the same share of its units. With <paramref name="channelMultiple"/> above 1, each layer keeps the
    /// multiple of it nearest to the FFN width the share leaves (at least one multiple; llama.cpp's and ORT's kernels run
    /// odd widths far slower, e.g. 1,277 channels 0.74× dense against 1,280 at 1.12×).
    /// </summary>
    public static StructuredPlan Uniform(ModelConfig c, StructuredImportance importance, IReadOnlyCollection<StructuredMethod> methods, double sparsity,
        int channelMultiple = 1)
    {
        ArgumentNullException.ThrowIfNull(c);
        ArgumentNullException.ThrowIfNull(methods);
        SparsityRule.Check(sparsity);
        if (methods.Count == 0) throw new BadInputException("structured pruning needs at least one of heads, channels, layers");
        CheckChannelMultiple(channelMultiple);
        var groups = Enumerable.Range(0, c.BlockCount).Select(l => methods.Contains(StructuredMethod.Heads) ? (int)SparsityRule.PrunedUpTo(sparsity, c.KvHeadsIn(l)) : 0).ToArray();
        var channels = Enumerable.Range(0, c.BlockCount).Select(l => methods.Contains(StructuredMethod.Channels)
            ? AlignedRemoval(c.FeedForwardIn(l), (int)SparsityRule.PrunedUpTo(sparsity, c.FeedForwardIn(l)), channelMultiple, l) : 0).ToArray();
        int layers = methods.Contains(StructuredMethod.Layers) ? (int)SparsityRule.PrunedUpTo(sparsity, c.BlockCount) : 0;
        return Combine(c, importance, groups, channels, layers, sparsity);
    }

    /// <summary>Refuses a channel multiple below 1 (the widths it could not fit are refused per layer when planning).</summary>
    public static void CheckChannelMultiple(int channelMultiple)
    {
        if (channelMultiple < 1) throw new BadInputException($"--channel-multiple: {channelMultiple} must be positive");
    }

    /// <summary>Channels to remove so the kept width is the multiple of <paramref name="multiple"/> nearest to ff − removed.</summary>
    internal static int AlignedRemoval(int ff, int removed, int multiple, int layer)
    {
        if (multiple == 1) return removed;
        if (multiple >= ff)
            throw new BadInputException($"--channel-multiple {multiple} is not below layer {layer}'s FFN width {ff}");
        int kept = ff - removed;
        int aligned = (int)Math.Round((double)kept / multiple, MidpointRounding.AwayFromZero) * multiple;
        aligned = Math.Clamp(aligned, multiple, ff / multiple * multiple);
        return ff - aligned;
    }

    /// <summary>
    /// Removes round(<paramref name="sparsity"/> · units) of the prunable units: KV groups or channels of every layer (each
    /// layer its own lowest-scoring ones), or blocks (the lowest block influence). Refuses a share that would remove
    /// every unit of a layer or every layer.
    /// </summary>
    public static StructuredPlan Uniform(ModelConfig c, StructuredImportance importance, StructuredMethod method, double sparsity)
    {
        ArgumentNullException.ThrowIfNull(c);
        ArgumentNullException.ThrowIfNull(importance);
        SparsityRule.Check(sparsity);
        CheckShape(c, importance);
        switch (method)
        {
            case StructuredMethod.Heads:
                {
                    var counts = Enumerable.Range(0, c.BlockCount).Select(l => (int)SparsityRule.PrunedUpTo(sparsity, c.KvHeadsIn(l))).ToArray();
                    return Combine(c, importance, counts, new int[c.BlockCount], 0, sparsity);
                }
            case StructuredMethod.Channels:
                {
                    var counts = Enumerable.Range(0, c.BlockCount).Select(l => (int)SparsityRule.PrunedUpTo(sparsity, c.FeedForwardIn(l))).ToArray();
                    return Combine(c, importance, new int[c.BlockCount], counts, 0, sparsity);
                }
            default:
                return Combine(c, importance, new int[c.BlockCount], new int[c.BlockCount], (int)SparsityRule.PrunedUpTo(sparsity, c.BlockCount), sparsity);
        }
    }

    /// <summary>
    /// Removes, in each layer l, its <paramref name="groups"/>[l] least important KV groups and <paramref name="channels"/>[l]
    /// least important channels, and the <paramref name="layers"/> blocks of lowest influence.
    /// </summary>
    public static StructuredPlan Combine(ModelConfig c, StructuredImportance importance, int[] groups, int[] channels, int layers, double? sparsity = null)
    {
        ArgumentNullException.ThrowIfNull(c);
        ArgumentNullException.ThrowIfNull(importance);
        CheckShape(c, importance);
        ArgumentNullException.ThrowIfNull(groups);
        ArgumentNullException.ThrowIfNull(channels);
        if (groups.Length != c.BlockCount || channels.Length != c.BlockCount)
            throw new BadInputException($"structured pruning: {groups.Length} group counts and {channels.Length} channel counts for {c.BlockCount} layers");
        if (layers < 0 || groups.Any(g => g < 0) || channels.Any(x => x < 0))
            throw new BadInputException("structured pruning: negative unit counts");
        string share = sparsity is { } s ? $" (--sparsity {s.ToString(CultureInfo.InvariantCulture)})" : "";
        if (layers >= c.BlockCount) throw new BadInputException($"structured pruning would remove all {c.BlockCount} layers{share}");
        var removedLayers = Lowest(importance.Layers, layers).ToHashSet();
        var result = new LayerPlan[c.BlockCount];
        for (int l = 0; l < c.BlockCount; l++)
        {
            if (removedLayers.Contains(l))
            {
                result[l] = LayerPlan.Removed;
                continue;
            }
            if (groups[l] >= c.KvHeadsIn(l))
                throw new BadInputException($"structured pruning would prune every head of layer {l} ({c.KvHeadsIn(l)} KV groups){share}");
            if (channels[l] >= c.FeedForwardIn(l))
                throw new BadInputException($"structured pruning would prune every FFN channel of layer {l} ({c.FeedForwardIn(l)}){share}");
            result[l] = LayerPlan.Dense(c, l).WithoutGroups(Lowest(importance.Groups[l], groups[l])).WithoutChannels(Lowest(importance.Channels[l], channels[l]));
        }
        return new StructuredPlan(result);
    }

    /// <summary>
    /// Picks a uniform plan removing about <paramref name="target"/> of the model's parameters with the given units. Heads,
    /// channels or layers alone: the count (per layer, or of layers) whose removed share is closest. Heads and channels
    /// together: for each number of KV groups removed per layer, the channel count that reaches the target, keeping the
    /// combination whose head and channel shares are closest (pruning both about equally).
    /// </summary>
    /// <param name="channelMultiple">
    /// Keep a multiple of this many FFN channels per layer (1: any count). Runtimes' fast matrix kernels want aligned
    /// widths (llama.cpp's F32 SGEMM needs the inner dimension a multiple of its vector width, and GGUF block
    /// quantization needs ffn_down rows a multiple of 32 or 256), so an odd width can be slower than the dense model.
    /// </param>
    public static ParameterTargetPlan ForParameterTarget(Model model, StructuredImportance importance, double target, IReadOnlyCollection<StructuredMethod> methods,
        int channelMultiple = 1)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(methods);
        if (!(target > 0 && target < 1)) throw new BadInputException($"--target-params: {target.ToString(CultureInfo.InvariantCulture)} is outside (0, 1)");
        if (methods.Count == 0) throw new BadInputException("a parameter target needs at least one of heads, channels, layers");
        var c = model.Config;
        if (c.HasPerLayerWidths) throw new BadInputException($"{model.Provenance.SourcePath}: parameter targets plan uniform widths; the model's layers already differ");
        CheckShape(c, importance);
        long before = model.ParameterCount;
        int blocks = c.BlockCount, kv = c.HeadCountKv, ff = c.FeedForwardLength;
        if (channelMultiple < 1 || channelMultiple >= ff)
            throw new BadInputException($"channel multiple {channelMultiple} is outside 1..{ff - 1}");
        // Removable channel counts, ascending: none, then every count leaving a positive multiple of channelMultiple.
        var removable = new List<int> { 0 };
        for (int kept = (ff - 1) / channelMultiple * channelMultiple; kept >= channelMultiple; kept -= channelMultiple) removable.Add(ff - kept);
        int steps = removable.Count - 1;
        long After(int g, int ch, int ly) => StructuredPruner.ParameterCount(model, Combine(c, importance, Fill(blocks, g), Fill(blocks, ch), ly));
        double Share(long after) => 1 - (double)after / before;

        (int G, int Ch, int Ly) best;
        bool heads = methods.Contains(StructuredMethod.Heads), channels = methods.Contains(StructuredMethod.Channels), layers = methods.Contains(StructuredMethod.Layers);
        if (layers && !heads && !channels)
            best = (0, 0, Closest(0, blocks - 1, n => Share(After(0, 0, n)), target));
        else if (heads && !channels && !layers)
            best = (Closest(0, kv - 1, g => Share(After(g, 0, 0)), target), 0, 0);
        else if (channels && !heads && !layers)
            best = (0, removable[Closest(0, steps, i => Share(After(0, removable[i], 0)), target)], 0);
        else if (heads && channels && !layers)
        {
            best = (0, removable[Closest(0, steps, i => Share(After(0, removable[i], 0)), target)], 0);
            double bestGap = double.MaxValue;
            for (int g = 0; g < kv; g++)
            {
                if (Share(After(g, 0, 0)) > target + 1e-12) break;
                int ch = removable[Closest(0, steps, i => Share(After(g, removable[i], 0)), target)];
                double gap = Math.Abs((double)g / kv - (double)ch / ff);
                if (gap < bestGap)
                {
                    bestGap = gap;
                    best = (g, ch, 0);
                }
            }
        }
        else throw new BadInputException("parameter targets combine heads and channels, or use one unit alone; layers do not mix");

        var plan = Combine(c, importance, Fill(blocks, best.G), Fill(blocks, best.Ch), best.Ly);
        var parts = new List<string>();
        if (best.G > 0) parts.Add($"{best.G}/{kv} KV groups per layer");
        if (best.Ch > 0) parts.Add($"{best.Ch}/{ff} FFN channels per layer");
        if (best.Ly > 0) parts.Add($"{best.Ly}/{blocks} layers");
        return new ParameterTargetPlan(plan, parts.Count == 0 ? "nothing" : string.Join(", ", parts), before, StructuredPruner.ParameterCount(model, plan));
    }

    /// <summary>The n indices with the lowest scores (ties: the lower index first).</summary>
    public static IEnumerable<int> Lowest(double[] scores, int n) =>
        Enumerable.Range(0, scores.Length).OrderBy(i => scores[i]).ThenBy(i => i).Take(n);

    /// <summary>The x in [lo, hi] whose share f(x) (non-decreasing in x) is closest to the target, by bisection.</summary>
    private static int Closest(int lo, int hi, Func<int, double> f, double target)
    {
        int a = lo, b = hi;
        while (a < b)
        {
            int mid = (a + b) / 2;
            if (f(mid) < target) a = mid + 1;
            else b = mid;
        }
        // a is the first x reaching the target (or hi); its predecessor may be closer.
        if (a > lo && Math.Abs(f(a - 1) - target) <= Math.Abs(f(a) - target)) return a - 1;
        return a;
    }

    private static int[] Fill(int n, int value) => Enumerable.Repeat(value, n).ToArray();

    private static void CheckShape(ModelConfig c, StructuredImportance imp)
    {
        bool ok = imp.Layers.Length == c.BlockCount && imp.Groups.Length == c.BlockCount && imp.Channels.Length == c.BlockCount;
        for (int l = 0; ok && l < c.BlockCount; l++) ok = imp.Groups[l].Length == c.KvHeadsIn(l) && imp.Channels[l].Length == c.FeedForwardIn(l);
        if (!ok) throw new BadInputException("structured importance scores do not match the model's layers, KV groups or FFN channels");
    }
}
