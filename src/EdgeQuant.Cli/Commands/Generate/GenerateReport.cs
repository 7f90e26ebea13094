namespace EdgeQuant.Cli.Commands.Generate;

/// <summary>The <c>--json</c> output of <c>generate</c>.</summary>
/// <param name="Text">The generated text only (the prompt is in <paramref name="Prompt"/>).</param>
/// <param name="StopReason">length, end_of_sequence or context_full.</param>
public sealed record GenerateReport(
    string Model,
    string Prompt,
    int[] PromptTokens,
    int[] Tokens,
    string Text,
    int NPrompt,
    int NGenerated,
    Models.Engine.StopReason StopReason,
    float Temperature,
    int? Seed,
    double PromptTokensPerSecond,
    double TokensPerSecond);
