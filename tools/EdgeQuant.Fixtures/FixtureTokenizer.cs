using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.RegularExpressions;
using EdgeQuant.Formats.Gguf;
using EdgeQuant.Formats.HuggingFace;

namespace EdgeQuant.Fixtures;

/// <summary>
/// A small but valid tokenizer for fixtures, trained with BPE on a built-in text. Llama/Qwen2 fixtures get a
/// SentencePiece-style vocabulary with byte fallback (&lt;unk&gt;, &lt;s&gt;, &lt;/s&gt;, &lt;0x00&gt;..&lt;0xFF&gt;, merged pieces
/// with scores, single characters), so any text tokenizes; GPT-2 fixtures get a byte-level BPE. Unfilled ids become
/// control tokens (&lt;unused{k}&gt;), as real vocabularies pad theirs.
/// </summary>
public sealed partial class FixtureTokenizer
{
    public const int MinSentencePieceVocab = 3 + 256;
    public const int MinByteLevelVocab = 256 + 1;

    // An original little story in TinyStories' register: frequent English pieces for the merges.
    private const string Corpus =
        "Once upon a time, there was a little girl named Mia. She liked to play in the park with her red ball. " +
        "One day, the sun was warm and the sky was blue. Mia ran to the big tree and saw a small cat. " +
        "The cat was sad because it could not find its mom. Mia said, \"Do not be sad, little cat. I will help you.\" " +
        "They looked under the bench and behind the flowers. Then they heard a soft sound. It was the mom cat! " +
        "The little cat was happy and played with Mia and her ball. When it was time to go home, Mia waved goodbye. " +
        "She told her mom and dad about the cat, and they smiled. That night, Mia went to bed and dreamed of the park. " +
        "The next day, Tom came to play too. Tom had a toy boat and a kite. They flew the kite high in the sky and " +
        "sailed the boat on the pond. They were good friends and they shared their toys. The end.";

    private FixtureTokenizer(string kind, string? pre, string[] tokens, float[]? scores, int[] types, string[] merges, int bos, int eos, int? unk, bool addBos)
    {
        Kind = kind;
        Pre = pre;
        Tokens = tokens;
        Scores = scores;
        TokenTypes = types;
        Merges = merges;
        BosId = bos;
        EosId = eos;
        UnknownId = unk;
        AddBos = addBos;
    }

    /// <summary>"llama" or "gpt2" (GGUF tokenizer.ggml.model).</summary>
    public string Kind { get; }
    public string? Pre { get; }
    public string[] Tokens { get; }
    public float[]? Scores { get; }
    public int[] TokenTypes { get; }

    /// <summary>BPE merges as "a b", in rank order (HF tokenizer.json; GGUF for byte-level).</summary>
    public string[] Merges { get; }
    public int BosId { get; }
    public int EosId { get; }
    public int? UnknownId { get; }
    public bool AddBos { get; }

    public static FixtureTokenizer For(FixtureSpec spec) =>
        spec.Arch == FixtureArch.Gpt2 ? ByteLevel(spec.Vocab) : SentencePiece(spec.Vocab);

    // ---------------------------------------------------------------- SentencePiece-style (byte fallback)

    public static FixtureTokenizer SentencePiece(int vocab)
    {
        if (vocab < MinSentencePieceVocab) throw new ArgumentOutOfRangeException(nameof(vocab));
        var tokens = new List<string> { "<unk>", "<s>", "</s>" };
        var types = new List<int> { GgufTokenType.Unknown, GgufTokenType.Control, GgufTokenType.Control };
        for (int b = 0; b < 256; b++)
        {
            tokens.Add($"<0x{b:X2}>");
            types.Add(GgufTokenType.Byte);
        }
        // SentencePiece's normalization: spaces are '▁' and every word starts with one.
        var words = Corpus.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(w => "\u2581" + w).ToList();
        var chars = words.SelectMany(w => w).GroupBy(c => c).OrderByDescending(g => g.Count()).ThenBy(g => g.Key)
            .Select(g => g.Key.ToString()).ToList();
        int budget = vocab - tokens.Count;
        var keptChars = chars.Take(budget).ToList();
        var merged = Train(words.Select(w => w.Select(c => c.ToString()).ToArray()).ToList(), keptChars.ToHashSet(), budget - keptChars.Count, out _);

        // Merged pieces by rank, then single characters (SentencePiece's BPE layout); score = -position.
        var pieces = merged.Concat(keptChars).ToList();
        var scores = new List<float>(Enumerable.Repeat(0f, tokens.Count));
        for (int i = 0; i < pieces.Count; i++)
        {
            tokens.Add(pieces[i]);
            types.Add(GgufTokenType.Normal);
            scores.Add(-i);
        }
        for (int k = 0; tokens.Count < vocab; k++)
        {
            tokens.Add($"<unused{k}>");
            types.Add(GgufTokenType.Control);
            scores.Add(0f);
        }

        // HF's SentencePiece converter: for each piece in score order, every split into two vocabulary pieces is a
        // merge, so rank-ordered BPE reproduces score-ordered SentencePiece merging.
        var ids = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = MinSentencePieceVocab; i < MinSentencePieceVocab + pieces.Count; i++) ids[tokens[i]] = i;
        var merges = new List<string>();
        foreach (var p in pieces)
        {
            var local = new List<(int L, int R, string Text)>();
            for (int k = 1; k < p.Length; k++)
                if (ids.TryGetValue(p[..k], out int l) && ids.TryGetValue(p[k..], out int r)) local.Add((l, r, $"{p[..k]} {p[k..]}"));
            merges.AddRange(local.OrderBy(x => x.L).ThenBy(x => x.R).Select(x => x.Text));
        }
        return new FixtureTokenizer("llama", "default", tokens.ToArray(), scores.ToArray(), types.ToArray(), merges.ToArray(), bos: 1, eos: 2, unk: 0, addBos: true);
    }

    // ---------------------------------------------------------------- byte-level BPE (GPT-2)

    [GeneratedRegex(@"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+")]
    private static partial Regex Gpt2Split();

    /// <summary>GPT-2's bytes_to_unicode: printable bytes map to themselves, the rest to U+0100 onwards, in id order.</summary>
    public static (byte Byte, char Char)[] ByteToUnicode()
    {
        var bs = new List<int>();
        for (int b = '!'; b <= '~'; b++) bs.Add(b);
        for (int b = 0xA1; b <= 0xAC; b++) bs.Add(b);
        for (int b = 0xAE; b <= 0xFF; b++) bs.Add(b);
        var cs = bs.ToList();
        int n = 0;
        for (int b = 0; b < 256; b++)
            if (!bs.Contains(b))
            {
                bs.Add(b);
                cs.Add(256 + n++);
            }
        return bs.Select((b, i) => ((byte)b, (char)cs[i])).ToArray();
    }

    public static FixtureTokenizer ByteLevel(int vocab)
    {
        if (vocab < MinByteLevelVocab) throw new ArgumentOutOfRangeException(nameof(vocab));
        var map = ByteToUnicode();
        var charOf = new char[256];
        foreach (var (b, c) in map) charOf[b] = c;
        var tokens = map.Select(m => m.Char.ToString()).ToList();
        var types = Enumerable.Repeat(GgufTokenType.Normal, 256).ToList();
        var chunks = Gpt2Split().Matches(Corpus).Select(m => Encoding.UTF8.GetBytes(m.Value).Select(b => charOf[b].ToString()).ToArray()).ToList();
        var merged = Train(chunks, tokens.ToHashSet(), vocab - 257, out var merges);
        tokens.AddRange(merged);
        types.AddRange(merged.Select(_ => GgufTokenType.Normal));
        for (int k = 0; tokens.Count < vocab - 1; k++)
        {
            tokens.Add($"<|unused{k}|>");
            types.Add(GgufTokenType.Control);
        }
        tokens.Add("<|endoftext|>");
        types.Add(GgufTokenType.Control);
        int eot = tokens.Count - 1;
        return new FixtureTokenizer("gpt2", "gpt-2", tokens.ToArray(), null, types.ToArray(), merges.ToArray(), bos: eot, eos: eot, unk: null, addBos: false);
    }

    /// <summary>
    /// Plain BPE training: repeatedly merge the most frequent adjacent pair (ties broken by text, for determinism)
    /// among symbols in <paramref name="allowed"/>. Returns new pieces in rank order; <paramref name="merges"/> gets every
    /// merge applied, including ones whose result was already a piece.
    /// </summary>
    private static List<string> Train(List<string[]> words, HashSet<string> allowed, int maxNew, out List<string> merges)
    {
        var counts = words.GroupBy(w => string.Join("\u0001", w)).Select(g => (Symbols: g.First().ToList(), Count: g.Count())).ToList();
        var added = new List<string>();
        merges = [];
        while (added.Count < maxNew)
        {
            var pairs = new Dictionary<(string, string), int>();
            foreach (var (symbols, count) in counts)
                for (int i = 0; i + 1 < symbols.Count; i++)
                    if (allowed.Contains(symbols[i]) && allowed.Contains(symbols[i + 1]))
                        pairs[(symbols[i], symbols[i + 1])] = pairs.GetValueOrDefault((symbols[i], symbols[i + 1])) + count;
            if (pairs.Count == 0) break;
            var best = pairs.OrderByDescending(p => p.Value).ThenBy(p => p.Key.Item1 + " " + p.Key.Item2, StringComparer.Ordinal).First();
            // Pairs seen once would only spell out whole rare words; stop there.
            if (best.Value < 2) break;
            var (a, b) = best.Key;
            string ab = a + b;
            merges.Add($"{a} {b}");
            if (allowed.Add(ab)) added.Add(ab);
            foreach (var (symbols, _) in counts)
                for (int i = 0; i + 1 < symbols.Count; i++)
                    if (symbols[i] == a && symbols[i + 1] == b)
                    {
                        symbols[i] = ab;
                        symbols.RemoveAt(i + 1);
                    }
        }
        return added;
    }

    // ---------------------------------------------------------------- writers

    /// <summary>tokenizer.json in the layout transformers' fast tokenizers save (LlamaTokenizerFast / GPT2TokenizerFast).</summary>
    public void WriteTokenizerJson(string path)
    {
        WriteJson(path, w =>
        {
            w.WriteStartObject();
            w.WriteString("version", "1.0");
            w.WriteNull("truncation");
            w.WriteNull("padding");
            w.WriteStartArray("added_tokens");
            for (int id = 0; id < Tokens.Length; id++)
            {
                if (TokenTypes[id] is not (GgufTokenType.Control or GgufTokenType.Unknown)) continue;
                w.WriteStartObject();
                w.WriteNumber("id", id);
                w.WriteString("content", Tokens[id]);
                w.WriteBoolean("single_word", false);
                w.WriteBoolean("lstrip", false);
                w.WriteBoolean("rstrip", false);
                w.WriteBoolean("normalized", false);
                w.WriteBoolean("special", true);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            if (Kind == "llama")
            {
                w.WritePropertyName("normalizer");
                w.WriteRawValue("""{"type":"Sequence","normalizers":[{"type":"Prepend","prepend":"▁"},{"type":"Replace","pattern":{"String":" "},"content":"▁"}]}""");
                w.WriteNull("pre_tokenizer");
                w.WritePropertyName("post_processor");
                w.WriteRawValue("""{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<s>","type_id":0}},{"Sequence":{"id":"A","type_id":0}}],"pair":[{"SpecialToken":{"id":"<s>","type_id":0}},{"Sequence":{"id":"A","type_id":0}},{"SpecialToken":{"id":"<s>","type_id":1}},{"Sequence":{"id":"B","type_id":1}}],"special_tokens":{"<s>":{"id":"<s>","ids":[1],"tokens":["<s>"]}}}""");
                w.WritePropertyName("decoder");
                w.WriteRawValue("""{"type":"Sequence","decoders":[{"type":"Replace","pattern":{"String":"▁"},"content":" "},{"type":"ByteFallback"},{"type":"Fuse"},{"type":"Strip","content":" ","start":1,"stop":0}]}""");
            }
            else
            {
                w.WriteNull("normalizer");
                w.WritePropertyName("pre_tokenizer");
                w.WriteRawValue("""{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true}""");
                w.WritePropertyName("post_processor");
                w.WriteRawValue("""{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":false,"use_regex":true}""");
                w.WritePropertyName("decoder");
                w.WriteRawValue("""{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":true,"use_regex":true}""");
            }
            w.WriteStartObject("model");
            w.WriteString("type", "BPE");
            w.WriteNull("dropout");
            if (UnknownId is { } unk) w.WriteString("unk_token", Tokens[unk]);
            else w.WriteNull("unk_token");
            w.WriteNull("continuing_subword_prefix");
            w.WriteNull("end_of_word_suffix");
            w.WriteBoolean("fuse_unk", Kind == "llama");
            w.WriteBoolean("byte_fallback", Kind == "llama");
            w.WriteBoolean("ignore_merges", false);
            w.WriteStartObject("vocab");
            var seen = new HashSet<string>(StringComparer.Ordinal);
            for (int id = 0; id < Tokens.Length; id++)
                if (seen.Add(Tokens[id])) w.WriteNumber(Tokens[id], id);
            w.WriteEndObject();
            w.WriteStartArray("merges");
            foreach (var m in Merges) w.WriteStringValue(m);
            w.WriteEndArray();
            w.WriteEndObject();
            w.WriteEndObject();
        });
    }

    public void WriteTokenizerConfig(string path, int modelMaxLength)
    {
        WriteJson(path, w =>
        {
            w.WriteStartObject();
            w.WriteBoolean("add_bos_token", AddBos);
            w.WriteBoolean("add_eos_token", false);
            w.WriteString("bos_token", Tokens[BosId]);
            w.WriteString("eos_token", Tokens[EosId]);
            if (UnknownId is { } unk) w.WriteString("unk_token", Tokens[unk]);
            else w.WriteString("unk_token", Tokens[EosId]);
            w.WriteNull("pad_token");
            w.WriteBoolean("clean_up_tokenization_spaces", false);
            w.WriteNumber("model_max_length", modelMaxLength);
            w.WriteString("tokenizer_class", Kind == "llama" ? "LlamaTokenizerFast" : "GPT2TokenizerFast");
            w.WriteEndObject();
        });
    }

    /// <summary>The tokenizer.ggml.* keys llama.cpp reads.</summary>
    public IEnumerable<KeyValuePair<string, GgufValue>> GgufMetadata()
    {
        yield return new("tokenizer.ggml.model", Kind);
        if (Pre is not null) yield return new("tokenizer.ggml.pre", Pre);
        yield return new("tokenizer.ggml.tokens", GgufValue.Array(Tokens));
        if (Scores is not null) yield return new("tokenizer.ggml.scores", GgufValue.Array(Scores));
        yield return new("tokenizer.ggml.token_type", GgufValue.Array(TokenTypes));
        if (Kind == "gpt2") yield return new("tokenizer.ggml.merges", GgufValue.Array(Merges));
        yield return new("tokenizer.ggml.bos_token_id", (uint)BosId);
        yield return new("tokenizer.ggml.eos_token_id", (uint)EosId);
        if (UnknownId is { } unk) yield return new("tokenizer.ggml.unknown_token_id", (uint)unk);
        yield return new("tokenizer.ggml.add_bos_token", AddBos);
        yield return new("tokenizer.ggml.add_eos_token", false);
    }

    internal static void WriteJson(string path, Action<Utf8JsonWriter> body)
    {
        var tmp = path + $".{Guid.NewGuid():N}.tmp";
        using (var fs = File.Create(tmp))
        using (var w = new Utf8JsonWriter(fs, new JsonWriterOptions { Indented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
            body(w);
        File.Move(tmp, path, overwrite: true);
    }
}
