using System.Text;
using System.Text.RegularExpressions;
using EdgeQuant.Core.Errors;

namespace EdgeQuant.Models.Tokenizers;

/// <summary>
/// One step of pre-tokenization: refines a list of word lengths (in code points) into finer ones, as one entry of
/// llama.cpp's <c>regex_exprs</c> does in <c>unicode_regex_split</c>.
/// </summary>
internal abstract class SplitRule
{
    /// <summary>The rule as llama.cpp spells it (a regex), for tokenizer.json export and messages.</summary>
    public abstract string Pattern { get; }

    public abstract void Split(int[] cpts, List<int> input, List<int> output);
}

/// <summary>
/// A pre-tokenizer: the ordered split rules of one <c>tokenizer.ggml.pre</c> type and whether words are then mapped to
/// GPT-2's byte characters. Rules, order and quirks follow llama-vocab.cpp / unicode.cpp of node-llama-cpp@3.22.1.
/// </summary>
public sealed class PreTokenizer
{
    internal PreTokenizer(string name, IReadOnlyList<SplitRule> rules, bool ignoreMerges = false, bool addBos = false)
    {
        Name = name;
        Rules = rules;
        IgnoreMerges = ignoreMerges;
        AddBosDefault = addBos;
    }

    /// <summary>The GGUF <c>tokenizer.ggml.pre</c> name.</summary>
    public string Name { get; }

    internal IReadOnlyList<SplitRule> Rules { get; }

    /// <summary>llama.cpp's ignore_merges: a word that is a token as a whole is emitted without merging.</summary>
    public bool IgnoreMerges { get; }

    /// <summary>llama.cpp turns add_bos on for some types before reading <c>tokenizer.ggml.add_bos_token</c>.</summary>
    public bool AddBosDefault { get; }

    /// <summary>The regex patterns, in order (for export and display).</summary>
    public IEnumerable<string> Patterns => Rules.Select(r => r.Pattern);

    /// <summary>Splits text into words (each a substring of <paramref name="text"/>).</summary>
    public List<string> Split(string text)
    {
        var cpts = UnicodeData.CodePoints(text);
        var offsets = new List<int> { cpts.Length };
        var next = new List<int>();
        foreach (var rule in Rules)
        {
            next.Clear();
            rule.Split(cpts, offsets, next);
            (offsets, next) = (next, offsets);
        }
        var words = new List<string>(offsets.Count);
        var sb = new StringBuilder();
        int pos = 0;
        foreach (var len in offsets)
        {
            sb.Clear();
            for (int i = pos; i < pos + len; i++) UnicodeData.AppendCodePoint(sb, cpts[i]);
            pos += len;
            if (len > 0) words.Add(sb.ToString());
        }
        return words;
    }

    internal const string Gpt2Regex = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
    internal const string Llama3Regex = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    internal const string Llama3RegexOriginal = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    internal const string Qwen2Regex = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    internal const string Qwen2RegexOriginal = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

    // Copied from llama-vocab.cpp (LLAMA_VOCAB_PRE_TYPE_DEEPSEEK_LLM); the character classes are data, not code.
    private static readonly string[] DeepseekLlmRegexes =
    [
                    "[\r\n]",
                    "\\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-ώᾀ-ᾴᾶ-ᾼιῂ-ῄῆ-ῌῐ-ΐῖ-Ίῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤΩℨK-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+",
                    "\\s?[!-/:-~！-／：-～‘-‟　-。]+",
                    "\\s+$",
                    "[一-龥ࠀ-一가-퟿]+",
                    "\\p{N}+",
    ];

    private static readonly string[] DefaultRegexes =
    [
        "[\\p{P}\\$\\+<=>\\^~\\|]+",
        Gpt2Regex,
        "\\p{N}+",
        "[0-9][0-9][0-9]",
    ];

    private static readonly string[] DeepseekCoderRegexes =
    [
        "[\r\n]",
        "\\s?\\p{L}+",
        "\\s?\\p{P}+",
        "[一-龥ࠀ-一가-퟿]+",
        "\\p{N}",
    ];

    private static readonly string[] FalconRegexes =
    [
        "[\\p{P}\\$\\+<=>\\^~\\|`]+",
        Gpt2Regex,
        "[0-9][0-9][0-9]",
    ];

    private static readonly string[] StarcoderRegexes = ["\\p{N}", Gpt2Regex];

    private static readonly string[] BloomRegexes = [" ?[^(\\s|.,!?…。，、।۔،)]+"];

    private static readonly string[] VikingRegexes = [" ?[^(\\s|.,!?…。，、।۔،)]+", "\\p{N}"];

    private static readonly HashSet<string> Llama3Names = ["llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2", "jina-v5-nano"];
    private static readonly HashSet<string> Gpt2Names = ["gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de", "a.x-4.0", "mellum", "modern-bert", "jina-v1-en", "jina-v2-code", "roberta-bpe", "exaone4", "mpt", "olmo", "jais", "trillion", "granite-docling"];
    private static readonly HashSet<string> Qwen2Names = ["qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "megrez", "stablelm2", "hunyuan", "solar-open"];
    private static readonly HashSet<string> StarcoderNames = ["starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b", "mellum2"];
    private static readonly HashSet<string> Llama3RegexNoIgnoreMerges = ["dbrx", "smaug-bpe", "glm4", "chatglm-bpe"];

    /// <summary>Every <c>tokenizer.ggml.pre</c> name this implementation knows.</summary>
    public static IEnumerable<string> KnownNames =>
        ((string[])["gpt-2", "llama-bpe", "qwen2", "starcoder", "deepseek-llm", "deepseek-coder", "falcon", "default"]).Concat(Llama3Names.Concat(Gpt2Names).Concat(Qwen2Names).Concat(StarcoderNames).Concat(Llama3RegexNoIgnoreMerges)
            .Concat(["poro-chat", "bloom", "gpt3-finnish", "viking"])).Distinct();

    /// <summary>The regexes llama.cpp runs for a <c>tokenizer.ggml.pre</c> name, in order, or null for an unknown name.</summary>
    public static IReadOnlyList<string>? PatternsFor(string name)
    {
        if (Llama3Names.Contains(name) || Llama3RegexNoIgnoreMerges.Contains(name)) return [Llama3Regex];
        if (Gpt2Names.Contains(name)) return [Gpt2Regex];
        if (Qwen2Names.Contains(name)) return [Qwen2Regex];
        if (StarcoderNames.Contains(name)) return StarcoderRegexes;
        return name switch
        {
            "default" => DefaultRegexes,
            "deepseek-llm" => DeepseekLlmRegexes,
            "deepseek-coder" => DeepseekCoderRegexes,
            "falcon" => FalconRegexes,
            "poro-chat" or "bloom" or "gpt3-finnish" => BloomRegexes,
            "viking" => VikingRegexes,
            _ => null,
        };
    }

    /// <summary>The pre-tokenizer llama.cpp uses for a byte-level BPE vocabulary with this <c>tokenizer.ggml.pre</c>.</summary>
    public static PreTokenizer ForName(string? pre, string source)
    {
        var name = string.IsNullOrEmpty(pre) ? "default" : pre;
        var patterns = PatternsFor(name)
            ?? throw new BadInputException($"{source}: tokenizer.ggml.pre: unknown pre-tokenizer type '{name}' (known: {string.Join(", ", KnownNames.Order(StringComparer.Ordinal))})");
        bool llama3 = Llama3Names.Contains(name);
        return new(name, MakeRules(patterns), ignoreMerges: llama3, addBos: llama3);
    }

    /// <summary>A pre-tokenizer from regex patterns as llama.cpp would run them (hand-written fast paths where llama.cpp has them).</summary>
    internal static PreTokenizer FromPatterns(string name, IEnumerable<string> patterns, bool ignoreMerges) =>
        new(name, MakeRules(patterns), ignoreMerges);

    private static List<SplitRule> MakeRules(IEnumerable<string> patterns) => patterns.Select(RuleFor).ToList();

    internal static SplitRule RuleFor(string pattern) => pattern switch
    {
        Gpt2Regex => new Gpt2Split(),
        Llama3Regex or Llama3RegexOriginal => new Llama3Split(pattern, maxDigits: 3),
        Qwen2Regex or Qwen2RegexOriginal => new Llama3Split(pattern, maxDigits: 1),
        _ => new StdRegexSplit(pattern),
    };
}

/// <summary>
/// llama.cpp's hand-written GPT-2 splitter (unicode_regex_split_custom_gpt2): the regex
/// <c>'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+</c>, ported as written because the
/// test vectors and the real llama_tokenize are produced by exactly this code.
/// </summary>
internal sealed class Gpt2Split : SplitRule
{
    public override string Pattern => PreTokenizer.Gpt2Regex;

    public override void Split(int[] cpts, List<int> input, List<int> output)
    {
        int start = 0;
        foreach (var segment in input)
        {
            int ini = start, end = start + segment;
            start = end;
            int prevEnd = ini;
            int Cpt(int p) => p >= ini && p < end ? cpts[p] : -1;
            ushort Fl(int p) => p >= ini && p < end ? UnicodeData.Flags(cpts[p]) : (ushort)0;
            int Add(int e)
            {
                int len = e - prevEnd;
                if (len > 0) output.Add(len);
                prevEnd = e;
                return len;
            }

            for (int pos = ini; pos < end;)
            {
                int cpt = Cpt(pos);
                ushort flags = Fl(pos);
                if (cpt == '\'' && pos + 1 < end)
                {
                    int next = Cpt(pos + 1);
                    if (next is 's' or 't' or 'm' or 'd') { pos += Add(pos + 2); continue; }
                    if (pos + 2 < end)
                    {
                        int next2 = Cpt(pos + 2);
                        if ((next == 'r' && next2 == 'e') || (next == 'v' && next2 == 'e') || (next == 'l' && next2 == 'l'))
                        {
                            pos += Add(pos + 3);
                            continue;
                        }
                    }
                }

                ushort flags2 = cpt == ' ' ? Fl(pos + 1) : flags;
                if ((flags2 & UnicodeData.Letter) != 0)
                {
                    pos += cpt == ' ' ? 1 : 0;
                    while ((flags2 & UnicodeData.Letter) != 0) flags2 = Fl(++pos);
                    Add(pos);
                    continue;
                }
                if ((flags2 & UnicodeData.Number) != 0)
                {
                    pos += cpt == ' ' ? 1 : 0;
                    while ((flags2 & UnicodeData.Number) != 0) flags2 = Fl(++pos);
                    Add(pos);
                    continue;
                }
                if ((flags2 & (UnicodeData.Whitespace | UnicodeData.Letter | UnicodeData.Number)) == 0 && flags2 != 0)
                {
                    pos += cpt == ' ' ? 1 : 0;
                    while ((flags2 & (UnicodeData.Whitespace | UnicodeData.Letter | UnicodeData.Number)) == 0 && flags2 != 0) flags2 = Fl(++pos);
                    Add(pos);
                    continue;
                }

                int ws = 0;
                while ((Fl(pos + ws) & UnicodeData.Whitespace) != 0) ws++;
                if (ws > 1 && Cpt(pos + ws) != -1)
                {
                    pos += ws - 1;
                    Add(pos);
                    continue;
                }
                if (ws > 0)
                {
                    pos += ws;
                    Add(pos);
                    continue;
                }
                Add(++pos);
            }
        }
    }
}

/// <summary>
/// llama.cpp's hand-written Llama-3 / Qwen2 splitters (unicode_regex_split_custom_llama3 / _qwen2): the same code with
/// digit runs of at most 3 (Llama-3) or 1 (Qwen2), ported as written, quirks included.
/// </summary>
internal sealed class Llama3Split(string pattern, int maxDigits) : SplitRule
{
    public override string Pattern => pattern;

    private static int ToLowerAscii(int c) => c is >= 'A' and <= 'Z' ? c + 32 : c;

    public override void Split(int[] cpts, List<int> input, List<int> output)
    {
        int start = 0;
        foreach (var segment in input)
        {
            int ini = start, end = start + segment;
            start = end;
            int prevEnd = ini;
            int Cpt(int p) => p >= ini && p < end ? cpts[p] : -1;
            ushort Fl(int p) => p >= ini && p < end ? UnicodeData.Flags(cpts[p]) : (ushort)0;
            int Add(int e)
            {
                int len = e - prevEnd;
                if (len > 0) output.Add(len);
                prevEnd = e;
                return len;
            }

            for (int pos = ini; pos < end;)
            {
                int cpt = Cpt(pos);
                ushort flags = Fl(pos);

                // (?i:'s|'t|'re|'ve|'m|'ll|'d): only ASCII letters lower-case to these, so ASCII folding is exact.
                if (cpt == '\'' && pos + 1 < end)
                {
                    int next = ToLowerAscii(Cpt(pos + 1));
                    if (next is 's' or 't' or 'm' or 'd') { pos += Add(pos + 2); continue; }
                    if (pos + 2 < end)
                    {
                        int next2 = ToLowerAscii(Cpt(pos + 2));
                        if ((next == 'r' && next2 == 'e') || (next == 'v' && next2 == 'e') || (next == 'l' && next2 == 'l'))
                        {
                            pos += Add(pos + 3);
                            continue;
                        }
                    }
                }

                // [^\r\n\p{L}\p{N}]?\p{L}+
                if (!(cpt == '\r' || cpt == '\n' || (flags & UnicodeData.Number) != 0))
                {
                    if ((flags & UnicodeData.Letter) != 0 || (Fl(pos + 1) & UnicodeData.Letter) != 0)
                    {
                        pos++;
                        while ((Fl(pos) & UnicodeData.Letter) != 0) pos++;
                        Add(pos);
                        continue;
                    }
                }

                // \p{N}{1,3} (Llama-3) or \p{N} (Qwen2)
                if ((flags & UnicodeData.Number) != 0)
                {
                    if (maxDigits == 1)
                    {
                        pos++;
                        Add(pos);
                        continue;
                    }
                    int run = pos;
                    while ((Fl(pos) & UnicodeData.Number) != 0)
                    {
                        if (++pos - run >= maxDigits)
                        {
                            Add(pos);
                            run = pos;
                        }
                    }
                    Add(pos);
                    continue;
                }

                // <space>?[^\s\p{L}\p{N}]+[\r\n]*  (llama.cpp tests the first code point's flags, not flags2, for "in range")
                ushort flags2 = cpt == ' ' ? Fl(pos + 1) : flags;
                if ((flags2 & (UnicodeData.Whitespace | UnicodeData.Letter | UnicodeData.Number)) == 0 && flags != 0)
                {
                    pos += cpt == ' ' ? 1 : 0;
                    while ((flags2 & (UnicodeData.Whitespace | UnicodeData.Letter | UnicodeData.Number)) == 0 && flags2 != 0) flags2 = Fl(++pos);
                    int c2 = Cpt(pos);
                    while (c2 == '\r' || c2 == '\n') c2 = Cpt(++pos);
                    Add(pos);
                    continue;
                }

                int ws = 0, lastEndRn = 0;
                while ((Fl(pos + ws) & UnicodeData.Whitespace) != 0)
                {
                    int c2 = Cpt(pos + ws);
                    if (c2 == '\r' || c2 == '\n') lastEndRn = pos + ws + 1;
                    ws++;
                }
                if (lastEndRn > 0)
                {
                    pos = lastEndRn;
                    Add(pos);
                    continue;
                }
                if (ws > 1 && Cpt(pos + ws) != -1)
                {
                    pos += ws - 1;
                    Add(pos);
                    continue;
                }
                if (ws > 0)
                {
                    pos += ws;
                    Add(pos);
                    continue;
                }
                Add(++pos);
            }
        }
    }
}

/// <summary>
/// A regex rule run the way llama.cpp runs regexes it has no fast path for (std::regex, ECMAScript): when the pattern
/// uses \p{..} classes, both text and pattern are "collapsed" to one character per code point (ASCII kept, other code
/// points replaced by a stand-in for their class, non-ASCII whitespace by \v); otherwise the pattern runs on the code
/// points with non-ASCII whitespace replaced by \v. .NET's backtracking engine has the same leftmost, ordered-alternation
/// semantics as ECMAScript on these alphabets. Code points above U+FFFF (surrogate pairs in .NET) are mapped to one
/// stand-in character each: one for those inside the pattern's astral ranges, another for the rest.
/// </summary>
internal sealed class StdRegexSplit : SplitRule
{
    private static readonly (string Name, ushort Flag)[] Categories =
    [
        ("\\p{N}", UnicodeData.Number), ("\\p{L}", UnicodeData.Letter), ("\\p{P}", UnicodeData.Punctuation),
        ("\\p{M}", UnicodeData.Mark), ("\\p{S}", UnicodeData.Symbol), ("\\p{Lu}", UnicodeData.Letter),
        ("\\p{Ll}", UnicodeData.Letter), ("\\p{Lt}", UnicodeData.Letter), ("\\p{Lm}", UnicodeData.Letter),
        ("\\p{Lo}", UnicodeData.Letter),
    ];

    private const char AstralInside = '\uD800', AstralOutside = '\uDBFF';

    private readonly string _pattern;
    private readonly Regex _regex;
    private readonly bool _collapsed;
    private readonly List<(int Lo, int Hi)> _astralRanges = [];

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, Regex> Compiled = new(StringComparer.Ordinal);

    public StdRegexSplit(string pattern)
    {
        _pattern = pattern;
        _collapsed = Categories.Any(c => pattern.Contains(c.Name, StringComparison.Ordinal));
        string dotnet = _collapsed ? Collapse(pattern) : MapAstral(pattern);
        try
        {
            _regex = Compiled.GetOrAdd(dotnet, static p => new Regex(p, RegexOptions.CultureInvariant | RegexOptions.Compiled));
        }
        catch (ArgumentException e)
        {
            throw new BadInputException($"pre-tokenizer regex '{pattern}' is not supported: {e.Message}", e);
        }
    }

    public override string Pattern => _pattern;

    private static char CategoryChar(ushort flag) => flag switch
    {
        UnicodeData.Number => '\u00D1',
        UnicodeData.Letter => '\u00D2',
        UnicodeData.Punctuation => '\u00D3',
        UnicodeData.Mark => '\u00D4',
        UnicodeData.Symbol => '\u00D5',
        _ => '\u00D0',
    };

    private static string CategoryAscii(ushort flag) => flag switch
    {
        UnicodeData.Number => "0-9",
        UnicodeData.Letter => "A-Za-z",
        UnicodeData.Punctuation => "!-#%-*,-/:-;?-@\\[-\\]_\\{\\}",
        UnicodeData.Mark => "",
        UnicodeData.Symbol => "\\$\\+<->^`\\|\\~",
        _ => "",
    };

    // The collapsed pattern exactly as unicode_regex_split builds it.
    private static string Collapse(string r)
    {
        foreach (var ch in r)
            if (ch >= 128) throw new BadInputException($"pre-tokenizer regex '{r}' mixes unicode categories and non-ASCII characters (llama.cpp refuses it too)");
        var sb = new StringBuilder();
        bool inside = false;
        for (int i = 0; i < r.Length; i++)
        {
            if (r[i] == '[' && (i == 0 || r[i - 1] != '\\')) { sb.Append('['); inside = true; continue; }
            if (inside && r[i] == ']' && r[i - 1] != '\\') { sb.Append(']'); inside = false; continue; }
            if (r[i] == '\\' && i + 3 < r.Length && r[i + 1] == 'p' && r[i + 2] == '{')
            {
                int close = r.IndexOf('}', i + 3);
                if (close >= 0 && close <= i + 10)
                {
                    var pat = r.Substring(i, close - i + 1);
                    var cat = Array.Find(Categories, c => c.Name == pat);
                    if (cat.Name is not null)
                    {
                        if (!inside) sb.Append('[');
                        sb.Append(CategoryChar(cat.Flag)).Append(CategoryAscii(cat.Flag));
                        if (!inside) sb.Append(']');
                        i = close;
                        continue;
                    }
                }
            }
            sb.Append(r[i]);
        }
        return sb.ToString();
    }

    private string MapAstral(string r)
    {
        var cps = UnicodeData.CodePoints(r);
        var sb = new StringBuilder();
        for (int i = 0; i < cps.Length; i++)
        {
            int c = cps[i];
            if (c < 0x10000) { sb.Append((char)c); continue; }
            if (i + 2 < cps.Length && cps[i + 1] == '-')
            {
                _astralRanges.Add((c, cps[i + 2]));
                i += 2;
            }
            else _astralRanges.Add((c, c));
            sb.Append(AstralInside);
        }
        return sb.ToString();
    }

    private char MapWide(int c)
    {
        if (c > 0x7F && UnicodeData.IsWhitespace(c)) return '\v';
        if (c < 0x10000) return (char)c;
        foreach (var (lo, hi) in _astralRanges)
            if (c >= lo && c <= hi) return AstralInside;
        return AstralOutside;
    }

    private static char MapCollapsed(int c)
    {
        if (c < 128) return (char)c;
        ushort f = UnicodeData.Flags(c);
        if ((f & UnicodeData.Whitespace) != 0) return '\v';
        return CategoryChar((ushort)(f & UnicodeData.CategoryMask));
    }

    public override void Split(int[] cpts, List<int> input, List<int> output)
    {
        var mapped = string.Create(cpts.Length, this, (dst, self) =>
        {
            for (int i = 0; i < dst.Length; i++) dst[i] = self._collapsed ? MapCollapsed(cpts[i]) : self.MapWide(cpts[i]);
        });
        int start = 0;
        foreach (var segment in input)
        {
            int done = 0;
            for (var m = _regex.Match(mapped, start, segment); m.Success; m = m.NextMatch())
            {
                int at = m.Index - start;
                if (at > done) output.Add(at - done);
                if (m.Length > 0) output.Add(m.Length);
                done = at + m.Length;
            }
            if (done < segment) output.Add(segment - done);
            start += segment;
        }
    }
}
