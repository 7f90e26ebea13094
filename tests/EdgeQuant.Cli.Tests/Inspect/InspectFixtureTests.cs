using System.Text.Json;
using EdgeQuant.Cli.Tests.Infrastructure;
using EdgeQuant.Fixtures;
using EdgeQuant.Testing;

namespace EdgeQuant.Cli.Tests.Inspect;

/// <summary>
/// <c>inspect</c> on the project's own fixtures, written once as an HF folder and once as GGUF: the two reports must
/// agree on everything but the format, including statistics (the HF copy stores Q/K rows permuted and GPT-2
/// weights transposed, which statistics do not see).
/// </summary>
public class InspectFixtureTests
{
    private static JsonElement Inspect(string path)
    {
        var r = CliRunner.Run("inspect", path, "--json", "--stats");
        Assert.True(r.ExitCode == 0, r.ToString());
        return JsonDocument.Parse(r.StdOut).RootElement.Clone();
    }

    [Theory]
    [InlineData(FixtureArch.Llama, FixtureDtype.F32, false)]
    [InlineData(FixtureArch.Llama, FixtureDtype.F16, true)]
    [InlineData(FixtureArch.Qwen2, FixtureDtype.F32, false)]
    [InlineData(FixtureArch.Gpt2, FixtureDtype.F32, false)]
    public void Hf_folder_and_gguf_of_one_fixture_report_alike(FixtureArch arch, FixtureDtype dtype, bool untied)
    {
        using var dir = new TempDir();
        var spec = FixtureSpec.Preset(arch, "tiny") with { Dtype = dtype, Untied = untied, Seed = 11 };
        var written = FixtureMaker.Write(spec, dir.Path, FixtureFormats.Both);
        var hf = Inspect(written.HuggingFaceDir!);
        var gguf = Inspect(written.GgufPath!);

        Assert.Equal("hugging_face", hf.GetProperty("format").GetString());
        Assert.Equal("gguf", gguf.GetProperty("format").GetString());
        Assert.Equal(arch.ToString().ToLowerInvariant(), hf.GetProperty("architecture").GetString());
        Assert.Equal(hf.GetProperty("architecture").GetString(), gguf.GetProperty("architecture").GetString());

        var hpHf = hf.GetProperty("hyperparameters");
        var hpGguf = gguf.GetProperty("hyperparameters");
        foreach (var (name, expected) in new (string, int)[]
                 {
                     ("vocab_size", spec.Vocab), ("embedding_length", spec.Embd), ("block_count", spec.Layers),
                     ("head_count", spec.Heads), ("head_count_kv", spec.KvHeads), ("feed_forward_length", spec.Ffn),
                 })
        {
            Assert.Equal(expected, hpHf.GetProperty(name).GetInt32());
            Assert.Equal(expected, hpGguf.GetProperty(name).GetInt32());
        }
        Assert.Equal(!untied, hpHf.GetProperty("tied_embeddings").GetBoolean());

        // The fixture maker counts parameters from its own tensor list.
        Assert.Equal(written.ParameterCount, hf.GetProperty("parameter_count").GetInt64());
        Assert.Equal(written.ParameterCount, gguf.GetProperty("parameter_count").GetInt64());

        var a = hf.GetProperty("tensors").EnumerateArray().ToDictionary(t => t.GetProperty("name").GetString()!);
        var b = gguf.GetProperty("tensors").EnumerateArray().ToDictionary(t => t.GetProperty("name").GetString()!);
        Assert.Equal(a.Keys.Order(), b.Keys.Order());
        foreach (var (name, ta) in a)
        {
            var tb = b[name];
            Assert.Equal(ta.GetProperty("shape").ToString(), tb.GetProperty("shape").ToString());
            var rank = ta.GetProperty("shape").GetArrayLength();
            // llama.cpp's convention, which the fixture's GGUF follows: 1-D tensors (norms, biases) stay F32.
            var expectedGgufDtype = rank == 1 ? "F32" : spec.Dtype.ToString();
            Assert.Equal(spec.Dtype.ToString(), ta.GetProperty("dtype").GetString());
            Assert.Equal(expectedGgufDtype, tb.GetProperty("dtype").GetString());
            var sa = ta.GetProperty("stats");
            var sb = tb.GetProperty("stats");
            var scale = Math.Max(Math.Abs(sa.GetProperty("min").GetDouble()), Math.Abs(sa.GetProperty("max").GetDouble()));
            if (ta.GetProperty("dtype").GetString() == tb.GetProperty("dtype").GetString())
            {
                // Same values in another order: extremes and zero counts are exact, sums differ by rounding only.
                Assert.Equal(sa.GetProperty("min").GetSingle(), sb.GetProperty("min").GetSingle());
                Assert.Equal(sa.GetProperty("max").GetSingle(), sb.GetProperty("max").GetSingle());
                Assert.Equal(sa.GetProperty("sparsity").GetDouble(), sb.GetProperty("sparsity").GetDouble());
                AssertClose(sa, sb, "mean", 1e-6 * scale);
                AssertClose(sa, sb, "std", 1e-6 * scale);
            }
            else
            {
                // One side holds the F16 rounding of the other's F32: relative error at most 2^-11 per value.
                var f16 = Math.Pow(2, -11) * scale;
                foreach (var stat in new[] { "min", "max", "mean", "std" }) AssertClose(sa, sb, stat, f16);
            }
        }
    }

    private static void AssertClose(JsonElement a, JsonElement b, string stat, double tolerance)
    {
        var d = a.GetProperty(stat).GetDouble() - b.GetProperty(stat).GetDouble();
        Assert.True(Math.Abs(d) <= tolerance, $"{stat}: {a.GetProperty(stat)} vs {b.GetProperty(stat)} (tolerance {tolerance})");
    }
}
