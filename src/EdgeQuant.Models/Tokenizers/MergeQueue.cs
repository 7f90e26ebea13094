namespace EdgeQuant.Models.Tokenizers;

/// <summary>
/// The symbol chain both BPE flavours merge over: symbols are slices of one string, linked left/right, merged by a
/// priority queue of candidate bigrams (llama.cpp's llm_symbol / llm_bigram_*). A bigram whose symbols changed since it
/// was queued is recognised by its stale total length and skipped, as llama.cpp does.
/// </summary>
internal sealed class SymbolChain
{
    public int[] Start = new int[64];
    public int[] Length = new int[64];
    public int[] Prev = new int[64];
    public int[] Next = new int[64];
    public int[] Sid = new int[64];
    public int Count;

    public void Reset(string text) => Reset(text, 0, text.Length);

    /// <summary>One symbol per code point of text[from..to).</summary>
    public void Reset(string text, int from, int to)
    {
        Count = 0;
        int n = to - from;
        if (Start.Length < n)
        {
            int cap = Math.Max(n, Start.Length * 2);
            Start = new int[cap];
            Length = new int[cap];
            Prev = new int[cap];
            Next = new int[cap];
            Sid = new int[cap];
        }
        for (int i = from; i < to;)
        {
            int len = char.IsHighSurrogate(text[i]) && i + 1 < to && char.IsLowSurrogate(text[i + 1]) ? 2 : 1;
            Start[Count] = i;
            Length[Count] = len;
            Prev[Count] = Count - 1;
            i += len;
            Next[Count] = i == to ? -1 : Count + 1;
            Count++;
        }
    }

    /// <summary>Merges the right symbol into the left one and unlinks it.</summary>
    public void Merge(int left, int right)
    {
        Length[left] += Length[right];
        Length[right] = 0;
        Next[left] = Next[right];
        if (Next[right] >= 0) Prev[Next[right]] = left;
    }
}

/// <summary>A queued bigram: left/right symbol indexes and their total length when queued.</summary>
internal readonly record struct Bigram(int Left, int Right, int Size);

/// <summary>Order of SentencePiece bigrams: higher score first, then the leftmost (llm_bigram_spm::comparator).</summary>
internal sealed class SpmBigramComparer : IComparer<(float Score, int Left)>
{
    public static readonly SpmBigramComparer Instance = new();

    public int Compare((float Score, int Left) x, (float Score, int Left) y)
    {
        int c = y.Score.CompareTo(x.Score);
        return c != 0 ? c : x.Left.CompareTo(y.Left);
    }
}

/// <summary>Order of byte-level BPE bigrams: lower merge rank first, then the leftmost (llm_bigram_bpe::comparator).</summary>
internal sealed class BpeBigramComparer : IComparer<(int Rank, int Left)>
{
    public static readonly BpeBigramComparer Instance = new();

    public int Compare((int Rank, int Left) x, (int Rank, int Left) y)
    {
        int c = x.Rank.CompareTo(y.Rank);
        return c != 0 ? c : x.Left.CompareTo(y.Left);
    }
}
