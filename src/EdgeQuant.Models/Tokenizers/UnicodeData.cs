using System.Buffers;
using System.Globalization;
using System.Text;
using EdgeQuant.Core.Errors;

namespace EdgeQuant.Models.Tokenizers;

/// <summary>
/// Code point classes as llama.cpp's unicode.cpp sees them: one general-category class per code point (\p{N}, \p{L},
/// \p{Z}, \p{M}, \p{P}, \p{S}, \p{C}, or undefined for unassigned) plus the White_Space property that regex \s means.
/// Categories come from .NET's tables (CharUnicodeInfo); llama.cpp generates its table from UnicodeData.txt, so the two
/// can differ only on code points assigned in one Unicode version and not the other.
/// </summary>
internal static class UnicodeData
{
    public const ushort Undefined = 0x0001, Number = 0x0002, Letter = 0x0004, Separator = 0x0008, Mark = 0x0010,
        Punctuation = 0x0020, Symbol = 0x0040, Control = 0x0080, CategoryMask = 0x00FF, Whitespace = 0x0100;

    public const int MaxCodePoint = 0x110000;

    private static readonly Lazy<ushort[]> Table = new(Build);

    // Unicode White_Space: the set of llama.cpp's unicode_set_whitespace (and of \s in Rust/Python regex).
    private static readonly int[] WhitespaceSet =
    [
        0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680, 0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006,
        0x2007, 0x2008, 0x2009, 0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000,
    ];

    public static ushort Flags(int cpt) => (uint)cpt < MaxCodePoint ? Table.Value[cpt] : Undefined;

    public static bool IsWhitespace(int cpt) => (Flags(cpt) & Whitespace) != 0;
    public static bool IsLetter(int cpt) => (Flags(cpt) & Letter) != 0;
    public static bool IsNumber(int cpt) => (Flags(cpt) & Number) != 0;

    private static ushort[] Build()
    {
        var t = new ushort[MaxCodePoint];
        for (int c = 0; c < MaxCodePoint; c++)
        {
            if (c is >= 0xD800 and <= 0xDFFF) { t[c] = Control; continue; }
            t[c] = CharUnicodeInfo.GetUnicodeCategory(c) switch
            {
                UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
                    or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter => Letter,
                UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark or UnicodeCategory.EnclosingMark => Mark,
                UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber => Number,
                UnicodeCategory.SpaceSeparator or UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator => Separator,
                UnicodeCategory.Control or UnicodeCategory.Format or UnicodeCategory.Surrogate or UnicodeCategory.PrivateUse => Control,
                UnicodeCategory.ConnectorPunctuation or UnicodeCategory.DashPunctuation or UnicodeCategory.OpenPunctuation
                    or UnicodeCategory.ClosePunctuation or UnicodeCategory.InitialQuotePunctuation
                    or UnicodeCategory.FinalQuotePunctuation or UnicodeCategory.OtherPunctuation => Punctuation,
                UnicodeCategory.MathSymbol or UnicodeCategory.CurrencySymbol or UnicodeCategory.ModifierSymbol
                    or UnicodeCategory.OtherSymbol => Symbol,
                _ => Undefined,
            };
        }
        foreach (var w in WhitespaceSet) t[w] |= Whitespace;
        return t;
    }

    /// <summary>Code points of a .NET string (valid UTF-16 assumed: it came from validated UTF-8).</summary>
    public static int[] CodePoints(ReadOnlySpan<char> s)
    {
        var result = new int[s.Length];
        int n = 0;
        for (int i = 0; i < s.Length; i++)
        {
            char c = s[i];
            if (char.IsHighSurrogate(c) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
            {
                result[n++] = char.ConvertToUtf32(c, s[i + 1]);
                i++;
            }
            else result[n++] = c;
        }
        return n == result.Length ? result : result.AsSpan(0, n).ToArray();
    }

    public static void AppendCodePoint(StringBuilder sb, int cpt)
    {
        if (cpt < 0x10000) sb.Append((char)cpt);
        else sb.Append(char.ConvertFromUtf32(cpt));
    }

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>Decodes UTF-8 text, refusing invalid sequences with a message naming where they start.</summary>
    public static string DecodeUtf8Strict(ReadOnlySpan<byte> bytes, string what)
    {
        try
        {
            return StrictUtf8.GetString(bytes);
        }
        catch (DecoderFallbackException e)
        {
            throw new BadInputException($"{what}: invalid UTF-8 at byte offset {FirstInvalidUtf8(bytes)}", e);
        }
    }

    private static int FirstInvalidUtf8(ReadOnlySpan<byte> bytes)
    {
        int i = 0;
        while (i < bytes.Length)
        {
            var status = System.Text.Rune.DecodeFromUtf8(bytes[i..], out _, out int consumed);
            if (status != OperationStatus.Done) return i;
            i += consumed;
        }
        return -1;
    }
}

/// <summary>GPT-2's byte-to-unicode map: every byte becomes one printable code point (below U+0144), and back.</summary>
public static class ByteLevelMap
{
    private static readonly char[] ByteToChar = BuildForward();
    private static readonly short[] CharToByte = BuildBackward();

    private static char[] BuildForward()
    {
        var map = new char[256];
        var assigned = new bool[256];
        for (int b = 0x21; b <= 0x7E; b++) { map[b] = (char)b; assigned[b] = true; }
        for (int b = 0xA1; b <= 0xAC; b++) { map[b] = (char)b; assigned[b] = true; }
        for (int b = 0xAE; b <= 0xFF; b++) { map[b] = (char)b; assigned[b] = true; }
        int n = 0;
        for (int b = 0; b < 256; b++)
            if (!assigned[b]) map[b] = (char)(256 + n++);
        return map;
    }

    private static short[] BuildBackward()
    {
        var back = new short[0x144];
        Array.Fill(back, (short)-1);
        for (int b = 0; b < 256; b++) back[ByteToChar[b]] = (short)b;
        return back;
    }

    public static char Encode(byte b) => ByteToChar[b];

    /// <summary>The byte a character stands for, or -1 when it is not one of the 256 mapped characters.</summary>
    public static int Decode(char c) => c < CharToByte.Length ? CharToByte[c] : -1;

    public static string Encode(ReadOnlySpan<byte> bytes)
    {
        Span<char> buf = bytes.Length <= 256 ? stackalloc char[bytes.Length] : new char[bytes.Length];
        for (int i = 0; i < bytes.Length; i++) buf[i] = ByteToChar[bytes[i]];
        return new string(buf);
    }
}
