namespace EdgeQuant.Cli.Commands.Generate;

/// <summary>
/// Turns a growing token sequence into text written as it grows. Decoding is redone over the whole sequence each
/// time (token pieces are not independent: SentencePiece drops the first leading space, byte-fallback tokens join
/// into one character), and only bytes ending on a whole UTF-8 character are written, so a character split across
/// tokens appears once it is complete.
/// </summary>
internal sealed class Utf8Streamer(Func<IReadOnlyList<int>, byte[]> decode, TextWriter output)
{
    private readonly List<int> _ids = [];
    private int _written;

    public void Add(IEnumerable<int> ids)
    {
        _ids.AddRange(ids);
        Flush(final: false);
    }

    public void Finish() => Flush(final: true);

    private void Flush(bool final)
    {
        var bytes = decode(_ids);
        int end = final ? bytes.Length : CompleteLength(bytes);
        if (end <= _written) return;
        output.Write(System.Text.Encoding.UTF8.GetString(bytes, _written, end - _written));
        output.Flush();
        _written = end;
    }

    /// <summary>Length of the longest prefix that does not end inside a multi-byte UTF-8 sequence.</summary>
    internal static int CompleteLength(ReadOnlySpan<byte> bytes)
    {
        int n = bytes.Length;
        // Walk back over at most 3 continuation bytes to the lead byte of the last character.
        for (int back = 1; back <= Math.Min(4, n); back++)
        {
            byte b = bytes[n - back];
            if ((b & 0xC0) == 0x80) continue;
            int need = b < 0x80 ? 1 : (b & 0xE0) == 0xC0 ? 2 : (b & 0xF0) == 0xE0 ? 3 : (b & 0xF8) == 0xF0 ? 4 : 1;
            return back >= need ? n : n - back;
        }
        return n;
    }
}
