namespace GptJx.Tokenization;

/// <summary>
/// Everything byte-level BPE needs, whatever file it came from: the bytes of
/// every token, the ranked merges, and the special tokens. Immutable once
/// built; the loaders validate before constructing it.
/// </summary>
internal sealed class BpeVocabulary
{
    public BpeVocabulary(
        byte[][] tokenBytes,
        IReadOnlyList<(int Left, int Right, int Result)> merges,
        IReadOnlyList<(string Content, int Id)> specialTokens,
        string source)
    {
        TokenBytes = tokenBytes;
        Source = source;
        SpecialTokens = specialTokens;

        IsSpecial = new bool[tokenBytes.Length];
        foreach (var (_, id) in specialTokens) IsSpecial[id] = true;

        // The token of every single byte: the seed of every word.
        ByteIds = new int[256];
        Array.Fill(ByteIds, -1);
        for (int id = 0; id < tokenBytes.Length; id++)
            if (!IsSpecial[id] && tokenBytes[id].Length == 1 && ByteIds[tokenBytes[id][0]] < 0)
                ByteIds[tokenBytes[id][0]] = id;

        MergeLeft = new int[merges.Count];
        MergeRight = new int[merges.Count];
        MergeResult = new int[merges.Count];
        RankOfPair = new Dictionary<long, int>(merges.Count, PairKeyComparer.Instance);
        for (int rank = 0; rank < merges.Count; rank++)
        {
            var (left, right, result) = merges[rank];
            MergeLeft[rank] = left;
            MergeRight[rank] = right;
            MergeResult[rank] = result;
            // A pair listed twice keeps its last rank, as the original's
            // dict(zip(merges, range(...))) does.
            RankOfPair[PairKey(left, right)] = rank;
        }
    }

    /// <summary>Token id -> its bytes (a special token's are its UTF-8 text).</summary>
    public byte[][] TokenBytes { get; }

    public bool[] IsSpecial { get; }

    /// <summary>Special tokens, matched as whole strings when asked to.</summary>
    public IReadOnlyList<(string Content, int Id)> SpecialTokens { get; }

    /// <summary>Byte -> id of its single-byte token.</summary>
    public int[] ByteIds { get; }

    /// <summary>Merge rank -> left part, right part and resulting token.</summary>
    public int[] MergeLeft { get; }
    public int[] MergeRight { get; }
    public int[] MergeResult { get; }

    /// <summary>(left id, right id) packed by <see cref="PairKey"/> -> merge rank.</summary>
    public Dictionary<long, int> RankOfPair { get; }

    public string Source { get; }

    public int Count => TokenBytes.Length;

    public static long PairKey(int left, int right) => ((long)left << 32) | (uint)right;

    /// <summary>
    /// long's own hash is the XOR of its halves, which sends every (a, a)
    /// pair to bucket 0 and many others to shared buckets; a long run of one
    /// byte then crawls. A multiplicative (Fibonacci) hash spreads them.
    /// </summary>
    private sealed class PairKeyComparer : IEqualityComparer<long>
    {
        public static readonly PairKeyComparer Instance = new();
        public bool Equals(long x, long y) => x == y;
        public int GetHashCode(long key) => (int)(((ulong)key * 0x9E3779B97F4A7C15UL) >> 32);
    }
}
