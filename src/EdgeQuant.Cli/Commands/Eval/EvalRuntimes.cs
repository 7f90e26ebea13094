using EdgeQuant.Core.Errors;
using EdgeQuant.Runtimes;
using EdgeQuant.Runtimes.LlamaCpp;

namespace EdgeQuant.Cli.Commands.Eval;

/// <summary>Opens a model in one runtime as an <see cref="ILogitsRunner"/> together with the text's tokens in that runtime's tokenizer.</summary>
public static class EvalRuntimes
{
    public sealed record Settings(int Context, int Threads);

    /// <summary>A runner, the text's tokens and the BOS id each chunk starts with (null when the vocabulary adds no BOS).</summary>
    public sealed class Opened(ILogitsRunner runner, int[] tokens, int? bos, IDisposable? owner = null) : IDisposable
    {
        public ILogitsRunner Runner { get; } = runner;
        public int[] Tokens { get; } = tokens;
        public int? Bos { get; } = bos;

        public void Dispose()
        {
            Runner.Dispose();
            owner?.Dispose();
        }
    }

    /// <summary>llama.cpp for GGUF files, ONNX Runtime for .onnx, the engine for everything else.</summary>
    public static EvalRuntime DefaultFor(string modelPath)
    {
        if (Directory.Exists(modelPath)) return EvalRuntime.Engine;
        if (modelPath.EndsWith(".onnx", StringComparison.OrdinalIgnoreCase)) return EvalRuntime.Onnxruntime;
        return IsGguf(modelPath) ? EvalRuntime.Llamacpp : EvalRuntime.Engine;
    }

    public static Opened Open(EvalRuntime runtime, string modelPath, string text, Settings settings, CancellationToken cancellationToken) =>
        runtime switch
        {
            EvalRuntime.Llamacpp => OpenLlamaCpp(modelPath, text, settings, cancellationToken),
            _ => throw new BadInputException(
                $"--runtime {runtime.ToString().ToLowerInvariant()}: perplexity in this runtime is not available yet; use --runtime llamacpp with a .gguf model"),
        };

    private static Opened OpenLlamaCpp(string modelPath, string text, Settings settings, CancellationToken cancellationToken)
    {
        if (!IsGguf(modelPath)) throw new BadInputException($"{modelPath}: llama.cpp runs GGUF files; this is not one (--runtime llamacpp)");
        var model = LlamaModel.Load(modelPath, cancellationToken: cancellationToken);
        try
        {
            // llama-perplexity tokenizes with add_special = true (BOS when the vocabulary adds it) and no special-token parsing.
            var tokens = model.Tokenize(text, addSpecial: true, parseSpecial: false);
            var runner = new LlamaCppRunner(model, new LlamaContextOptions { ContextSize = settings.Context, Threads = settings.Threads });
            return new Opened(runner, tokens, model.AddsBos ? model.Bos : null, model);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    private static bool IsGguf(string path)
    {
        if (!File.Exists(path)) return false;
        Span<byte> magic = stackalloc byte[4];
        using var f = File.OpenRead(path);
        return f.ReadAtLeast(magic, 4, throwOnEndOfStream: false) == 4 && magic.SequenceEqual("GGUF"u8);
    }
}
