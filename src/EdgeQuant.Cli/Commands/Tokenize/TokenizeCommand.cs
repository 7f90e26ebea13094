using System.Text;
using System.Text.Json.Serialization;
using EdgeQuant.Cli.Framework;
using EdgeQuant.Core.Errors;
using EdgeQuant.Formats.Llama2c;
using EdgeQuant.Models;
using EdgeQuant.Models.Loading;
using EdgeQuant.Models.Tokenizers;

namespace EdgeQuant.Cli.Commands.Tokenize;

/// <summary>The <c>--json</c> report: the ids, and with <c>--show</c> the piece of each.</summary>
public sealed record TokenizeReport(
    [property: JsonConverter(typeof(CompactInt64ListConverter))] IReadOnlyList<long> Ids,
    IReadOnlyList<string>? Pieces = null);

/// <summary>Tokenizes a file like <c>llama_tokenize(vocab, text, add_special = true, parse_special)</c>.</summary>
public sealed class TokenizeCommand(CliContext context, TokenizeOptions options) : ICliCommand
{
    public async Task<int> ExecuteAsync(CancellationToken cancellationToken)
    {
        if (!File.Exists(options.TextPath)) throw new BadInputException($"{options.TextPath}: no such text file (--text)");
        var tokenizer = LoadTokenizer(options.ModelPath);
        var bytes = await File.ReadAllBytesAsync(options.TextPath, cancellationToken);
        var body = tokenizer.Encode(bytes, addSpecial: false, parseSpecial: options.ParseSpecial, what: options.TextPath);
        var ids = new List<int>(body.Length + 2);
        if (tokenizer.AddBos && !options.NoBos)
            ids.Add(tokenizer.BosId ?? throw new BadInputException($"{options.ModelPath}: the tokenizer adds BOS but has no BOS token id"));
        ids.AddRange(body);
        if (tokenizer.AddEos)
            ids.Add(tokenizer.EosId ?? throw new BadInputException($"{options.ModelPath}: the tokenizer adds EOS but has no EOS token id"));

        var pieces = options.Show ? ids.Select(id => Piece(tokenizer, id)).ToList() : null;
        var output = context.Console.Out;
        if (options.Json)
        {
            JsonOutput.Write(output, new TokenizeReport(ids.Select(i => (long)i).ToList(), pieces));
        }
        else if (pieces is not null)
        {
            for (int i = 0; i < ids.Count; i++) await output.WriteLineAsync($"{ids[i],7} '{pieces[i]}'");
        }
        else
        {
            await output.WriteLineAsync(string.Join(' ', ids));
        }
        await output.FlushAsync(cancellationToken);
        return ExitCodes.Ok;
    }

    /// <summary>A token's piece for display: special tokens by their text, control characters escaped.</summary>
    private static string Piece(Tokenizer tokenizer, int id)
    {
        var bytes = tokenizer.TokenToPiece(id, special: true);
        var text = Encoding.UTF8.GetString(bytes);
        var sb = new StringBuilder();
        foreach (var c in text)
            sb.Append(c switch { '\n' => "\\n", '\r' => "\\r", '\t' => "\\t", '\\' => "\\\\", '\'' => "\\'", _ => char.IsControl(c) ? $"\\x{(int)c:x2}" : c.ToString() });
        if (bytes.Length > 0 && Encoding.UTF8.GetByteCount(text) != bytes.Length || text.Contains('\uFFFD'))
            return "<" + string.Join(' ', bytes.Select(b => $"0x{b:X2}")) + ">";
        return sb.ToString();
    }

    /// <summary>The tokenizer of a GGUF file, an HF folder or tokenizer.json, or a llama2.c checkpoint or tokenizer file.</summary>
    public Tokenizer LoadTokenizer(string path)
    {
        if (Directory.Exists(path))
        {
            if (File.Exists(Path.Combine(path, "tokenizer.json"))) return Tokenizer.FromHuggingFace(path);
            throw new BadInputException($"{path}: a folder without tokenizer.json");
        }
        if (!File.Exists(path)) throw new BadInputException($"{path}: no such file or folder");
        if (IsGguf(path)) return Tokenizer.FromGguf(path);
        if (path.EndsWith(".json", StringComparison.OrdinalIgnoreCase)) return Tokenizer.FromHuggingFace(path);
        if (path.EndsWith(".bin", StringComparison.OrdinalIgnoreCase))
        {
            // llama2.c keeps the tokenizer in its own file (tokenizer.bin, tok512.bin); anything else is a checkpoint.
            if (Path.GetFileName(path).StartsWith("tok", StringComparison.OrdinalIgnoreCase))
                return Tokenizer.FromData(Llama2cModelLoader.ToTokenizerData(Llama2cTokenizerReader.Read(path, null)));
            using var model = context.LoadModel(path, null);
            return Tokenizer.FromData(model.Tokenizer ?? throw new BadInputException($"{path}: no tokenizer found for this checkpoint (put tokenizer.bin beside it)"));
        }
        throw new BadInputException($"{path}: not a GGUF file, an HF folder, a tokenizer.json or a llama2.c .bin");
    }

    private static bool IsGguf(string path)
    {
        Span<byte> magic = stackalloc byte[4];
        using var f = File.OpenRead(path);
        return f.ReadAtLeast(magic, 4, throwOnEndOfStream: false) == 4 && magic.SequenceEqual("GGUF"u8);
    }
}
