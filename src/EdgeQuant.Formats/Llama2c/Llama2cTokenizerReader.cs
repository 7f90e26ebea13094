using EdgeQuant.Formats.IO;

namespace EdgeQuant.Formats.Llama2c;

/// <summary>A llama2.c tokenizer.bin: pieces as stored (spaces as ' ', BOS/EOS as "\n&lt;s&gt;\n"), with their scores.</summary>
public sealed record Llama2cTokenizer(string Path, int MaxTokenLength, string[] Pieces, float[] Scores);

/// <summary>
/// Reads tokenizer.bin (llama2.c's tokenizer.py export): int32 max_token_length, then per token a float score,
/// an int32 byte length and the UTF-8 bytes. The file has no count: the checkpoint's vocab_size says how many.
/// </summary>
public static class Llama2cTokenizerReader
{
    /// <param name="path">The tokenizer.bin file.</param>
    /// <param name="vocabSize">Tokens to read (the checkpoint's vocab size); null reads to the end of the file.</param>
    public static Llama2cTokenizer Read(string path, int? vocabSize)
    {
        using var file = MappedFile.Open(path);
        return Read(file, vocabSize);
    }

    public static Llama2cTokenizer Read(MappedFile file, int? vocabSize)
    {
        var c = new ByteCursor(file);
        long at = c.Position;
        int maxLen = c.ReadI32("max_token_length");
        if (maxLen < 1 || maxLen > Llama2cConstants.MaxTokenLength)
            c.FailAt(at, "max_token_length", $"{maxLen} is outside 1..{Llama2cConstants.MaxTokenLength}");
        if (vocabSize is { } vs && (vs < 1 || vs > Llama2cConstants.MaxVocab))
            throw new ArgumentOutOfRangeException(nameof(vocabSize));
        // Each token takes at least 8 bytes, which bounds the lists before anything is allocated from a count.
        int capacity = (int)Math.Min(vocabSize ?? int.MaxValue, Math.Min(Llama2cConstants.MaxVocab, c.Remaining / 8));
        var pieces = new List<string>(capacity);
        var scores = new List<float>(capacity);
        while (vocabSize is { } n ? pieces.Count < n : c.Remaining > 0)
        {
            int id = pieces.Count;
            if (id >= Llama2cConstants.MaxVocab) c.Fail($"token {id}", $"more than {Llama2cConstants.MaxVocab} tokens");
            float score = c.ReadF32($"token {id} score");
            long lenAt = c.Position;
            int len = c.ReadI32($"token {id} length");
            if (len < 0 || len > maxLen) c.FailAt(lenAt, $"token {id} length", $"{len} is outside 0..max_token_length {maxLen}");
            pieces.Add(c.ReadUtf8(len, $"token {id} text", maxLen));
            scores.Add(score);
        }
        if (c.Remaining > 0) c.Fail("end of file", $"{c.Remaining} bytes follow the {pieces.Count} tokens the checkpoint's vocab_size calls for");
        return new Llama2cTokenizer(file.Path, maxLen, pieces.ToArray(), scores.ToArray());
    }
}
