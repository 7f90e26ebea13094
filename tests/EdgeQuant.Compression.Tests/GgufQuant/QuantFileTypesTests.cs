using System.Globalization;
using System.Text.RegularExpressions;
using EdgeQuant.Compression.GgufQuant;
using EdgeQuant.Core.Errors;
using EdgeQuant.Core.Tensors;
using EdgeQuant.Testing;

namespace EdgeQuant.Compression.Tests.GgufQuant;

/// <summary>The file type table against llama-quantize's own (its source), parsing, overrides, bad input.</summary>
public sealed partial class QuantFileTypesTests
{
    private static string QuantizeCpp => Path.Combine(SharedData.RepoRoot, ".cache", "llama.cpp-src", "tools", "quantize", "quantize.cpp");

    [GeneratedRegex("""\{\s*"(?<name>[A-Z0-9_]+)",\s*LLAMA_FTYPE_(?<ftype>[A-Z0-9_]+),\s*"(?<desc>[^"]*)",?\s*\}""")]
    private static partial Regex QuantOptionRow();

    [GeneratedRegex(@"LLAMA_FTYPE_(?<name>[A-Z0-9_]+)\s*=\s*(?<value>\d+)")]
    private static partial Regex FtypeEnumRow();

    /// <summary>QUANT_OPTIONS rows (name, ftype number, description) read from the pinned quantize.cpp and llama.h.</summary>
    private static List<(string Name, int Ftype, string Description)> LlamaQuantOptions()
    {
        // The source comes with the runtimes (make runtimes); a missing file fails the test, as a missing runtime does.
        var header = File.ReadAllText(Path.Combine(SharedData.RepoRoot, ".cache", "llama.cpp-src", "include", "llama.h"));
        var values = FtypeEnumRow().Matches(header).ToDictionary(m => m.Groups["name"].Value, m => int.Parse(m.Groups["value"].Value, CultureInfo.InvariantCulture));
        var source = File.ReadAllText(QuantizeCpp);
        int start = source.IndexOf("QUANT_OPTIONS", StringComparison.Ordinal);
        int end = source.IndexOf("};", start, StringComparison.Ordinal);
        return QuantOptionRow().Matches(source[start..end])
            .Select(m => (m.Groups["name"].Value, values[m.Groups["ftype"].Value], m.Groups["desc"].Value))
            .ToList();
    }

    [LlamaCppFact]
    public void TableRowsAreLlamaQuantizesInItsOrder()
    {
        var theirs = LlamaQuantOptions();
        Assert.True(theirs.Count > 30, $"parsed only {theirs.Count} QUANT_OPTIONS rows");
        var ours = QuantFileTypes.All;
        // Same order as llama-quantize, restricted to ours.
        var theirsOurs = theirs.Where(t => ours.Any(o => o.Name == t.Name)).ToList();
        Assert.Equal(ours.Select(o => o.Name), theirsOurs.Select(t => t.Name));
        foreach (var (o, t) in ours.Zip(theirsOurs))
        {
            Assert.Equal(t.Ftype, o.LlamaFtype);
            Assert.Equal(t.Description.TrimStart(), o.Description);
        }
        // Every type the issue names is there.
        foreach (var name in new[] { "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K", "F16", "BF16", "F32", "Q3_K", "Q4_K", "Q5_K" })
            Assert.Contains(ours, o => o.Name == name);
        // The help table is llama-quantize's usage lines ("  %2d  or  %-7s : %s") for our rows.
        var expected = string.Concat(theirsOurs.Select(t => string.Create(CultureInfo.InvariantCulture, $"  {t.Ftype,2}  or  {t.Name,-7} : {t.Description}\n")));
        Assert.Equal(expected, QuantFileTypes.HelpTable());
    }

    [Fact]
    public void DocsListEveryRow()
    {
        var doc = File.ReadAllText(Path.Combine(SharedData.RepoRoot, "docs", "quant-types.md"));
        foreach (var t in QuantFileTypes.All)
            Assert.Contains($"| {t.Name} | {t.LlamaFtype} | {TensorTypes.Get(t.DefaultType).Name} | {t.Description} |", doc);
    }

    [Theory]
    [InlineData("Q4_K_M", "Q4_K_M")]
    [InlineData("q4_k_m", "Q4_K_M")]
    [InlineData("q4_K", "Q4_K")]
    [InlineData("bf16", "BF16")]
    [InlineData("15", "Q4_K")] // llama-quantize's number lookup finds the alias row first
    [InlineData("7", "Q8_0")]
    [InlineData("0", "F32")]
    public void ParseAcceptsNamesAndNumbers(string text, string name) => Assert.Equal(name, QuantFileTypes.Parse(text).Name);

    [Fact]
    public void ParseRefusesUnknownAndUnsupportedTypes()
    {
        var e = Assert.Throws<BadInputException>(() => QuantFileTypes.Parse("Q4_K_X"));
        Assert.StartsWith("--type: 'Q4_K_X' is not a quantization type; use one of Q4_0, Q4_1,", e.Message);
        Assert.Contains("Q4_K_M", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        var iq = Assert.Throws<BadInputException>(() => QuantFileTypes.Parse("iq2_xs", "-t"));
        Assert.StartsWith("-t: IQ2_XS is a llama.cpp type", iq.Message);
        Assert.Throws<BadInputException>(() => QuantFileTypes.Parse("19")); // IQ2_XXS's number
        Assert.Throws<BadInputException>(() => QuantFileTypes.Parse(""));
    }

    [Fact]
    public void TensorTypesForOptions()
    {
        Assert.Equal(TensorType.Q8_0, QuantFileTypes.ParseTensorType("q8_0", "--output-tensor-type"));
        Assert.Equal(TensorType.F16, QuantFileTypes.ParseTensorType("F16", "--output-tensor-type"));
        var e = Assert.Throws<BadInputException>(() => QuantFileTypes.ParseTensorType("iq4_nl", "--token-embedding-type"));
        Assert.StartsWith("--token-embedding-type: 'iq4_nl' is not a tensor type EdgeQuant writes; use one of F32, F16, BF16", e.Message);
        Assert.Throws<BadInputException>(() => QuantFileTypes.ParseTensorType("Q8_K", "--output-tensor-type"));
        Assert.Throws<BadInputException>(() => QuantFileTypes.ParseTensorType("I32", "--output-tensor-type"));
    }

    [Fact]
    public void OverridesParseAsLlamaQuantizeDoes()
    {
        var r = TensorTypeOverride.Parse(@"BLK\.1\.ATTN_V=Q8_0");
        Assert.Equal(@"blk\.1\.attn_v", r.Pattern.ToString()); // lower-cased, as llama-quantize does
        Assert.Equal(TensorType.Q8_0, r.Type);
        // Split at the first '=': the type of "a=b=q4_k" is "b=q4_k".
        Assert.Throws<BadInputException>(() => TensorTypeOverride.Parse("a=b=q4_k"));
        // Searched, not fully matched.
        Assert.Matches(TensorTypeOverride.Parse("ffn=q4_0").Pattern, "blk.0.ffn_down.weight");
        var many = TensorTypeOverride.ParseMany("attn_v=q8_0\n  ffn_down=q6_k\tffn_up=f16 ");
        Assert.Equal([TensorType.Q8_0, TensorType.Q6_K, TensorType.F16], many.Select(m => m.Type));

        Assert.Contains("malformed", Assert.Throws<BadInputException>(() => TensorTypeOverride.Parse("attn_v")).Message);
        Assert.Contains("missing tensor name", Assert.Throws<BadInputException>(() => TensorTypeOverride.Parse("=q8_0")).Message);
        Assert.Contains("missing quantization type", Assert.Throws<BadInputException>(() => TensorTypeOverride.Parse("attn_v=")).Message);
        Assert.Contains("not a tensor type", Assert.Throws<BadInputException>(() => TensorTypeOverride.Parse("attn_v=q9_0")).Message);
        Assert.Contains("not a valid regular expression", Assert.Throws<BadInputException>(() => TensorTypeOverride.Parse("attn_v([=q8_0")).Message);
        Assert.Throws<BadInputException>(() => TensorTypeOverride.Parse(new string('a', 2000) + "=q8_0"));
    }
}
