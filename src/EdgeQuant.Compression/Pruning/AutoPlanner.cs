using System.Globalization;
using EdgeQuant.Core.Errors;
using EdgeQuant.Models;

namespace EdgeQuant.Compression.Pruning;

/// <summary>How <see cref="AutoPlanner"/> chooses.</summary>
public sealed record AutoPlanOptions
{
    /// <summary>
    /// Keep every kept layer at the same number of KV groups and FFN channels (units are then removed from all kept
    /// layers at once), so the pruned config stays a standard uniform one; false lets layers differ.
    /// </summary>
    public bool Uniform { get; init; }

    /// <summary>Allow removing whole layers.</summary>
    public bool Layers { get; init; } = true;

    /// <summary>Allow removing KV-head groups.</summary>
    public bool Heads { get; init; } = true;

    /// <summary>Allow removing FFN channels.</summary>
    public bool Channels { get; init; } = true;

    /// <summary>The report's path, for error messages.</summary>
    public string ReportSource { get; init; } = "sensitivity report";
}

/// <summary>A plan and what the planner expects of it.</summary>
/// <param name="Parameters">The pruned model's parameter count (counted from tensor shapes).</param>
/// <param name="EstimatedKld">Sum of the measured KLDs of the removed units (an additive estimate; the real figure needs a measurement).</param>
/// <param name="Steps">What was removed, in order.</param>
public sealed record AutoPlanResult(StructuredPlan Plan, long Parameters, long Target, double EstimatedKld, IReadOnlyList<string> Steps);

/// <summary>
/// Turns a <see cref="SensitivityReport"/> into a <see cref="StructuredPlan"/> that brings the model to a parameter
/// budget: greedily, the step with the smallest measured KLD per parameter saved is taken until the count is at or
/// below the target. Steps: a layer's cheapest remaining KV group (its own measured KLD); the next channel level of a
/// layer (the increase of the measured KLD from the current level to the next, the channels taken in the report's
/// importance order); a whole layer (its measured KLD minus what the layer's removed groups and channels already
/// cost). The final step is the cheapest single step that reaches the target, and it may stop part-way through a
/// channel level (cost interpolated) so the result lands close to the target. Costs are assumed additive, which they
/// are only roughly; the estimate is reported, not trusted.
/// </summary>
/// <remarks>
/// Never removes the last KV group or channel of a kept layer, nor the last layer; KV groups keep their query heads
/// (GQA). Channel removal stops at the largest measured level (beyond it nothing was measured).
/// </remarks>
public static class AutoPlanner
{
    public static StructuredPlan Plan(Model model, SensitivityReport report, long targetParams, AutoPlanOptions? options = null) =>
        PlanWithDetails(model, report, targetParams, options).Plan;

    public static AutoPlanResult PlanWithDetails(Model model, SensitivityReport report, long targetParams, AutoPlanOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(report);
        var o = options ?? new AutoPlanOptions();
        var c = model.Config;
        CheckShape(model, report, o.ReportSource);
        long current = model.ParameterCount;
        var inv = CultureInfo.InvariantCulture;
        if (targetParams >= current)
            throw new BadInputException(string.Format(inv, "--target-params: {0:N0} is not below the model's {1:N0} parameters: nothing to remove", targetParams, current));
        if (targetParams <= 0) throw new BadInputException(string.Format(inv, "--target-params: {0:N0} must be positive", targetParams));
        if (o.Uniform && c.HasPerLayerWidths)
            throw new BadInputException($"{model.Provenance.SourcePath}: --uniform needs a model whose layers all have the same widths");

        var layers = Enumerable.Range(0, c.BlockCount).Select(l => new LayerState(model, report, l, o)).ToArray();
        long minimum = Minimum(layers, current, o);
        if (targetParams < minimum)
            throw new BadInputException(string.Format(inv,
                "--target-params: {0:N0} is below the minimum this report can reach, {1:N0} ({2:P1} of {3:N0}; at least one layer with one KV group and the channels left after the largest measured level{4})",
                targetParams, minimum, (double)minimum / current, current, o.Layers ? "" : ", no layer removed"));

        long parameters = current;
        double cost = 0;
        var steps = new List<string>();
        while (parameters > targetParams)
        {
            var candidates = Candidates(layers, o).ToList();
            if (candidates.Count == 0)
                throw new BadInputException(string.Format(inv, "--target-params: {0:N0} cannot be reached; the planner stopped at {1:N0}", targetParams, parameters));
            var best = candidates.MinBy(x => x.Ratio)!;
            if (parameters - best.Saved <= targetParams)
            {
                long need = parameters - targetParams;
                // Last step: the cheapest way to reach the target in one move (partial channel levels included).
                best = candidates.Where(x => x.Saved >= need).Concat(Partials(layers, o, need)).MinBy(x => (x.Cost, x.Saved))!;
            }
            best.Apply();
            parameters -= best.Saved;
            cost += best.Cost;
            steps.Add(string.Format(inv, "{0} (-{1:N0} params, +{2:G4} KLD)", best.What, best.Saved, best.Cost));
        }

        var plan = new StructuredPlan(layers.Select(s => s.ToPlan()).ToList());
        plan.Validate(c, model.Provenance.SourcePath);
        return new AutoPlanResult(plan, parameters, targetParams, cost, steps);
    }

    /// <summary>Parses <c>N</c> (parameters, with optional K/M/B suffix) or <c>P%</c> (percent of the model's parameters removed).</summary>
    public static long ParseTarget(string text, long modelParameters)
    {
        ArgumentNullException.ThrowIfNull(text);
        var t = text.Trim();
        var inv = CultureInfo.InvariantCulture;
        if (t.EndsWith('%'))
        {
            if (!double.TryParse(t[..^1], NumberStyles.Float, inv, out double pct) || !(pct > 0 && pct < 100))
                throw new BadInputException($"--target-params: '{text}' is not a percentage of parameters to remove in (0, 100)");
            return (long)Math.Round(modelParameters * (1 - pct / 100), MidpointRounding.AwayFromZero);
        }
        double scale = 1;
        char last = t.Length > 0 ? char.ToUpperInvariant(t[^1]) : ' ';
        if (last is 'K' or 'M' or 'B')
        {
            scale = last == 'K' ? 1e3 : last == 'M' ? 1e6 : 1e9;
            t = t[..^1];
        }
        if (!double.TryParse(t, NumberStyles.Float, inv, out double v) || !double.IsFinite(v) || v * scale < 1 || v * scale > long.MaxValue / 2)
            throw new BadInputException($"--target-params: '{text}' is not a parameter count (N, 12.5M) or a percentage to remove (25%)");
        return (long)Math.Round(v * scale, MidpointRounding.AwayFromZero);
    }

    private static void CheckShape(Model model, SensitivityReport report, string source)
    {
        var c = model.Config;
        var m = report.Model;
        if (m.Layers != c.BlockCount || m.HeadDim != c.HeadDim)
            throw new BadInputException($"{source}: measured on a model with {m.Layers} layers (head size {m.HeadDim}), not {model.Provenance.SourcePath}'s {c.BlockCount} ({c.HeadDim})");
        for (int l = 0; l < c.BlockCount; l++)
            if (m.Heads[l] != c.HeadsIn(l) || m.KvHeads[l] != c.KvHeadsIn(l) || m.Ffn[l] != c.FeedForwardIn(l))
                throw new BadInputException($"{source}: layer {l} had {m.Heads[l]}/{m.KvHeads[l]} heads and {m.Ffn[l]} channels, {model.Provenance.SourcePath} has {c.HeadsIn(l)}/{c.KvHeadsIn(l)} and {c.FeedForwardIn(l)}");
    }

    private static long Minimum(LayerState[] layers, long current, AutoPlanOptions o)
    {
        // Each layer pruned as far as its units go; then, if every layer could go, the cheapest-to-keep one stays.
        long prunable = layers.Sum(s => s.LayerParams - s.MinimumParams);
        long min = current - prunable;
        if (o.Layers && layers.All(s => s.CanRemoveLayer))
            min -= layers.Sum(s => s.MinimumParams) - layers.Min(s => s.MinimumParams);
        else if (o.Layers)
            min -= layers.Where(s => s.CanRemoveLayer).Sum(s => s.MinimumParams);
        return min;
    }

    private sealed record Candidate(string What, long Saved, double Cost, Action Apply)
    {
        public double Ratio => Saved > 0 ? Math.Max(0, Cost) / Saved : double.PositiveInfinity;
    }

    private static IEnumerable<Candidate> Candidates(LayerState[] layers, AutoPlanOptions o)
    {
        var kept = layers.Where(s => s.Kept).ToArray();
        if (o.Layers && kept.Length > 1)
            foreach (var s in kept.Where(s => s.CanRemoveLayer))
                yield return new Candidate($"layer {s.Layer}", s.RemainingParams, s.LayerKld - s.Cost, s.RemoveLayer);
        if (o.Uniform)
        {
            if (o.Heads && kept.All(s => s.NextGroup is not null))
                yield return new Candidate("one KV group in every layer", kept.Sum(s => s.GroupParams), kept.Sum(s => s.NextGroup!.Value.Kld),
                    () => { foreach (var s in kept) s.RemoveNextGroup(); });
            if (o.Channels && kept.All(s => s.NextLevel is not null) && kept.Select(s => s.NextLevel!.Value.Channels).Distinct().Count() == 1)
            {
                int to = kept[0].NextLevel!.Value.Channels;
                yield return new Candidate($"FFN: {to} channels removed in every layer", kept.Sum(s => s.ChannelSaving(to)), kept.Sum(s => s.ChannelCost(to)),
                    () => { foreach (var s in kept) s.RemoveChannels(to); });
            }
            yield break;
        }
        foreach (var s in kept)
        {
            if (o.Heads && s.NextGroup is { } g)
                yield return new Candidate($"layer {s.Layer} KV group {g.Group}", s.GroupParams, g.Kld, s.RemoveNextGroup);
            if (o.Channels && s.NextLevel is { } level)
                yield return new Candidate($"layer {s.Layer} FFN: {level.Channels} channels removed", s.ChannelSaving(level.Channels), s.ChannelCost(level.Channels),
                    () => s.RemoveChannels(level.Channels));
        }
    }

    /// <summary>Removing only as many more channels as the target needs, within the next level.</summary>
    private static IEnumerable<Candidate> Partials(LayerState[] layers, AutoPlanOptions o, long need)
    {
        if (!o.Channels) yield break;
        var kept = layers.Where(s => s.Kept).ToArray();
        if (o.Uniform)
        {
            if (kept.Length == 0 || kept.Any(s => s.NextLevel is null)) yield break;
            long perChannel = kept.Sum(s => s.PerChannel);
            if (perChannel <= 0) yield break;
            int more = (int)Math.Min(int.MaxValue, (need + perChannel - 1) / perChannel);
            int to = kept[0].Removed + more;
            if (kept.Any(s => s.Removed != kept[0].Removed || to > s.NextLevel!.Value.Channels)) yield break;
            yield return new Candidate($"FFN: {to} channels removed in every layer", kept.Sum(s => s.ChannelSaving(to)), kept.Sum(s => s.ChannelCost(to)),
                () => { foreach (var s in kept) s.RemoveChannels(to); });
            yield break;
        }
        foreach (var s in kept)
        {
            if (s.NextLevel is not { } level || s.PerChannel <= 0) continue;
            int to = s.Removed + (int)Math.Min(int.MaxValue, (need + s.PerChannel - 1) / s.PerChannel);
            if (to > level.Channels) continue;
            yield return new Candidate($"layer {s.Layer} FFN: {to} channels removed", s.ChannelSaving(to), s.ChannelCost(to), () => s.RemoveChannels(to));
        }
    }

    /// <summary>What the planner has removed from one layer so far, and the measurements of its units.</summary>
    private sealed class LayerState
    {
        private readonly List<(int Group, double Kld)> _groups;
        private readonly (int Channels, double Kld)[] _levels;
        private readonly int[] _order;
        private readonly HashSet<int> _removedGroups = [];
        private readonly int _kvGroups;

        public LayerState(Model model, SensitivityReport report, int layer, AutoPlanOptions o)
        {
            var c = model.Config;
            Layer = layer;
            LayerParams = StructuredParameters.Layer(model, layer);
            GroupParams = StructuredParameters.KvGroup(model, layer);
            PerChannel = StructuredParameters.Channels(model, layer);
            _kvGroups = c.KvHeadsIn(layer);
            _order = report.ChannelOrder[layer];
            var units = report.Units.Where(u => u.Layer == layer).ToList();
            var layerUnit = units.FirstOrDefault(u => u.Kind == SensitivityUnitKind.Layer);
            CanRemoveLayer = o.Layers && layerUnit is not null;
            LayerKld = Math.Max(0, layerUnit?.Kld ?? 0);
            _groups = o.Heads
                ? units.Where(u => u.Kind == SensitivityUnitKind.Heads).Select(u => (u.Index, Math.Max(0, u.Kld))).OrderBy(g => g.Item2).ThenBy(g => g.Index).ToList()
                : [];
            _levels = o.Channels
                ? units.Where(u => u.Kind == SensitivityUnitKind.Channels).Select(u => (u.Channels!.Value, Math.Max(0, u.Kld))).OrderBy(x => x.Item1).ToArray()
                : [];
            // The most a kept layer can lose: all KV groups measured but one, channels up to the largest level.
            int groupsOff = Math.Min(_groups.Count, _kvGroups - 1);
            MinimumParams = LayerParams - groupsOff * GroupParams - (_levels.Length == 0 ? 0 : _levels[^1].Channels * PerChannel);
        }

        public int Layer { get; }
        public long LayerParams { get; }
        public long GroupParams { get; }
        public long PerChannel { get; }
        public long MinimumParams { get; }
        public bool CanRemoveLayer { get; }
        public double LayerKld { get; }
        public bool Kept { get; private set; } = true;
        public int Removed { get; private set; }

        /// <summary>KLD charged to this layer so far.</summary>
        public double Cost { get; private set; }

        public long RemainingParams => LayerParams - _removedGroups.Count * GroupParams - Removed * PerChannel;

        public (int Group, double Kld)? NextGroup =>
            _removedGroups.Count >= _kvGroups - 1 ? null : _groups.Where(g => !_removedGroups.Contains(g.Group)).Select(g => ((int, double)?)g).FirstOrDefault();

        public (int Channels, double Kld)? NextLevel => _levels.Where(x => x.Channels > Removed).Select(x => ((int, double)?)x).FirstOrDefault();

        public long ChannelSaving(int to) => (to - Removed) * PerChannel;

        public double ChannelCost(int to) => Math.Max(0, Interpolated(to) - Interpolated(Removed));

        public void RemoveNextGroup()
        {
            var g = NextGroup!.Value;
            _removedGroups.Add(g.Group);
            Cost += g.Kld;
        }

        public void RemoveChannels(int to)
        {
            Cost += ChannelCost(to);
            Removed = to;
        }

        public void RemoveLayer()
        {
            Kept = false;
            Cost = LayerKld;
        }

        public LayerPlan ToPlan()
        {
            if (!Kept) return LayerPlan.Removed;
            var groups = Enumerable.Range(0, _kvGroups).Where(g => !_removedGroups.Contains(g)).ToArray();
            var channels = _order[Removed..].Order().ToArray();
            return new LayerPlan(true, groups, channels);
        }

        /// <summary>Measured KLD at a channel count, linear between the measured levels (0 at 0).</summary>
        private double Interpolated(int removed)
        {
            if (removed <= 0) return 0;
            (int Channels, double Kld) lo = (0, 0);
            foreach (var x in _levels)
            {
                if (removed == x.Channels) return x.Kld;
                if (removed < x.Channels) return lo.Kld + (x.Kld - lo.Kld) * (removed - lo.Channels) / (x.Channels - lo.Channels);
                lo = x;
            }
            return lo.Kld;
        }
    }
}
