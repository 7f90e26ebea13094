using EdgeQuant.Core.Errors;
using EdgeQuant.Fixtures;

// The fixture maker's command line. Kept to plain parsing: it is a build tool with a dozen flat options.
try
{
    var (spec, outDir, formats) = FixtureCli.Parse(args);
    if (outDir is null) return 0; // --help
    var sw = System.Diagnostics.Stopwatch.StartNew();
    var result = FixtureMaker.Write(spec, outDir, formats);
    Console.WriteLine($"fixture {spec.Arch.ToString().ToLowerInvariant()} layers={spec.Layers} embd={spec.Embd} heads={spec.Heads} kv_heads={spec.KvHeads} " +
                      $"head_dim={spec.EffectiveHeadDim} ffn={spec.Ffn} vocab={spec.Vocab} tied={!spec.Untied} dtype={spec.Dtype.ToString().ToLowerInvariant()} " +
                      $"seed={spec.Seed}: {result.ParameterCount:N0} parameters in {sw.Elapsed.TotalSeconds:F1} s");
    if (result.HuggingFaceDir is { } hf) Console.WriteLine($"  hf:   {hf}");
    if (result.GgufPath is { } gguf) Console.WriteLine($"  gguf: {gguf}");
    return 0;
}
catch (EdgeQuantException e)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return e.ExitCode;
}
