using EdgeQuant.Core.Errors;
using EdgeQuant.Models;
using EdgeQuant.Models.Engine;
using EdgeQuant.Models.Tokenizers;
using EdgeQuant.Runtimes;
using EdgeQuant.Runtimes.LlamaCpp;
using EdgeQuant.Runtimes.OnnxRuntime;

namespace EdgeQuant.Cli.Commands.Eval;

/// <summary>Opens a model in one runtime as an <see cref="ILogitsRunner"/> together with the text's tokens in that runtime's tokenizer.</summary>
public static class EvalRuntimes
{
    /// <param name="TokenizerPath">llama2.c: its tokenizer.bin; .onnx: its tokenizer.json (null: the one beside the model).</param>
    /// <param name="EngineExact">Engine on a GGUF: skip llama.cpp's activation rounding (<see cref="ActivationRounding.Ggml"/>, the default for GGUF).</param>
    public sealed record Settings(int Context, int Threads, string? TokenizerPath = null, bool EngineExact = false);

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

    /// <summary>llama.cpp for GGUF files, ONNX Runtime for .onnx, the engine for everything else (HF folders, llama2.c).</summary>
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
            EvalRuntime.Engine => OpenEngine(modelPath, text, settings, cancellationToken),
            EvalRuntime.Onnxruntime => OpenOnnxRuntime(modelPath, text, settings),
            _ => throw new BadInputException($"--runtime {runtime}: unknown runtime"),
        };

    /// <summary>The engine, tokenizing with the model's own tokenizer (tokenizer.json, GGUF keys, or llama2.c's tokenizer.bin).</summary>
    private static Opened OpenEngine(string modelPath, string text, Settings settings, CancellationToken cancellationToken)
    {
        if (settings.TokenizerPath is not null && ModelLoader.Detect(modelPath) != ModelFormat.Llama2c)
            throw new BadInputException($"{modelPath}: --tokenizer applies to llama2.c checkpoints and .onnx models; this model carries its own tokenizer");
        // A GGUF is what llama.cpp runs, so by default the engine rounds activations as its CPU backend does; the rounding
        // only touches layers whose weight is stored quantized or 16-bit, so F32 GGUFs are unaffected. HF folders and
        // llama2.c checkpoints stay the plain F32 reference.
        var rounding = !settings.EngineExact && IsGguf(modelPath) ? ActivationRounding.Ggml : ActivationRounding.None;
        var (runner, tokens, bos) = EngineLogitsRunner.OpenForText(modelPath, text, settings.Context, settings.Threads, settings.TokenizerPath,
            cancellationToken: cancellationToken, rounding: rounding);
        return new Opened(runner, tokens, bos);
    }

    /// <summary>
    /// ONNX Runtime over an .onnx decoder LM. ONNX files carry no vocabulary, so the text is tokenized with the
    /// tokenizer.json beside the model; BOS only when that tokenizer adds one (GPT-2's adds none, so its chunks start as they are).
    /// </summary>
    private static Opened OpenOnnxRuntime(string modelPath, string text, Settings settings)
    {
        if (!File.Exists(modelPath)) throw new BadInputException($"{modelPath}: ONNX Runtime runs .onnx files; this is a folder (--runtime onnxruntime)");
        if (IsGguf(modelPath)) throw new BadInputException($"{modelPath}: a GGUF file, not an ONNX model (--runtime onnxruntime); use --runtime llamacpp or engine");
        var tokenizerPath = settings.TokenizerPath ?? Path.Combine(Path.GetDirectoryName(Path.GetFullPath(modelPath))!, "tokenizer.json");
        if (!File.Exists(tokenizerPath))
            throw new BadInputException($"{tokenizerPath}: no tokenizer.json beside the ONNX model (expected there, or pass --tokenizer FILE)");
        var tokenizer = Tokenizer.FromHuggingFace(tokenizerPath);
        var tokens = tokenizer.Encode(text, addSpecial: true, parseSpecial: false);
        int? bos = tokenizer.AddBos ? tokenizer.BosId ?? throw new BadInputException($"{tokenizerPath}: adds BOS but defines no BOS token") : null;
        // A token the model has no logit for is refused by Perplexity, naming it and its text position.
        var runner = OrtLogitsRunner.Open(modelPath, new OrtLogitsRunnerOptions
        {
            Session = new OrtSessionSettings { IntraOpThreads = settings.Threads, InterOpThreads = 1 },
        });
        return new Opened(runner, tokens, bos);
    }

    private static Opened OpenLlamaCpp(string modelPath, string text, Settings settings, CancellationToken cancellationToken)
    {
        if (settings.TokenizerPath is not null)
            throw new BadInputException($"{modelPath}: --tokenizer applies to llama2.c checkpoints and .onnx models; llama.cpp uses the GGUF's own tokenizer");
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
