using System.Globalization;
using System.Text;
using EdgeQuant.Compression.Pruning;
using EdgeQuant.Export;
using EdgeQuant.Models;
using EdgeQuant.Models.Engine;
using EdgeQuant.Models.Tokenizers;
using EdgeQuant.Runtimes.Evaluation;
using EdgeQuant.Testing;
using Xunit.Abstractions;

namespace EdgeQuant.Compression.Tests.Pruning;

/// <summary>
/// The issue's structured table on stories260K: calibration on the TinyStories sample's first 64 × 256 tokens, perplexity
/// (engine, llama-perplexity's protocol, ctx 256) and mean KLD against the dense model on the 24 chunks after them.
/// </summary>
public class StructuredPruningTableTests(ITestOutputHelper output)
{
    private const string Stories = "models/stories260K/stories260K.gguf";
    private const string Text = "corpus/tinystories-sample.txt";
    private const int SeqLen = 256, CalibSamples = 64, EvalChunks = 24;

    [SharedDataFact(Stories, Text)]
    public void Ranked_units_beat_random_ones_and_the_table_is_measured()
    {
        using var model = ModelLoader.Load(SharedData.Require(Stories));
        var c = model.Config;
        var tokens = Tokenizer.FromModel(model).Encode(Perplexity.PrepareText(File.ReadAllText(SharedData.Require(Text))));
        var calib = tokens[..(SeqLen * CalibSamples)];
        var eval = tokens[(SeqLen * CalibSamples)..(SeqLen * (CalibSamples + EvalChunks))];
        var imp = StructuredImportance.Collect(model, calib, new CalibrationOptions { SequenceLength = SeqLen, Samples = CalibSamples, Threads = 2 });
        var denseLogits = ScoredLogits(model, eval);
        using var temp = new TempDir("eq-struct-table");
        long denseBytes = GgufExporter.Export(model, temp.File("dense.gguf")).FileBytes;

        var rows = new List<(string Method, double Target, ParameterTargetPlan Plan)>();
        foreach (double target in new[] { 0.10, 0.25, 0.40 })
            foreach (var (label, units) in new (string, StructuredMethod[])[]
                     {
                         ("heads", [StructuredMethod.Heads]), ("channels", [StructuredMethod.Channels]), ("layers", [StructuredMethod.Layers]),
                         ("heads+channels", [StructuredMethod.Heads, StructuredMethod.Channels]),
                     })
                rows.Add((label, target, StructuredPlanner.ForParameterTarget(model, imp, target, units)));

        var table = new StringBuilder();
        var inv = CultureInfo.InvariantCulture;
        table.AppendLine(inv, $"| target | method | removed | params | GGUF bytes | PPL | mean KLD |");
        table.AppendLine("|---|---|---|---|---|---|---|");
        table.AppendLine(inv, $"| dense | – | 0 % | {model.ParameterCount:N0} | {denseBytes:N0} | {Ppl(model, eval):F4} | 0 |");
        int n = 0;
        foreach (var (method, target, plan) in rows)
        {
            using var pruned = StructuredPruner.Apply(model, plan.Plan);
            long bytes = GgufExporter.Export(pruned, temp.File($"p{n++}.gguf")).FileBytes;
            table.AppendLine(inv, $"| {target:P0} | {method} ({plan.Description}) | {plan.Removed:P1} | {pruned.ParameterCount:N0} | {bytes:N0} | {Ppl(pruned, eval):F4} | {Kld(denseLogits, ScoredLogits(pruned, eval)):F4} |");
        }
        output.WriteLine(table.ToString());

        // The scores must mean something: removing the lowest-ranked 25 % of channels (and one KV group per layer) hurts
        // less than removing the same number picked at random (the mean over 3 random draws).
        foreach (var units in new[] { StructuredMethod.Channels, StructuredMethod.Heads })
        {
            var ranked = StructuredPruner.Apply(model, StructuredPlanner.Uniform(c, imp, units, 0.25));
            double rankedKld = Kld(denseLogits, ScoredLogits(ranked, eval));
            var randomKlds = new List<double>();
            for (int seed = 1; seed <= 3; seed++)
            {
                var rng = new Random(seed);
                var random = new StructuredImportance(
                    imp.Groups.Select(g => g.Select(_ => rng.NextDouble()).ToArray()).ToArray(),
                    imp.Channels.Select(ch => ch.Select(_ => rng.NextDouble()).ToArray()).ToArray(), imp.Layers, imp.Tokens, imp.Samples);
                randomKlds.Add(Kld(denseLogits, ScoredLogits(StructuredPruner.Apply(model, StructuredPlanner.Uniform(c, random, units, 0.25)), eval)));
            }
            output.WriteLine($"{units} 25 %: ranked KLD {rankedKld:F4}, random {string.Join(" / ", randomKlds.Select(k => k.ToString("F4", inv)))}");
            Assert.True(rankedKld < randomKlds.Average(), $"{units}: ranked {rankedKld} vs random {randomKlds.Average()}");
        }
    }

    private static double Ppl(Model model, int[] tokens)
    {
        var engine = ReferenceEngine.Load(model, new EngineOptions { Threads = 2 });
        using var runner = new EngineLogitsRunner(engine, SeqLen);
        return Perplexity.Evaluate(runner, tokens, 1, new PerplexityOptions(SeqLen)).Perplexity;
    }

    /// <summary>Logits of the positions the perplexity protocol scores (n/2 … n−2 of every chunk, BOS first).</summary>
    private static List<float[]> ScoredLogits(Model model, int[] tokens)
    {
        var session = ReferenceEngine.Load(model, new EngineOptions { Threads = 2 }).CreateSession(SeqLen);
        var rows = Enumerable.Range(SeqLen / 2, SeqLen / 2 - 1).ToArray();
        var result = new List<float[]>();
        for (int s = 0; s + SeqLen <= tokens.Length; s += SeqLen)
        {
            var chunk = tokens[s..(s + SeqLen)];
            chunk[0] = 1;
            session.Reset();
            var logits = new float[rows.Length * model.Config.VocabSize];
            session.Decode(chunk, rows, logits);
            result.Add(logits);
        }
        return result;
    }

    /// <summary>Mean over positions of KL(P_dense ‖ P_pruned), in double.</summary>
    private static double Kld(List<float[]> dense, List<float[]> pruned)
    {
        int vocab = 512;
        double sum = 0;
        long count = 0;
        for (int c = 0; c < dense.Count; c++)
            for (int r = 0; r < dense[c].Length / vocab; r++)
            {
                var p = LogSoftmax(dense[c].AsSpan(r * vocab, vocab));
                var q = LogSoftmax(pruned[c].AsSpan(r * vocab, vocab));
                double kl = 0;
                for (int i = 0; i < vocab; i++) kl += Math.Exp(p[i]) * (p[i] - q[i]);
                sum += kl;
                count++;
            }
        return sum / count;
    }

    private static double[] LogSoftmax(ReadOnlySpan<float> x)
    {
        double max = double.NegativeInfinity;
        foreach (float v in x) max = Math.Max(max, v);
        double z = 0;
        foreach (float v in x) z += Math.Exp(v - max);
        double log = max + Math.Log(z);
        var r = new double[x.Length];
        for (int i = 0; i < x.Length; i++) r[i] = x[i] - log;
        return r;
    }
}
