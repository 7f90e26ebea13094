using System.Globalization;
using EdgeQuant.Core.Errors;

namespace EdgeQuant.Fixtures;

/// <summary>Parses the fixture maker's options: a preset first, then explicit shape options override it.</summary>
public static class FixtureCli
{
    public const string Usage = """
        EdgeQuant.Fixtures: writes a random-weight model as an HF folder and/or GGUF.
          --arch llama|qwen2|gpt2        architecture (default llama)
          --preset demo|tiny|smollm-135m|tinyllama-1.1b   base shape (default demo)
          --layers N --embd N --heads N --kv-heads N --ffn N --vocab N --head-dim N --context N
          --untied                       separate output matrix (default: tied to the embedding)
          --bias                         q/k/v/o biases on a llama model (qwen2 always has q/k/v biases)
          --out DIR                      output folder: DIR/hf and DIR/gguf/model.gguf (required)
          --format hf|gguf|both          (default both)
          --dtype f32|f16                (default f32)
          --seed S                       (default 1)
        """;

    /// <summary>Returns a null output folder for --help.</summary>
    public static (FixtureSpec Spec, string? OutDir, FixtureFormats Formats) Parse(string[] args)
    {
        var opts = new Dictionary<string, string>(StringComparer.Ordinal);
        var flags = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < args.Length; i++)
        {
            var a = args[i];
            if (a is "-h" or "--help")
            {
                Console.WriteLine(Usage);
                return (new FixtureSpec(), null, FixtureFormats.Both);
            }
            if (a is "--untied" or "--bias") { flags.Add(a); continue; }
            if (!a.StartsWith("--", StringComparison.Ordinal)) throw new BadInputException($"unexpected argument '{a}' (see --help)");
            if (i + 1 >= args.Length) throw new BadInputException($"{a}: needs a value");
            opts[a] = args[++i];
        }
        string Take(string key, string fallback)
        {
            if (opts.Remove(key, out var v)) return v;
            return fallback;
        }
        int? Int(string key)
        {
            if (!opts.Remove(key, out var v)) return null;
            return int.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out int n) ? n : throw new BadInputException($"{key}: '{v}' is not a positive integer");
        }

        var arch = Take("--arch", "llama") switch
        {
            "llama" => FixtureArch.Llama,
            "qwen2" => FixtureArch.Qwen2,
            "gpt2" => FixtureArch.Gpt2,
            var x => throw new BadInputException($"--arch: '{x}' is not llama, qwen2 or gpt2"),
        };
        var spec = FixtureSpec.Preset(arch, Take("--preset", "demo"));
        if (Int("--layers") is { } layers) spec = spec with { Layers = layers };
        if (Int("--embd") is { } embd) spec = spec with { Embd = embd };
        if (Int("--heads") is { } heads) spec = spec with { Heads = heads, KvHeads = arch == FixtureArch.Gpt2 ? heads : spec.KvHeads };
        if (Int("--kv-heads") is { } kv) spec = spec with { KvHeads = kv };
        if (Int("--ffn") is { } ffn) spec = spec with { Ffn = ffn };
        if (Int("--vocab") is { } vocab) spec = spec with { Vocab = vocab };
        if (Int("--head-dim") is { } hd) spec = spec with { HeadDim = hd };
        if (Int("--context") is { } ctx) spec = spec with { ContextLength = ctx };
        if (flags.Contains("--untied")) spec = spec with { Untied = true };
        if (flags.Contains("--bias")) spec = spec with { AttentionBias = true };
        var seedText = Take("--seed", "1");
        if (!ulong.TryParse(seedText, NumberStyles.None, CultureInfo.InvariantCulture, out ulong seed)) throw new BadInputException($"--seed: '{seedText}' is not a non-negative integer");
        spec = spec with { Seed = seed };
        spec = spec with
        {
            Dtype = Take("--dtype", "f32") switch
            {
                "f32" => FixtureDtype.F32,
                "f16" => FixtureDtype.F16,
                var x => throw new BadInputException($"--dtype: '{x}' is not f32 or f16"),
            },
        };
        var formats = Take("--format", "both") switch
        {
            "hf" => FixtureFormats.HuggingFace,
            "gguf" => FixtureFormats.Gguf,
            "both" => FixtureFormats.Both,
            var x => throw new BadInputException($"--format: '{x}' is not hf, gguf or both"),
        };
        var outDir = Take("--out", "");
        if (outDir.Length == 0) throw new BadInputException("--out: required (the folder to write hf/ and gguf/ into)");
        if (opts.Count > 0) throw new BadInputException($"{opts.Keys.First()}: unknown option (see --help)");
        spec.Validate();
        return (spec, outDir, formats);
    }
}
