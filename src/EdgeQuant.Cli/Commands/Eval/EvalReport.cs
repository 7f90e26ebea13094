namespace EdgeQuant.Cli.Commands.Eval;

/// <summary>What <c>eval --json</c> prints (snake_case on the wire).</summary>
/// <param name="Ppl">Perplexity, exp(mean NLL).</param>
/// <param name="PplUnc">llama-perplexity's ± (PPL × standard error of the mean NLL).</param>
/// <param name="NScored">Tokens scored.</param>
/// <param name="NChunks">Chunks decoded.</param>
/// <param name="TokensPerSecond">Tokens decoded per second of wall time (scoring included).</param>
public sealed record EvalReport(
    double Ppl,
    double PplUnc,
    int NScored,
    int NChunks,
    double TokensPerSecond,
    string Model,
    string Text,
    EvalRuntime Runtime,
    string RuntimeName,
    int Ctx,
    int NTokens,
    double MeanNll,
    double ElapsedSeconds);
