namespace GptJx.Tokenization;

/// <summary>
/// Byte-level BPE for one pre-tokenized piece: start from one token per byte
/// and apply merges until no adjacent pair has a rank.
/// </summary>
/// <remarks>
/// The original repeats "find the lowest-ranked adjacent pair, merge every
/// occurrence of it left to right" and is quadratic in the piece's length.
/// This does the same merges in the same order in O(n log n), so a long run
/// without spaces (base64, a line of '=') stays cheap: a heap holds every
/// adjacent pair keyed by (rank, position); popping gives the leftmost
/// occurrence of the lowest rank. Entries made stale by an earlier merge are
/// recognised by re-reading the pair and dropped. Pairs formed while the
/// occurrences of rank r are being merged wait until that rank is done when
/// their own rank is lower, as they would wait for the original's next pass
/// (only possible with a merges file whose parts rank after their product).
/// </remarks>
internal static class BytePairMerger
{
    public static int[] Merge(BpeVocabulary vocab, ReadOnlySpan<byte> bytes)
    {
        int n = bytes.Length;
        var ids = new int[n];
        for (int i = 0; i < n; i++)
        {
            ids[i] = vocab.ByteIds[bytes[i]];
            if (ids[i] < 0)
                throw new InvalidOperationException(
                    $"Tokenizer '{vocab.Source}' has no token for byte 0x{bytes[i]:X2}.");
        }
        if (n < 2) return ids;

        // Doubly linked list over positions; a merged-away position gets id -1.
        var next = new int[n];
        var prev = new int[n];
        for (int i = 0; i < n; i++) { next[i] = i + 1; prev[i] = i - 1; }
        next[n - 1] = -1;

        // Built in one go (heapify) rather than pair by pair.
        var initial = new List<(int, long)>(n);
        for (int i = 0; i + 1 < n; i++)
        {
            int rank = RankOf(vocab, ids[i], ids[i + 1]);
            if (rank >= 0) initial.Add((i, ((long)rank << 32) | (uint)i));
        }
        var heap = new PriorityQueue<int, long>(initial);

        List<(int Position, long Priority)>? deferred = null;
        int currentRank = -1;
        int count = n;
        while (true)
        {
            if (deferred is { Count: > 0 } &&
                (heap.Count == 0 || (int)(PeekPriority(heap) >> 32) > currentRank))
            {
                foreach (var (position, priority) in deferred) heap.Enqueue(position, priority);
                deferred.Clear();
            }
            if (!heap.TryDequeue(out int left, out long key)) break;
            int rank = (int)(key >> 32);
            // Stale when an earlier merge consumed or changed either side.
            int right = ids[left] < 0 ? -1 : next[left];
            if (right < 0 || ids[left] != vocab.MergeLeft[rank] || ids[right] != vocab.MergeRight[rank]) continue;

            currentRank = rank;
            ids[left] = vocab.MergeResult[rank];
            ids[right] = -1;
            next[left] = next[right];
            if (next[left] >= 0) prev[next[left]] = left;
            count--;

            // The merged token forms new pairs with its neighbours.
            if (prev[left] >= 0) PushOrDefer(vocab, heap, ref deferred, ids, prev[left], left, currentRank);
            if (next[left] >= 0) PushOrDefer(vocab, heap, ref deferred, ids, left, next[left], currentRank);
        }

        var result = new int[count];
        for (int i = 0, k = 0; i >= 0; i = next[i]) result[k++] = ids[i];
        return result;
    }

    private static int RankOf(BpeVocabulary vocab, int left, int right) =>
        vocab.RankOfPair.TryGetValue(BpeVocabulary.PairKey(left, right), out int rank) ? rank : -1;

    private static void PushOrDefer(BpeVocabulary vocab, PriorityQueue<int, long> heap,
        ref List<(int, long)>? deferred, int[] ids, int left, int right, int currentRank)
    {
        int rank = RankOf(vocab, ids[left], ids[right]);
        if (rank < 0) return;
        long priority = ((long)rank << 32) | (uint)left;
        if (rank > currentRank) heap.Enqueue(left, priority);
        else (deferred ??= []).Add((left, priority));
    }

    private static long PeekPriority(PriorityQueue<int, long> heap)
    {
        heap.TryPeek(out _, out long priority);
        return priority;
    }
}
