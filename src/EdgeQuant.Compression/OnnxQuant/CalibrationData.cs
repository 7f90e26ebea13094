using System.Buffers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using EdgeQuant.Core.Errors;
using EdgeQuant.Models.Tokenizers;

namespace EdgeQuant.Compression.OnnxQuant;

/// <summary>How calibration text becomes fixed-length token sequences (<c>--calib-samples</c>, <c>--calib-seq-len</c>, <c>--seed</c>).</summary>
public sealed record CalibrationDataOptions
{
    /// <summary>Sequences wanted.</summary>
    public int Samples { get; init; } = 128;

    /// <summary>Tokens per sequence, BOS included when the vocabulary adds one.</summary>
    public int SequenceLength { get; init; } = 512;

    /// <summary>Seed of the window offsets: the same inputs, options and seed give the same sequences.</summary>
    public int Seed { get; init; }

    /// <summary>The string field read from each line of a <c>.jsonl</c> file.</summary>
    public string JsonlField { get; init; } = "text";

    /// <summary>The token each sequence starts with; null: the tokenizer's BOS when it adds one, else none.</summary>
    public int? Bos { get; init; }
}

/// <summary>Calibration sequences and where they came from.</summary>
/// <param name="Sequences">Samples × SequenceLength token ids, each starting with BOS when the vocabulary adds it.</param>
/// <param name="Sha256">Hex SHA-256 over the input files' bytes (in <paramref name="Files"/> order, each length-prefixed) and the JSONL field.</param>
/// <param name="SourceTokens">Tokens of the whole concatenated input stream.</param>
/// <param name="Files">The files read, after folders and globs were expanded.</param>
/// <param name="Overlapping">True when the text was too short for the sequences to be disjoint.</param>
public sealed record CalibrationSet(IReadOnlyList<int[]> Sequences, string Sha256, long SourceTokens, IReadOnlyList<string> Files, bool Overlapping)
{
    public int SequenceLength => Sequences.Count == 0 ? 0 : Sequences[0].Length;

    public long Tokens => (long)Sequences.Count * SequenceLength;
}

/// <summary>
/// Reads calibration text (files, folders, <c>*</c>/<c>?</c> globs in the last path component, <c>.jsonl</c> with a
/// string field), tokenizes each document with the model's tokenizer (no special tokens, no special-token parsing: a
/// document is plain text) into one stream, and cuts it into windows at seeded random offsets.
/// </summary>
/// <remarks>
/// Windows are disjoint whenever Samples × SequenceLength tokens fit: the spare tokens are split into Samples + 1 random
/// gaps, so every part of the text can be drawn. When they do not fit the windows are spread evenly over the stream
/// and overlap as little as they can (<see cref="CalibrationSet.Overlapping"/>). As in
/// <see cref="Pruning.PruningCalibration"/> and llama-perplexity, a window's first token is replaced by BOS when the
/// vocabulary adds BOS, so every sequence looks like the start of a context.
/// </remarks>
public static class CalibrationData
{
    /// <summary>Files a folder contributes (sorted by name): the two kinds of text this loader reads.</summary>
    public static readonly string[] FolderExtensions = [".txt", ".jsonl"];

    /// <summary>More calibration tokens than this (Samples × SequenceLength) is refused rather than allocated: 256 Mi ints = 1 GiB.</summary>
    public const long MaxTokens = 1L << 28;

    /// <summary>A single input file larger than this is refused (it is read whole).</summary>
    public const long MaxFileBytes = 1L << 30;

    public static CalibrationSet Load(IReadOnlyList<string> specs, Tokenizer tokenizer, CalibrationDataOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(specs);
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(options);
        Validate(options);
        var files = ResolveFiles(specs);

        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var stream = new List<int>();
        Span<byte> prefix = stackalloc byte[8];
        foreach (var file in files)
        {
            cancellationToken.ThrowIfCancellationRequested();
            long length = new FileInfo(file).Length;
            if (length > MaxFileBytes) throw new BadInputException($"{file}: {length:N0} bytes, more than the {MaxFileBytes:N0} a calibration file may have");
            byte[] bytes = File.ReadAllBytes(file);
            BitConverter.TryWriteBytes(prefix, (long)bytes.Length);
            sha.AppendData(prefix);
            sha.AppendData(bytes);
            int bom = bytes.AsSpan().StartsWith((ReadOnlySpan<byte>)[0xEF, 0xBB, 0xBF]) ? 3 : 0;
            CheckUtf8(file, bytes, bom);
            foreach (var text in Documents(file, bytes, bom, options.JsonlField))
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (text.Length > 0) stream.AddRange(tokenizer.Encode(text, addSpecial: false, parseSpecial: false));
            }
        }
        if (files.Any(IsJsonl)) sha.AppendData(Encoding.UTF8.GetBytes("\0jsonl-field:" + options.JsonlField));

        int len = options.SequenceLength;
        if (stream.Count < len)
            throw new BadInputException($"{Describe(files)}: the calibration text tokenizes to {stream.Count:N0} tokens, fewer than one sequence of --calib-seq-len {len}");
        var offsets = Offsets(stream.Count, len, options.Samples, options.Seed, out bool overlapping);
        int? bos = options.Bos ?? (tokenizer.AddBos ? tokenizer.BosId : null);
        var sequences = new List<int[]>(offsets.Length);
        foreach (int offset in offsets)
        {
            var seq = stream.GetRange(offset, len).ToArray();
            if (bos is { } b) seq[0] = b;
            sequences.Add(seq);
        }
        return new CalibrationSet(sequences, Convert.ToHexStringLower(sha.GetHashAndReset()), stream.Count, files, overlapping);
    }

    /// <summary>Refuses options that cannot produce sequences (before any file is read).</summary>
    public static void Validate(CalibrationDataOptions o)
    {
        if (o.Samples < 1) throw new BadInputException($"--calib-samples: {o.Samples} must be positive");
        if (o.SequenceLength < 2) throw new BadInputException($"--calib-seq-len: {o.SequenceLength} is too short (at least 2 tokens)");
        if ((long)o.Samples * o.SequenceLength > MaxTokens)
            throw new BadInputException($"--calib-samples {o.Samples} × --calib-seq-len {o.SequenceLength} is more than {MaxTokens:N0} calibration tokens");
        if (string.IsNullOrEmpty(o.JsonlField)) throw new BadInputException("--calib-field: empty field name");
    }

    /// <summary>
    /// The files named by <paramref name="specs"/>: a file as is, a folder's <c>.txt</c>/<c>.jsonl</c> files, a glob's
    /// matches (wildcards in the last component only); each folder or glob sorted by ordinal name, specs kept in order,
    /// a file named twice read once. A missing file, an empty folder or a glob matching nothing is refused.
    /// </summary>
    public static IReadOnlyList<string> ResolveFiles(IReadOnlyList<string> specs)
    {
        if (specs.Count == 0) throw new BadInputException("--calib: no calibration files given");
        var files = new List<string>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        void AddRange(IEnumerable<string> found)
        {
            foreach (var f in found.OrderBy(f => f, StringComparer.Ordinal))
                if (seen.Add(Path.GetFullPath(f))) files.Add(f);
        }
        foreach (var spec in specs)
        {
            if (string.IsNullOrWhiteSpace(spec)) throw new BadInputException("--calib: empty path");
            if (File.Exists(spec))
            {
                AddRange([spec]);
            }
            else if (Directory.Exists(spec))
            {
                var found = Directory.EnumerateFiles(spec)
                    .Where(f => FolderExtensions.Contains(Path.GetExtension(f), StringComparer.OrdinalIgnoreCase) && !Path.GetFileName(f).StartsWith('.'))
                    .ToList();
                if (found.Count == 0)
                    throw new BadInputException($"{spec}: the calibration folder holds no {string.Join(" or ", FolderExtensions)} files");
                AddRange(found);
            }
            else if (spec.IndexOfAny(['*', '?']) >= 0)
            {
                string dir = Path.GetDirectoryName(spec) is { Length: > 0 } d ? d : ".";
                string pattern = Path.GetFileName(spec);
                if (dir.IndexOfAny(['*', '?']) >= 0)
                    throw new BadInputException($"{spec}: wildcards are supported in the file name only, not in the folder '{dir}'");
                if (!Directory.Exists(dir)) throw new BadInputException($"{spec}: no such folder '{dir}'");
                var found = Directory.EnumerateFiles(dir, pattern, new EnumerationOptions { MatchType = MatchType.Simple, RecurseSubdirectories = false })
                    .Where(f => !Path.GetFileName(f).StartsWith('.'))
                    .ToList();
                if (found.Count == 0) throw new BadInputException($"{spec}: the calibration glob matches no file");
                AddRange(found);
            }
            else
            {
                throw new BadInputException($"{spec}: no such calibration file or folder (--calib)");
            }
        }
        return files;
    }

    /// <summary>
    /// Window start offsets: disjoint at seeded random positions when samples × length fit in the stream, else
    /// evenly spread (and overlapping).
    /// </summary>
    internal static int[] Offsets(int streamTokens, int length, int samples, int seed, out bool overlapping)
    {
        overlapping = (long)samples * length > streamTokens;
        var offsets = new int[samples];
        if (overlapping)
        {
            int last = streamTokens - length;
            for (int i = 0; i < samples; i++)
                offsets[i] = samples == 1 ? 0 : (int)Math.Round((double)last * i / (samples - 1), MidpointRounding.AwayFromZero);
            return offsets;
        }
        // Spare tokens split into samples + 1 gaps by sorted uniform cut points (a random composition of the slack),
        // so any window placement without overlap can occur. A seeded System.Random keeps .NET's legacy (Knuth
        // subtractive) generator, whose sequence for a seed does not change between runtime versions.
        int slack = streamTokens - samples * length;
        var rng = new Random(seed);
        var cuts = new int[samples];
        for (int i = 0; i < samples; i++) cuts[i] = rng.Next(slack + 1);
        Array.Sort(cuts);
        for (int i = 0; i < samples; i++) offsets[i] = i * length + cuts[i];
        return offsets;
    }

    private static bool IsJsonl(string file) => file.EndsWith(".jsonl", StringComparison.OrdinalIgnoreCase);

    private static string Describe(IReadOnlyList<string> files) =>
        files.Count == 1 ? files[0] : $"{files.Count} files ({string.Join(", ", files.Take(3))}{(files.Count > 3 ? ", …" : "")})";

    private static void CheckUtf8(string file, byte[] bytes, int start)
    {
        var span = bytes.AsSpan(start);
        if (System.Text.Unicode.Utf8.IsValid(span)) return;
        int i = 0;
        while (i < span.Length)
        {
            if (Rune.DecodeFromUtf8(span[i..], out _, out int consumed) != OperationStatus.Done) break;
            i += consumed;
        }
        throw new BadInputException($"{file}: invalid UTF-8 at byte offset {start + i}");
    }

    /// <summary>A text file is one document (one trailing newline dropped, as llama-perplexity reads text); a JSONL file one per non-blank line.</summary>
    private static IEnumerable<string> Documents(string file, byte[] bytes, int start, string field)
    {
        if (!IsJsonl(file))
        {
            string text = Encoding.UTF8.GetString(bytes, start, bytes.Length - start);
            yield return text.EndsWith('\n') ? text[..^1] : text;
            yield break;
        }
        int lineNo = 0, pos = start;
        while (pos < bytes.Length)
        {
            int nl = Array.IndexOf(bytes, (byte)'\n', pos);
            int end = nl < 0 ? bytes.Length : nl;
            lineNo++;
            var line = bytes.AsMemory(pos, end - pos);
            long lineOffset = pos;
            pos = end + 1;
            if (line.Span.Trim(" \t\r"u8).IsEmpty) continue;
            yield return FieldOf(file, line, lineNo, lineOffset, field);
        }
    }

    private static string FieldOf(string file, ReadOnlyMemory<byte> line, int lineNo, long offset, string field)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(line, new JsonDocumentOptions { MaxDepth = 64 });
        }
        catch (JsonException e)
        {
            throw new BadInputException($"{file}: line {lineNo} (byte offset {offset + (e.BytePositionInLine ?? 0)}) is not JSON: {FirstSentence(e.Message)}");
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new BadInputException($"{file}: line {lineNo} (byte offset {offset}) is a JSON {doc.RootElement.ValueKind.ToString().ToLowerInvariant()}, not an object with a \"{field}\" field");
            if (!doc.RootElement.TryGetProperty(field, out var value))
                throw new BadInputException($"{file}: line {lineNo} (byte offset {offset}) has no \"{field}\" field (--calib-field)");
            if (value.ValueKind != JsonValueKind.String)
                throw new BadInputException($"{file}: line {lineNo} (byte offset {offset}): field \"{field}\" is a {value.ValueKind.ToString().ToLowerInvariant()}, not a string");
            return value.GetString()!;
        }
    }

    private static string FirstSentence(string message)
    {
        int dot = message.IndexOf(". ", StringComparison.Ordinal);
        return dot > 0 ? message[..dot] : message.TrimEnd('.');
    }
}
