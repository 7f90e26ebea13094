using System.CommandLine;
using EdgeQuant.Cli.Framework;

namespace EdgeQuant.Cli.Commands.Tokenize;

/// <summary><c>edgequant tokenize MODEL --text FILE [--no-bos] [--parse-special] [--show] [--json]</c>.</summary>
public sealed class TokenizeCommandDefinition : Command
{
    public Argument<string> Model { get; } = new("MODEL")
    {
        Description = "Where the tokenizer is: a GGUF file (vocab-only or full), a Hugging Face folder, a tokenizer.json, a llama2.c checkpoint (.bin) or tokenizer file (tok*.bin).",
    };

    public Option<string> Text { get; } = new("--text")
    {
        Description = "The UTF-8 text file to tokenize, read as is (no newline is stripped).",
        HelpName = "FILE",
        Required = true,
    };

    public Option<bool> NoBos { get; } = new("--no-bos")
    {
        Description = "Do not add the BOS token even when the tokenizer's metadata says to.",
    };

    public Option<bool> ParseSpecial { get; } = new("--parse-special")
    {
        Description = "Recognise control tokens written in the text (like <s> or <|endoftext|>); off by default, as in llama.cpp.",
    };

    public Option<bool> Show { get; } = new("--show")
    {
        Description = "Print one token per line with its piece instead of the ids on one line.",
    };

    public Option<bool> Json { get; } = CommonOptions.Json();

    public TokenizeCommandDefinition(CliContext context)
        : base("tokenize", "Print the token ids of a text file, as llama.cpp's llama_tokenize would produce them.")
    {
        Add(Model);
        Add(Text);
        Add(NoBos);
        Add(ParseSpecial);
        Add(Show);
        Add(Json);
        this.SetCommand(parseResult => new TokenizeCommand(context, new TokenizeOptions(
            ModelPath: parseResult.GetRequiredValue(Model),
            TextPath: parseResult.GetRequiredValue(Text),
            NoBos: parseResult.GetValue(NoBos),
            ParseSpecial: parseResult.GetValue(ParseSpecial),
            Show: parseResult.GetValue(Show),
            Json: parseResult.GetValue(Json))));
    }
}

public sealed record TokenizeOptions(string ModelPath, string TextPath, bool NoBos, bool ParseSpecial, bool Show, bool Json);
