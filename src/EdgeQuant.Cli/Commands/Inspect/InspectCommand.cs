using System.Globalization;
using EdgeQuant.Cli.Framework;
using EdgeQuant.Cli.Framework.Progress;
using EdgeQuant.Core.Errors;
using EdgeQuant.Core.Tensors;
using EdgeQuant.Models;
using Spectre.Console;

namespace EdgeQuant.Cli.Commands.Inspect;

/// <summary>Loads a model and reports what it holds, as tables or as one JSON document.</summary>
public sealed class InspectCommand(CliContext context, InspectOptions options) : ICliCommand
{
    public async Task<int> ExecuteAsync(CancellationToken cancellationToken)
    {
        if (options.TokenizerPath is { } tok && !File.Exists(tok))
            throw new BadInputException($"{tok}: no such tokenizer file (--tokenizer)");

        using var model = context.LoadModel(options.ModelPath, options.TokenizerPath);
        if (options.TokenizerPath is not null && model.Provenance.Format != ModelFormat.Llama2c)
            await context.Console.Error.WriteLineAsync($"{CliApp.Name}: warning: --tokenizer applies to llama2.c checkpoints only; ignored for {model.Provenance.Format}");

        (TensorStatistics? Stats, string? Error)[]? stats = null;
        if (options.Stats)
        {
            stats = await context.CreateProgress().Run(
                (progress, ct) => TensorStatisticsCalculator.Compute(model.Tensors, progress, ct), cancellationToken);
        }
        cancellationToken.ThrowIfCancellationRequested();

        var report = BuildReport(model, stats);
        if (options.Json) JsonOutput.Write(context.Console.Out, report);
        else context.WriteRendered(console => Render(console, report, options.Stats));
        return ExitCodes.Ok;
    }

    public static InspectReport BuildReport(Model model, (TensorStatistics? Stats, string? Error)[]? stats)
    {
        var aliasOf = StorageAliases.Find(model.Tensors);
        var tensors = model.Tensors.Select((t, i) => new TensorReport(
            t.Name, t.SourceName, t.Shape, TensorTypes.Get(t.Type).Name, t.ElementCount, t.ByteLength,
            stats?[i].Stats, stats?[i].Error, aliasOf[i] is { } a ? model.Tensors[a].Name : null)).ToList();
        // Counts and bytes are over stored data: a tensor aliasing another's bytes (llama2.c's shared classifier)
        // is listed but not counted twice.
        var stored = model.Tensors.Where((_, i) => aliasOf[i] is null).ToList();
        var perDtype = stored
            .GroupBy(t => t.Type)
            .Select(g => new DtypeReport(TensorTypes.Get(g.Key).Name, g.Count(), g.Sum(t => t.ElementCount), g.Sum(t => t.ByteLength)))
            .OrderByDescending(d => d.Bytes).ThenBy(d => d.Dtype, StringComparer.Ordinal)
            .ToList();
        var tok = model.Tokenizer is { } td
            ? new TokenizerReport(td.Kind, td.Pre, td.Tokens.Count, td.Merges?.Count, td.BosId, td.EosId, td.UnknownId, td.SourcePath)
            : null;
        return new InspectReport(
            model.Provenance.SourcePath, model.Provenance.Format, model.Config.Architecture, model.Config.SourceArchitecture,
            HyperparametersReport.From(model.Config), stored.Sum(t => t.ElementCount), stored.Sum(t => t.ByteLength),
            tensors.Count, perDtype, tok, tensors);
    }

    private static void Render(IAnsiConsole console, InspectReport r, bool withStats)
    {
        var h = r.Hyperparameters;
        var summary = new Grid().AddColumn(new GridColumn().NoWrap()).AddColumn();
        void Row(string key, string value) => summary.AddRow(new Text(key), new Text(value));
        Row("Model", r.Path);
        Row("Format", FormatName(r.Format));
        var arch = r.Architecture.ToString().ToLowerInvariant();
        Row("Architecture", arch == r.SourceArchitecture ? arch : $"{arch} ({r.SourceArchitecture})");
        Row("Parameters", $"{Count(r.ParameterCount)} ({Si(r.ParameterCount)})");
        var aliases = r.Tensors.Where(t => t.AliasOf is not null).Select(t => $"{t.Name} = {t.AliasOf}").ToList();
        Row("Tensors", $"{r.TensorCount}, {Bytes(r.TensorBytes)}" + (aliases.Count == 0 ? "" : $"; sharing storage: {string.Join(", ", aliases)}"));
        Row("Tokenizer", r.Tokenizer is { } tk
            ? $"{tk.Kind}{(tk.Pre is null ? "" : $" ({tk.Pre})")}, {Count(tk.Size)} tokens" +
              (tk.MergeCount is { } m ? $", {Count(m)} merges" : "") +
              (tk.BosId is { } b ? $", bos {b}" : "") + (tk.EosId is { } e ? $", eos {e}" : "")
            : "none");
        console.Write(summary);
        console.WriteLine();

        var hp = NewTable(console).Title("Hyperparameters").AddColumn("name").AddColumn(new TableColumn("value").RightAligned());
        void Hp(string name, object value) => hp.AddRow(new Text(name), new Text(Convert.ToString(value, CultureInfo.InvariantCulture) ?? ""));
        Hp("vocab_size", h.VocabSize);
        Hp("embedding_length", h.EmbeddingLength);
        Hp("block_count", h.BlockCount);
        Hp("head_count", h.HeadCount);
        Hp("head_count_kv", h.HeadCountKv);
        Hp("head_dim", h.HeadDim);
        Hp("feed_forward_length", h.FeedForwardLength);
        Hp("context_length", h.ContextLength);
        Hp("rope_theta", h.RopeTheta);
        Hp("norm_epsilon", h.NormEpsilon);
        Hp("tied_embeddings", h.TiedEmbeddings ? "yes" : "no");
        Hp("attention_bias", h.AttentionBias ? "yes" : "no");
        // A structurally pruned model: the rows above hold the largest width, these each layer's.
        if (h.LayerHeadCounts is { } lh) Hp("head_count per layer", string.Join(", ", lh));
        if (h.LayerHeadCountsKv is { } lkv) Hp("head_count_kv per layer", string.Join(", ", lkv));
        if (h.LayerFeedForwardLengths is { } lff) Hp("feed_forward_length per layer", string.Join(", ", lff));
        console.Write(hp);

        var dt = NewTable(console).Title("Bytes per dtype").AddColumn("dtype").AddColumn(new TableColumn("tensors").RightAligned())
            .AddColumn(new TableColumn("parameters").RightAligned()).AddColumn(new TableColumn("bytes").RightAligned())
            .AddColumn(new TableColumn("share").RightAligned());
        foreach (var d in r.BytesPerDtype)
            dt.AddRow(d.Dtype, Count(d.TensorCount), Count(d.Elements), Bytes(d.Bytes),
                r.TensorBytes == 0 ? "-" : (d.Bytes / (double)r.TensorBytes).ToString("P1", CultureInfo.InvariantCulture));
        console.Write(dt);

        var tt = NewTable(console).Title("Tensors").AddColumn("name").AddColumn("shape").AddColumn("dtype")
            .AddColumn(new TableColumn("bytes").RightAligned());
        // The non-finite column appears only when there is something to show, to keep the common table narrow.
        var showNonFinite = withStats && r.Tensors.Any(t => t.Stats is { NonFinite: > 0 });
        if (withStats)
            foreach (var c in showNonFinite ? ["min", "max", "mean", "std", "sparsity", "nan/inf"] : new[] { "min", "max", "mean", "std", "sparsity" })
                tt.AddColumn(new TableColumn(c).RightAligned());
        foreach (var t in r.Tensors)
        {
            var cells = new List<string> { t.Name, "[" + string.Join(", ", t.Shape) + "]", t.Dtype, Count(t.Bytes) };
            if (withStats)
            {
                if (t.Stats is { } s)
                    cells.AddRange([Num(s.Min), Num(s.Max), Num(s.Mean), Num(s.Std), s.Sparsity.ToString("P2", CultureInfo.InvariantCulture)]);
                else
                    cells.AddRange(["n/a", "n/a", "n/a", "n/a", "n/a"]);
                if (showNonFinite) cells.Add(t.Stats is { } s2 ? Count(s2.NonFinite) : "");
            }
            tt.AddRow(cells.Select(c => new Text(c)).ToArray());
        }
        console.Write(tt);
    }

    /// <summary>Box-drawing borders in a terminal, ASCII when redirected (logs and CI consoles mangle box characters).</summary>
    private static Table NewTable(IAnsiConsole console) =>
        new Table().Border(console.Profile.Capabilities.Unicode ? TableBorder.Rounded : TableBorder.Ascii);

    private static string FormatName(ModelFormat f) => f switch
    {
        ModelFormat.Gguf => "GGUF",
        ModelFormat.HuggingFace => "Hugging Face (safetensors)",
        ModelFormat.Llama2c => "llama2.c checkpoint",
        _ => f.ToString(),
    };

    private static string Count(long n) => n.ToString("N0", CultureInfo.InvariantCulture);

    private static string Num(double v) => v.ToString("G5", CultureInfo.InvariantCulture);

    private static string Si(long n) => n switch
    {
        >= 1_000_000_000 => (n / 1e9).ToString("0.##", CultureInfo.InvariantCulture) + " B",
        >= 1_000_000 => (n / 1e6).ToString("0.##", CultureInfo.InvariantCulture) + " M",
        >= 1_000 => (n / 1e3).ToString("0.##", CultureInfo.InvariantCulture) + " K",
        _ => n.ToString(CultureInfo.InvariantCulture),
    };

    internal static string Bytes(long n)
    {
        string[] units = ["B", "KiB", "MiB", "GiB", "TiB"];
        double v = n;
        var u = 0;
        while (v >= 1024 && u < units.Length - 1) { v /= 1024; u++; }
        return u == 0 ? $"{n} B" : $"{v.ToString("0.##", CultureInfo.InvariantCulture)} {units[u]} ({Count(n)} bytes)";
    }
}
