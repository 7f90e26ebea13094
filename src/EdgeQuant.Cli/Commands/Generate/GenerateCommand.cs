using System.Globalization;
using EdgeQuant.Cli.Framework;
using EdgeQuant.Core.Errors;
using EdgeQuant.Models;
using EdgeQuant.Models.Engine;
using EdgeQuant.Models.Tokenizers;

namespace EdgeQuant.Cli.Commands.Generate;

/// <summary>
/// Tokenizes the prompt, evaluates it in one batch on the reference engine, then decodes token by token through the
/// KV cache, writing the text to stdout as it grows (the prompt first, as the model's tokens decode it). Timing goes
/// to stderr. With <c>--json</c> nothing streams; one report is written at the end.
/// </summary>
public sealed class GenerateCommand(CliContext context, GenerateOptions options) : ICliCommand
{
    public async Task<int> ExecuteAsync(CancellationToken cancellationToken)
    {
        if (options.MaxTokens < 0) throw new BadInputException($"--n-predict: {options.MaxTokens} must be >= 0");
        if (options.Threads is < 1 or > 1024) throw new BadInputException($"--threads: {options.Threads} is outside 1..1024");
        if (options.Context is < 1) throw new BadInputException($"--ctx: {options.Context} must be positive");
        if (options.TokenizerPath is { } tok && !File.Exists(tok))
            throw new BadInputException($"{tok}: no such tokenizer file (--tokenizer)");
        var sampling = new SamplingOptions(options.Temperature, options.Seed, options.TopK, options.TopP);
        sampling.Validate();

        ReferenceEngine engine;
        Tokenizer tokenizer;
        using (var model = context.LoadModel(options.ModelPath, options.TokenizerPath))
        {
            if (model.Tokenizer is null)
                throw new BadInputException($"{options.ModelPath}: the model carries no tokenizer, so a text prompt cannot be encoded");
            tokenizer = Tokenizer.FromModel(model);
            if (tokenizer.VocabSize > model.Config.VocabSize)
                throw new BadInputException($"{options.ModelPath}: the tokenizer has {tokenizer.VocabSize} tokens but the model only {model.Config.VocabSize} logits");
            engine = ReferenceEngine.Load(model, new EngineOptions { Threads = options.Threads ?? Environment.ProcessorCount }, cancellationToken);
        }

        var prompt = tokenizer.Encode(options.Prompt, addSpecial: true);
        if (prompt.Length == 0)
            throw new BadInputException("--prompt: the prompt encodes to no tokens and the model adds no BOS to start from");
        long wanted = (long)prompt.Length + options.MaxTokens;
        int capacity = options.Context ?? (int)Math.Min(wanted, engine.MaxPositions);
        if (capacity > engine.MaxPositions)
            throw new BadInputException($"--ctx: {capacity} is more positions than the model has ({engine.MaxPositions})");
        if (prompt.Length > capacity)
            throw new BadInputException($"--prompt: {prompt.Length} tokens do not fit a context of {capacity}");

        var session = engine.CreateSession(capacity);
        var sampler = new TokenSampler(sampling);
        int? stop = options.IgnoreEos ? null : tokenizer.EosId;
        var output = context.Console.Out;
        Utf8Streamer? streamer = null;
        if (!options.Json)
        {
            streamer = new Utf8Streamer(ids => tokenizer.DecodeBytes(ids), output);
            streamer.Add(prompt);
        }

        var result = await Task.Run(() => TextGeneration.Generate(session, prompt, options.MaxTokens, sampler, stop,
            streamer is null ? null : t => streamer.Add([t]), cancellationToken), cancellationToken);

        if (options.Json)
        {
            JsonOutput.Write(output, new GenerateReport(
                options.ModelPath, options.Prompt, prompt, result.Tokens,
                tokenizer.Decode([.. prompt, .. result.Tokens])[tokenizer.Decode(prompt).Length..],
                prompt.Length, result.Tokens.Length, result.StopReason, options.Temperature, options.Seed,
                result.PromptTokensPerSecond, result.TokensPerSecond));
            return ExitCodes.Ok;
        }

        streamer!.Finish();
        await output.WriteLineAsync();
        await output.FlushAsync(cancellationToken);
        var inv = CultureInfo.InvariantCulture;
        await context.Console.Error.WriteLineAsync(string.Format(inv,
            "{0}: prompt {1} tokens ({2:F1} tok/s), generated {3} tokens ({4:F1} tok/s), stop: {5}",
            CliApp.Name, prompt.Length, result.PromptTokensPerSecond, result.Tokens.Length, result.TokensPerSecond,
            JsonOutput.Serialize(result.StopReason).Trim('"')));
        return ExitCodes.Ok;
    }
}
