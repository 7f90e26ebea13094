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

/// <summary>
/// A binary max-heap of SentencePiece bigrams ordered like llm_bigram_spm::comparator (higher score first, then the
/// leftmost), with the comparison inlined: the generic PriorityQueue's comparer call dominated SentencePiece encoding.
/// </summary>
internal sealed class SpmHeap
{
    private (float Score, int Left, int Right, int Size)[] _items = new (float, int, int, int)[64];
    private int _count;

    public void Clear() => _count = 0;

    private static bool Before(in (float Score, int Left, int Right, int Size) a, in (float Score, int Left, int Right, int Size) b) =>
        a.Score > b.Score || (a.Score == b.Score && a.Left < b.Left);

    public void Push(float score, int left, int right, int size)
    {
        if (_count == _items.Length) Array.Resize(ref _items, _items.Length * 2);
        var item = (score, left, right, size);
        int i = _count++;
        while (i > 0)
        {
            int parent = (i - 1) >> 1;
            if (!Before(item, _items[parent])) break;
            _items[i] = _items[parent];
            i = parent;
        }
        _items[i] = item;
    }

    public bool TryPop(out int left, out int right, out int size)
    {
        if (_count == 0) { left = right = size = 0; return false; }
        var top = _items[0];
        var last = _items[--_count];
        int i = 0;
        while (true)
        {
            int child = 2 * i + 1;
            if (child >= _count) break;
            if (child + 1 < _count && Before(_items[child + 1], _items[child])) child++;
            if (!Before(_items[child], last)) break;
            _items[i] = _items[child];
            i = child;
        }
        if (_count > 0) _items[i] = last;
        (left, right, size) = (top.Left, top.Right, top.Size);
        return true;
    }
}
