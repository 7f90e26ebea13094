using EdgeQuant.Core.Errors;
using EdgeQuant.Models;

namespace EdgeQuant.Compression.Pruning;

/// <summary>
/// What one original transformer block keeps: the block itself (<paramref name="Keep"/> false removes it whole), the
/// KV-head groups it keeps (<paramref name="KvGroups"/>: indices of key/value heads; group g is KV head g with the
/// query heads g·r … g·r + r − 1 that read it, r = heads / kv heads; for multi-head attention a group is one head)
/// and the FFN channels it keeps (<paramref name="Channels"/>: rows of ffn_gate/ffn_up, columns of ffn_down).
/// Indices are of the <i>kept</i> units, ascending and distinct. A removed block's lists are ignored.
/// </summary>
public sealed record LayerPlan(bool Keep, int[] KvGroups, int[] Channels)
{
    /// <summary>Every group and channel of layer <paramref name="layer"/> of <paramref name="config"/>.</summary>
    public static LayerPlan Dense(ModelConfig config, int layer) =>
        new(true, Enumerable.Range(0, config.KvHeadsIn(layer)).ToArray(), Enumerable.Range(0, config.FeedForwardIn(layer)).ToArray());

    /// <summary>The block removed.</summary>
    public static LayerPlan Removed { get; } = new(false, [], []);

    /// <summary>Kept KV groups minus the listed ones (indices of the original groups).</summary>
    public LayerPlan WithoutGroups(IEnumerable<int> groups)
    {
        var drop = groups.ToHashSet();
        return this with { KvGroups = KvGroups.Where(g => !drop.Contains(g)).ToArray() };
    }

    /// <summary>Kept channels minus the listed ones.</summary>
    public LayerPlan WithoutChannels(IEnumerable<int> channels)
    {
        var drop = channels.ToHashSet();
        return this with { Channels = Channels.Where(c => !drop.Contains(c)).ToArray() };
    }
}

/// <summary>A structured pruning plan: one <see cref="LayerPlan"/> per block of the original model, in order.</summary>
public sealed record StructuredPlan(IReadOnlyList<LayerPlan> Layers)
{
    /// <summary>The plan that removes nothing.</summary>
    public static StructuredPlan Dense(ModelConfig config) =>
        new(Enumerable.Range(0, config.BlockCount).Select(l => LayerPlan.Dense(config, l)).ToList());

    /// <summary>Blocks kept.</summary>
    public int KeptLayers => Layers.Count(l => l.Keep);

    /// <summary>
    /// Refuses a plan that does not fit the model: wrong number of layers, no layer kept, a kept layer with no KV group
    /// or no channel left, indices out of range, duplicated or unsorted.
    /// </summary>
    public void Validate(ModelConfig config, string source)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (Layers is null || Layers.Count != config.BlockCount)
            throw new BadInputException($"{source}: the structured plan has {Layers?.Count ?? 0} layers, the model {config.BlockCount}");
        if (KeptLayers == 0) throw new BadInputException($"{source}: the structured plan removes every layer (at least one must stay)");
        for (int l = 0; l < Layers.Count; l++)
        {
            var p = Layers[l] ?? throw new BadInputException($"{source}: the structured plan has no entry for layer {l}");
            if (!p.Keep) continue;
            if (p.KvGroups is null || p.KvGroups.Length == 0)
                throw new BadInputException($"{source}: the structured plan prunes every head of layer {l} (remove the layer instead, or keep a KV group)");
            if (p.Channels is null || p.Channels.Length == 0)
                throw new BadInputException($"{source}: the structured plan prunes every FFN channel of layer {l} (remove the layer instead, or keep a channel)");
            CheckIndices(p.KvGroups, config.KvHeadsIn(l), $"{source}: layer {l} KV group");
            CheckIndices(p.Channels, config.FeedForwardIn(l), $"{source}: layer {l} FFN channel");
        }
    }

    private static void CheckIndices(int[] kept, int count, string what)
    {
        for (int i = 0; i < kept.Length; i++)
        {
            if (kept[i] < 0 || kept[i] >= count) throw new BadInputException($"{what} index {kept[i]} is outside 0..{count - 1}");
            if (i > 0 && kept[i] == kept[i - 1]) throw new BadInputException($"{what} index {kept[i]} is listed twice");
            if (i > 0 && kept[i] < kept[i - 1]) throw new BadInputException($"{what} indices must be ascending ({kept[i - 1]} before {kept[i]})");
        }
    }
}
