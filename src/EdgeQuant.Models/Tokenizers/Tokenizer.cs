using System.Text;
using EdgeQuant.Core.Errors;

namespace EdgeQuant.Models.Tokenizers;

/// <summary>
/// A tokenizer that encodes like llama.cpp's <c>llama_tokenize</c> (node-llama-cpp@3.22.1): SentencePiece-style BPE
/// with byte fallback ("llama") or byte-level BPE with a named pre-tokenizer ("gpt2"), special and user-defined tokens
/// matched before pre-tokenization. Built from GGUF metadata, <see cref="TokenizerData"/> or an HF tokenizer.json;
/// writes itself back as GGUF metadata or tokenizer.json. Thread-safe for concurrent Encode/Decode calls.
/// </summary>
public sealed partial class Tokenizer
{
    private const char Escape = '\u2581';

    private readonly string[] _tokens;
    private readonly float[] _scores;
    private readonly TokenAttributes[] _attrs;
    private readonly Dictionary<string, int> _toId;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _lookup;
    private readonly int[] _specialCache;
    private readonly byte[][] _pieces;

    // Byte-level BPE: every string that is a token or a merge operand gets a symbol id (token id, or a virtual id past
    // the vocabulary for operands that are not tokens), and merges are ranked by symbol-id pair.
    private readonly Dictionary<string, int>? _symbolIds;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _symbolLookup;
    private readonly Dictionary<long, int>? _pairRank;
    private readonly string[]? _merges;
    private readonly WordCache _cache = new();

    private Tokenizer(TokenizerSpec spec)
    {
        SourcePath = spec.SourcePath;
        Kind = spec.Kind;
        int n = spec.Tokens.Count;
        if (n == 0) throw new BadInputException($"{spec.SourcePath}: tokenizer.ggml.tokens: the vocabulary is empty");
        _tokens = new string[n];
        _toId = new Dictionary<string, int>(n, StringComparer.Ordinal);
        for (int i = 0; i < n; i++)
        {
            var t = spec.Tokens[i];
            if (string.IsNullOrEmpty(t)) t = $"[EMPTY_{i}]"; // llama.cpp renames empty tokens the same way
            _tokens[i] = t;
            _toId[t] = i; // a later duplicate wins, as in llama.cpp's token_to_id
        }
        _lookup = _toId.GetAlternateLookup<ReadOnlySpan<char>>();

        if (spec.Scores is { } sc && sc.Length < n)
            throw new BadInputException($"{spec.SourcePath}: tokenizer.ggml.scores: {sc.Length} scores for {n} tokens");
        _scores = spec.Scores ?? new float[n];
        if (spec.TokenTypes is { } tt && tt.Length < n)
            throw new BadInputException($"{spec.SourcePath}: tokenizer.ggml.token_type: {tt.Length} types for {n} tokens");

        ChatTemplate = spec.ChatTemplate;
        ModelName = spec.ModelName;

        // Defaults per tokenizer kind, then what the source states (llama_vocab::impl::load).
        bool addBos, addEos = false, addSpacePrefix;
        int? bos, eos, unk, pad = null;
        if (Kind == TokenizerKind.SentencePiece)
        {
            bos = 1; eos = 2; unk = 0;
            addSpacePrefix = true;
            addBos = true;
        }
        else
        {
            PreTokenizer = spec.PrePatterns is { Count: > 0 } pats
                ? PreTokenizer.FromPatterns(spec.Pre ?? "custom", pats, spec.IgnoreMerges ?? false)
                : PreTokenizer.ForName(spec.Pre, spec.SourcePath);
            bos = 11; eos = 11; unk = null;
            addSpacePrefix = false;
            addBos = PreTokenizer.AddBosDefault;
            IgnoreMerges = spec.IgnoreMerges ?? PreTokenizer.IgnoreMerges;
        }
        addSpacePrefix = spec.AddSpacePrefix ?? addSpacePrefix;
        static int? InRange(int? id, int n) => id is { } v && v >= 0 && v < n ? v : null;
        bos = InRange(bos, n); eos = InRange(eos, n); unk = InRange(unk, n);
        // An out-of-range id in the source keeps the default, as llama.cpp does ("bad special token").
        bos = InRange(spec.BosId, n) ?? bos;
        eos = InRange(spec.EosId, n) ?? eos;
        unk = InRange(spec.UnknownId, n) ?? unk;
        pad = InRange(spec.PaddingId, n) ?? pad;
        addBos = spec.AddBos ?? addBos;
        addEos = spec.AddEos ?? addEos;
        BosId = bos; EosId = eos; UnknownId = unk; PaddingId = pad;
        AddBos = addBos; AddEos = addEos; AddSpacePrefix = addSpacePrefix;

        _attrs = BuildAttributes(spec, n);
        _specialCache = BuildSpecialCache();
        ApplyModelSpecificAttributes(spec.ModelName);

        if (Kind == TokenizerKind.ByteLevelBpe)
        {
            if (spec.Merges is null)
                throw new BadInputException($"{spec.SourcePath}: tokenizer.ggml.merges: a byte-level BPE vocabulary needs merges");
            _merges = [.. spec.Merges];
            _symbolIds = new Dictionary<string, int>(_toId, StringComparer.Ordinal);
            _symbolLookup = _symbolIds.GetAlternateLookup<ReadOnlySpan<char>>();
            _pairRank = new Dictionary<long, int>(_merges.Length);
            for (int r = 0; r < _merges.Length; r++)
            {
                var m = _merges[r];
                // llama.cpp splits at the first space after the first character, so a merge may start with a space.
                int sp = m.Length > 1 ? m.IndexOf(' ', 1) : -1;
                string a = sp >= 0 ? m[..sp] : "", b = sp >= 0 ? m[(sp + 1)..] : "";
                long key = ((long)SymbolId(a) << 32) | (uint)SymbolId(b);
                _pairRank.TryAdd(key, r); // emplace keeps the first rank of a repeated pair
            }
        }
        _pieces = new byte[n][];
    }

    private int SymbolId(string s)
    {
        if (_symbolIds!.TryGetValue(s, out int id)) return id;
        id = _tokens.Length + _symbolIds.Count - _toId.Count;
        _symbolIds[s] = id;
        return id;
    }

    public string SourcePath { get; }
    public TokenizerKind Kind { get; }

    /// <summary>The pre-tokenizer (byte-level BPE only).</summary>
    public PreTokenizer? PreTokenizer { get; }

    public bool IgnoreMerges { get; }
    public int VocabSize => _tokens.Length;
    public int? BosId { get; }
    public int? EosId { get; }
    public int? UnknownId { get; }
    public int? PaddingId { get; }

    /// <summary>Encode with <c>addSpecial</c> prepends BOS when this is true (GGUF <c>tokenizer.ggml.add_bos_token</c>).</summary>
    public bool AddBos { get; }

    public bool AddEos { get; }

    /// <summary>
    /// SentencePiece's dummy prefix: a space is put before the text and after every special token, so "Hello" is
    /// encoded as "▁Hello". <see cref="Decode"/> removes it again from the start (the documented leading-space rule).
    /// </summary>
    public bool AddSpacePrefix { get; }

    public string? ChatTemplate { get; }
    public string? ModelName { get; }

    public string TokenText(int id) => _tokens[CheckId(id)];
    public float TokenScore(int id) => _scores[CheckId(id)];
    public TokenAttributes TokenAttributes(int id) => _attrs[CheckId(id)];

    /// <summary>The id of a token by its exact text, or null.</summary>
    public int? TokenId(string text) => _toId.TryGetValue(text, out int id) ? id : null;

    private int CheckId(int id) =>
        (uint)id < (uint)_tokens.Length ? id : throw new BadInputException($"{SourcePath}: token id {id} is outside the vocabulary (0..{_tokens.Length - 1})");

    public static Tokenizer FromSpec(TokenizerSpec spec) => new(spec);

    /// <summary>Builds a tokenizer from what a model loader read (GGUF tokenizer.ggml.*, a llama2.c tokenizer.bin, …).</summary>
    public static Tokenizer FromData(TokenizerData data, string? modelName = null, bool? addSpacePrefix = null) => new(new TokenizerSpec
    {
        Kind = ParseKind(data.Kind, data.SourcePath),
        Pre = data.Pre,
        Tokens = data.Tokens,
        Scores = data.Scores,
        TokenTypes = data.TokenTypes,
        Merges = data.Merges,
        BosId = data.BosId,
        EosId = data.EosId,
        UnknownId = data.UnknownId,
        PaddingId = data.PaddingId,
        AddBos = data.AddBos,
        AddEos = data.AddEos,
        AddSpacePrefix = addSpacePrefix,
        ChatTemplate = data.ChatTemplate,
        ModelName = modelName,
        SourcePath = data.SourcePath,
    });

    internal static TokenizerKind ParseKind(string kind, string source) => kind switch
    {
        "llama" => TokenizerKind.SentencePiece,
        "gpt2" => TokenizerKind.ByteLevelBpe,
        _ => throw new BadInputException($"{source}: tokenizer.ggml.model: tokenizer '{kind}' is not supported (supported: llama, gpt2)"),
    };

    public static string KindName(TokenizerKind kind) => kind == TokenizerKind.SentencePiece ? "llama" : "gpt2";

    /// <summary>The tokenizer as <see cref="TokenizerData"/> (GGUF field spellings).</summary>
    public TokenizerData ToData() => new()
    {
        Kind = KindName(Kind),
        Pre = PreTokenizer?.Name,
        Tokens = _tokens,
        Scores = Kind == TokenizerKind.SentencePiece ? (float[])_scores.Clone() : null,
        TokenTypes = _attrs.Select(a => (int)TokenTypeMapping.ToGguf(a)).ToArray(),
        Merges = _merges,
        BosId = BosId,
        EosId = EosId,
        UnknownId = UnknownId,
        PaddingId = PaddingId,
        AddBos = AddBos,
        AddEos = AddEos,
        ChatTemplate = ChatTemplate,
        SourcePath = SourcePath,
    };

    private TokenAttributes[] BuildAttributes(TokenizerSpec spec, int n)
    {
        var attrs = new TokenAttributes[n];
        if (spec.TokenTypes is { } types)
        {
            for (int i = 0; i < n; i++) attrs[i] = TokenTypeMapping.ToAttributes(types[i]);
        }
        else if (Kind == TokenizerKind.SentencePiece)
        {
            // No types (a llama2.c tokenizer.bin): classify as llama.cpp's llama2.c converter does.
            for (int i = 0; i < n; i++)
            {
                var t = _tokens[i];
                attrs[i] = i == UnknownId ? Tokenizers.TokenAttributes.Unknown
                    : i == BosId || i == EosId ? Tokenizers.TokenAttributes.Control
                    : IsByteToken(t) ? Tokenizers.TokenAttributes.Byte
                    : Tokenizers.TokenAttributes.Normal;
            }
        }
        else Array.Fill(attrs, Tokenizers.TokenAttributes.Normal);

        if (spec.ExtraAttributes is { } extra)
            foreach (var (id, a) in extra)
                if ((uint)id < (uint)n) attrs[id] |= a;

        // llama.cpp marks end-of-generation and FIM tokens found by their text as control tokens.
        foreach (var text in ControlLookingTokens)
            if (_toId.TryGetValue(text, out int id)) attrs[id] |= Tokenizers.TokenAttributes.Control;
        for (int i = 0; i < n; i++)
            if ((attrs[i] & Tokenizers.TokenAttributes.Control) != 0 && _tokens[i].Contains("unused", StringComparison.Ordinal))
                attrs[i] |= Tokenizers.TokenAttributes.Unused;
        foreach (var text in (string[])["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"])
            if (_toId.TryGetValue(text, out int id)) attrs[id] = Tokenizers.TokenAttributes.UserDefined;
        return attrs;
    }

    // EOT, EOM, FIM and EOG texts from llama_vocab::impl::load.
    private static readonly string[] ControlLookingTokens =
    [
        "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>", "<EOT>", "_<EOT>",
        "[EOT]", "<｜end▁of▁sentence｜>", "<end_of_utterance>", "<|eom_id|>", "<|return|>", "<|call|>", "<|flush|>",
        "<|calls|>", "</s>", "[EOS]", "<eos>", "<turn|>", "<|tool_response>", "[e~[",
        "<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<｜fim▁begin｜>", "<PRE>", "▁<PRE>", "<|code_prefix|>", "<|prefix|>",
        "<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<｜fim▁hole｜>", "<SUF>", "▁<SUF>", "<|code_suffix|>", "<|suffix|>",
        "<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<｜fim▁end｜>", "<MID>", "▁<MID>", "<|code_middle|>", "<|middle|>",
        "<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]",
        "<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>", "<|file_sep|>",
    ];

    private int[] BuildSpecialCache()
    {
        const TokenAttributes special = Tokenizers.TokenAttributes.Control | Tokenizers.TokenAttributes.UserDefined | Tokenizers.TokenAttributes.Unknown;
        var ids = new List<int>();
        for (int i = 0; i < _attrs.Length; i++)
            if ((_attrs[i] & special) != 0) ids.Add(i);
        // Longest text first; equal lengths by id (llama.cpp's std::sort leaves their order unspecified).
        return [.. ids.OrderByDescending(i => _tokens[i].Length).ThenBy(i => i)];
    }

    private void ApplyModelSpecificAttributes(string? modelName)
    {
        var name = modelName?.ToLowerInvariant() ?? "";
        if (name.Contains("phi-3", StringComparison.Ordinal) || name.Contains("phi3", StringComparison.Ordinal))
        {
            foreach (var id in _specialCache) _attrs[id] |= Tokenizers.TokenAttributes.RStrip;
            if (_toId.TryGetValue("</s>", out int s)) _attrs[s] |= Tokenizers.TokenAttributes.RStrip;
            foreach (var t in (string[])["<unk>", "<s>", "<|endoftext|>"])
                if (_toId.TryGetValue(t, out int id)) _attrs[id] &= ~Tokenizers.TokenAttributes.RStrip;
        }
    }

    internal static bool IsByteToken(string t) =>
        t.Length == 6 && t.StartsWith("<0x", StringComparison.Ordinal) && t[5] == '>' && Uri.IsHexDigit(t[3]) && Uri.IsHexDigit(t[4]);

    // ---------------------------------------------------------------- encoding

    /// <summary>Encodes UTF-8 bytes, refusing invalid UTF-8 (BadInputException naming the byte offset).</summary>
    public int[] Encode(ReadOnlySpan<byte> utf8, bool addSpecial = true, bool parseSpecial = false, string what = "text") =>
        Encode(UnicodeData.DecodeUtf8Strict(utf8, what), addSpecial, parseSpecial);

    /// <summary>
    /// Encodes text like <c>llama_tokenize(vocab, text, add_special, parse_special)</c>: with <paramref name="addSpecial"/>
    /// BOS/EOS are added as the metadata says; control tokens in the text are only recognised with
    /// <paramref name="parseSpecial"/> (user-defined tokens always are).
    /// </summary>
    public int[] Encode(string text, bool addSpecial = true, bool parseSpecial = false)
    {
        ArgumentNullException.ThrowIfNull(text);
        foreach (var ch in text)
            if (char.IsSurrogate(ch)) { ValidateSurrogates(text); break; }
        var output = new List<int>(text.Length / 3 + 4);
        var fragments = Partition(text, parseSpecial);

        if (addSpecial && AddBos) output.Add(BosId ?? throw new BadInputException($"{SourcePath}: the tokenizer adds BOS but has no BOS token id"));
        if (Kind == TokenizerKind.SentencePiece)
        {
            bool prevSpecial = true;
            var sb = new StringBuilder();
            var chain = new SymbolChain();
            foreach (var f in fragments)
            {
                if (f.Token >= 0)
                {
                    output.Add(f.Token);
                    prevSpecial = true;
                    continue;
                }
                sb.Clear();
                if (AddSpacePrefix && prevSpecial) sb.Append(' ');
                sb.Append(text, f.Start, f.Length);
                sb.Replace(' ', Escape);
                EncodeSentencePieceChunked(sb.ToString(), output, chain);
                prevSpecial = false;
            }
        }
        else
        {
            var chain = new SymbolChain();
            foreach (var f in fragments)
            {
                if (f.Token >= 0) { output.Add(f.Token); continue; }
                foreach (var word in PreTokenizer!.Split(text.Substring(f.Start, f.Length)))
                    EncodeWord(word, output, chain);
            }
        }
        if (addSpecial && AddEos) output.Add(EosId ?? throw new BadInputException($"{SourcePath}: the tokenizer adds EOS but has no EOS token id"));
        return [.. output];
    }

    private static void ValidateSurrogates(string text)
    {
        for (int i = 0; i < text.Length; i++)
        {
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1])) { i++; continue; }
            if (char.IsSurrogate(text[i])) throw new BadInputException($"text: unpaired surrogate at character {i} (not valid Unicode)");
        }
    }

    private readonly record struct Fragment(int Token, int Start, int Length);

    // tokenizer_st_partition: every special token, longest first, splits every raw fragment at all its occurrences.
    private List<Fragment> Partition(string text, bool parseSpecial)
    {
        var list = new List<Fragment>();
        if (text.Length == 0) return list;
        list.Add(new Fragment(-1, 0, text.Length));
        var next = new List<Fragment>();
        foreach (int id in _specialCache)
        {
            var a = _attrs[id];
            if (!parseSpecial && (a & (Tokenizers.TokenAttributes.Control | Tokenizers.TokenAttributes.Unknown)) != 0) continue;
            var tok = _tokens[id];
            bool any = false;
            foreach (var f in list)
                if (f.Token < 0 && text.AsSpan(f.Start, f.Length).IndexOf(tok, StringComparison.Ordinal) >= 0) { any = true; break; }
            if (!any) continue;

            next.Clear();
            foreach (var f in list)
            {
                if (f.Token >= 0) { next.Add(f); continue; }
                int off = f.Start, len = f.Length;
                while (true)
                {
                    int rel = text.AsSpan(off, len).IndexOf(tok, StringComparison.Ordinal);
                    if (rel < 0)
                    {
                        next.Add(new Fragment(-1, off, len));
                        break;
                    }
                    int match = off + rel;
                    if (match > off)
                    {
                        int leftLen = match - off;
                        if ((a & Tokenizers.TokenAttributes.LStrip) != 0)
                            while (leftLen > 0 && IsCSpace(text[off + leftLen - 1])) leftLen--;
                        if (leftLen > 0) next.Add(new Fragment(-1, off, leftLen));
                    }
                    next.Add(new Fragment(id, 0, 0));
                    int rightStart = match + tok.Length;
                    int rightLen = off + len - rightStart;
                    if (rightLen <= 0) break;
                    if ((a & Tokenizers.TokenAttributes.RStrip) != 0)
                        while (rightLen > 0 && IsCSpace(text[rightStart])) { rightStart++; rightLen--; }
                    if (rightLen <= 0) break;
                    off = rightStart;
                    len = rightLen;
                }
            }
            (list, next) = (next, list);
        }
        return list;
    }

    private static bool IsCSpace(char c) => c is ' ' or '\t' or '\n' or '\v' or '\f' or '\r';

    // Adjacent code point pairs that occur inside some token: a merge can only ever join two characters whose pair is
    // here, so the text can be cut between any other two characters and each piece merged on its own with the same
    // result as llama.cpp's single pass over the whole text, but with a small, cache-friendly queue.
    private HashSet<long>? _innerPairs;

    private HashSet<long> InnerPairs()
    {
        var set = Volatile.Read(ref _innerPairs);
        if (set is not null) return set;
        set = [];
        foreach (var t in _tokens)
        {
            int prev = -1;
            foreach (var r in t.EnumerateRunes())
            {
                if (prev >= 0) set.Add(((long)prev << 21) | (uint)r.Value);
                prev = r.Value;
            }
        }
        Volatile.Write(ref _innerPairs, set);
        return set;
    }

    private void EncodeSentencePieceChunked(string text, List<int> output, SymbolChain s)
    {
        var pairs = InnerPairs();
        var queue = new SpmHeap();
        int chunkStart = 0, prev = -1;
        for (int i = 0; i < text.Length;)
        {
            int cp = char.IsHighSurrogate(text[i]) && i + 1 < text.Length ? char.ConvertToUtf32(text[i], text[i + 1]) : text[i];
            if (prev >= 0 && !pairs.Contains(((long)prev << 21) | (uint)cp))
            {
                EncodeSentencePiece(text, chunkStart, i, output, s, queue);
                chunkStart = i;
            }
            prev = cp;
            i += cp >= 0x10000 ? 2 : 1;
        }
        if (chunkStart < text.Length) EncodeSentencePiece(text, chunkStart, text.Length, output, s, queue);
    }

    private void EncodeSentencePiece(string text, int from, int to, List<int> output, SymbolChain s, SpmHeap queue)
    {
        s.Reset(text, from, to);
        queue.Clear();
        for (int i = 1; i < s.Count; i++) TryAddSpm(text, s, queue, i - 1, i);
        while (queue.TryPop(out int left, out int right, out int size))
        {
            if (s.Length[left] == 0 || s.Length[right] == 0 || s.Length[left] + s.Length[right] != size) continue;
            s.Merge(left, right);
            TryAddSpm(text, s, queue, s.Prev[left], left);
            TryAddSpm(text, s, queue, left, s.Next[left]);
        }
        Span<byte> buf = stackalloc byte[8];
        for (int i = 0; i != -1 && s.Count > 0; i = s.Next[i])
        {
            var piece = text.AsSpan(s.Start[i], s.Length[i]);
            if (_lookup.TryGetValue(piece, out int id)) { output.Add(id); continue; }
            // Symbols only ever merge into tokens, so a symbol that is not a token is a single character: bytes.
            int nb = Encoding.UTF8.GetBytes(piece, buf);
            for (int j = 0; j < nb; j++) output.Add(ByteToToken(buf[j]));
        }
    }

    private void TryAddSpm(string text, SymbolChain s, SpmHeap queue, int left, int right)
    {
        if (left == -1 || right == -1) return;
        int size = s.Length[left] + s.Length[right];
        if (!_lookup.TryGetValue(text.AsSpan(s.Start[left], size), out int id)) return;
        queue.Push(_scores[id], left, right, size);
    }

    private int ByteToToken(byte b)
    {
        if (Kind == TokenizerKind.SentencePiece)
        {
            Span<char> hex = ['<', '0', 'x', HexDigit(b >> 4), HexDigit(b & 15), '>'];
            if (_lookup.TryGetValue(hex, out int id)) return id;
            if (b < 0x80 && _lookup.TryGetValue([(char)b], out id)) return id;
            // llama.cpp aborts here (a vocabulary without byte tokens); the unknown token is the useful answer.
            return UnknownId ?? throw new BadInputException($"{SourcePath}: byte 0x{b:X2} has no <0x{b:X2}> token and there is no unknown token");
        }
        return _lookup.TryGetValue([ByteLevelMap.Encode(b)], out int bid) ? bid : -1;
    }

    private static char HexDigit(int v) => (char)(v < 10 ? '0' + v : 'A' + v - 10);

    private void EncodeWord(string word, List<int> output, SymbolChain s)
    {
        if (_cache.TryGet(word, out var cached)) { output.AddRange(cached); return; }
        int before = output.Count;
        EncodeWordUncached(ByteLevelMap.Encode(Encoding.UTF8.GetBytes(word)), output, s);
        _cache.Add(word, output.GetRange(before, output.Count - before).ToArray());
    }

    private void EncodeWordUncached(string word, List<int> output, SymbolChain s)
    {
        if (IgnoreMerges && _lookup.TryGetValue(word, out int whole)) { output.Add(whole); return; }
        s.Reset(word);
        for (int i = 0; i < s.Count; i++)
            s.Sid[i] = _symbolLookup.TryGetValue(word.AsSpan(s.Start[i], s.Length[i]), out int sid) ? sid : -1;
        var queue = new PriorityQueue<Bigram, (int, int)>(BpeBigramComparer.Instance);
        for (int i = 1; i < s.Count; i++) TryAddBpe(s, queue, i - 1, i);
        while (queue.TryDequeue(out var bg, out _))
        {
            if (s.Length[bg.Left] == 0 || s.Length[bg.Right] == 0 || s.Length[bg.Left] + s.Length[bg.Right] != bg.Size) continue;
            s.Merge(bg.Left, bg.Right);
            s.Sid[bg.Left] = _symbolLookup.TryGetValue(word.AsSpan(s.Start[bg.Left], s.Length[bg.Left]), out int sid) ? sid : -1;
            TryAddBpe(s, queue, s.Prev[bg.Left], bg.Left);
            TryAddBpe(s, queue, bg.Left, s.Next[bg.Left]);
        }
        for (int i = 0; i != -1 && s.Count > 0; i = s.Next[i])
        {
            var piece = word.AsSpan(s.Start[i], s.Length[i]);
            if (_lookup.TryGetValue(piece, out int id)) { output.Add(id); continue; }
            // llama.cpp looks each UTF-8 byte of the piece up as a one-byte token and drops those it cannot find.
            // Only ASCII characters are one-byte strings, so only they can be found.
            foreach (var ch in piece)
                if (ch < 0x80 && _lookup.TryGetValue([ch], out int bid)) output.Add(bid);
        }
    }

    private void TryAddBpe(SymbolChain s, PriorityQueue<Bigram, (int, int)> queue, int left, int right)
    {
        if (left == -1 || right == -1) return;
        int a = s.Sid[left], b = s.Sid[right];
        if (a < 0 || b < 0) return;
        if (!_pairRank!.TryGetValue(((long)a << 32) | (uint)b, out int rank)) return;
        queue.Enqueue(new Bigram(left, right, s.Length[left] + s.Length[right]), (rank, left));
    }

    // ---------------------------------------------------------------- decoding

    /// <summary>
    /// The bytes a token stands for (llama_token_to_piece): control and unknown tokens render as their text only with
    /// <paramref name="special"/>; user-defined tokens as their text; SentencePiece pieces with ▁ as space; byte tokens
    /// as their byte; byte-level pieces through the byte map.
    /// </summary>
    public byte[] TokenToPiece(int id, bool special = false)
    {
        var a = _attrs[CheckId(id)];
        if (!special && (a & (Tokenizers.TokenAttributes.Unknown | Tokenizers.TokenAttributes.Control)) != 0) return [];
        var cached = Volatile.Read(ref _pieces[id]);
        if (cached is not null) return cached;
        var piece = ComputePiece(id, a);
        Volatile.Write(ref _pieces[id], piece);
        return piece;
    }

    private byte[] ComputePiece(int id, TokenAttributes a)
    {
        var text = _tokens[id];
        if ((a & (Tokenizers.TokenAttributes.Unknown | Tokenizers.TokenAttributes.Control | Tokenizers.TokenAttributes.UserDefined)) != 0)
            return Encoding.UTF8.GetBytes(text);
        if ((a & Tokenizers.TokenAttributes.Normal) != 0)
        {
            if (Kind == TokenizerKind.SentencePiece) return Encoding.UTF8.GetBytes(text.Replace(Escape, ' '));
            var bytes = new List<byte>(text.Length);
            Span<byte> u = stackalloc byte[4];
            foreach (var r in text.EnumerateRunes())
            {
                int b = r.Value < 0x10000 ? ByteLevelMap.Decode((char)r.Value) : -1;
                if (b >= 0) { bytes.Add((byte)b); continue; }
                // llama_decode_text's marker for a character outside the byte map.
                bytes.AddRange(Encoding.UTF8.GetBytes("[UNK_BYTE_0x"));
                int nu = r.EncodeToUtf8(u);
                for (int k = 0; k < nu; k++) bytes.AddRange(Encoding.ASCII.GetBytes(u[k].ToString("x2")));
                bytes.AddRange(Encoding.UTF8.GetBytes(text + "]"));
            }
            return [.. bytes];
        }
        if ((a & Tokenizers.TokenAttributes.Byte) != 0 && IsByteToken(text))
            return [Convert.ToByte(text.Substring(3, 2), 16)];
        return [];
    }

    /// <summary>
    /// Concatenates the pieces of <paramref name="ids"/> into bytes. With <paramref name="removeLeadingSpace"/> and a
    /// tokenizer that adds a space prefix, one space is removed from the start of the first piece that follows the
    /// start or a BOS token, so Decode(Encode(text)) == text.
    /// </summary>
    public byte[] DecodeBytes(IEnumerable<int> ids, bool special = false, bool removeLeadingSpace = true)
    {
        var ms = new MemoryStream();
        bool strip = removeLeadingSpace && AddSpacePrefix;
        foreach (var id in ids)
        {
            var p = TokenToPiece(id, special);
            if (strip && id == BosId && p.Length == 0) continue;
            if (strip && p.Length > 0)
            {
                strip = false;
                if (p[0] == (byte)' ') { ms.Write(p, 1, p.Length - 1); continue; }
            }
            else if (p.Length > 0) strip = false;
            ms.Write(p);
        }
        return ms.ToArray();
    }

    /// <summary>Decodes to a string; bytes that do not form valid UTF-8 (a sequence cut mid-character) become U+FFFD.</summary>
    public string Decode(IEnumerable<int> ids, bool special = false, bool removeLeadingSpace = true) =>
        Encoding.UTF8.GetString(DecodeBytes(ids, special, removeLeadingSpace));

    /// <summary>A bounded cache of encoded words; cleared when full (byte-level BPE words repeat heavily in text).</summary>
    private sealed class WordCache
    {
        private const int Capacity = 1 << 17;
        private readonly Dictionary<string, int[]> _map = new(StringComparer.Ordinal);
        private readonly Lock _lock = new();

        public bool TryGet(string word, out int[] ids)
        {
            lock (_lock) return _map.TryGetValue(word, out ids!);
        }

        public void Add(string word, int[] ids)
        {
            lock (_lock)
            {
                if (_map.Count >= Capacity) _map.Clear();
                _map[word] = ids;
            }
        }
    }
}
