using GptJx.Tokenization;

namespace GptJx.Tests.Tokenization;

/// <summary>The heap-based merge loop against the original's pass-by-pass loop.</summary>
public sealed class BytePairMergerTests
{
    private static readonly Lazy<BpeVocabulary> Gpt2 = new(EmbeddedGpt2Ranks.Load);

    /// <summary>
    /// The original algorithm, literally: find the lowest-ranked adjacent
    /// pair, merge all its occurrences left to right, repeat.
    /// </summary>
    private static int[] MergeByPasses(BpeVocabulary vocab, byte[] bytes)
    {
        var word = bytes.Select(b => vocab.ByteIds[b]).ToList();
        while (word.Count > 1)
        {
            int best = int.MaxValue;
            for (int i = 0; i + 1 < word.Count; i++)
                if (vocab.RankOfPair.TryGetValue(BpeVocabulary.PairKey(word[i], word[i + 1]), out int r) && r < best)
                    best = r;
            if (best == int.MaxValue) break;
            var merged = new List<int>(word.Count);
            for (int i = 0; i < word.Count; i++)
            {
                if (i + 1 < word.Count && word[i] == vocab.MergeLeft[best] && word[i + 1] == vocab.MergeRight[best])
                {
                    merged.Add(vocab.MergeResult[best]);
                    i++;
                }
                else merged.Add(word[i]);
            }
            word = merged;
        }
        return [.. word];
    }

    [Test]
    public void MatchesTheOriginalLoopOnRandomRuns()
    {
        // Small alphabets make long pieces with many competing merges.
        var random = new Random(12345);
        string[] alphabets = ["=", "ab", "e ", "-=_", "aeiou", "0123456789", "abcdefghijklmnopqrstuvwxyz", "\u00e9\u20ac"];
        for (int round = 0; round < 400; round++)
        {
            string alphabet = alphabets[round % alphabets.Length];
            int length = random.Next(1, 400);
            var text = string.Concat(Enumerable.Range(0, length).Select(_ => alphabet[random.Next(alphabet.Length)]));
            byte[] bytes = System.Text.Encoding.UTF8.GetBytes(text);
            Assert.That(BytePairMerger.Merge(Gpt2.Value, bytes), Is.EqualTo(MergeByPasses(Gpt2.Value, bytes)), text);
        }
    }

    [Test]
    public void OutOfOrderMergesWaitForThePassToFinish()
    {
        // A merges list where a pair ranks before the merge that forms one of
        // its parts: the original still finishes merging every "a a" before it
        // looks at "aa a". Bytes only, plus <|endoftext|>.
        var tokens = Enumerable.Range(0, 256).Select(b => new[] { (byte)b }).ToList();
        int a = 'a';
        tokens.Add("aaa"u8.ToArray()); // 256: aa + a
        tokens.Add("aa"u8.ToArray());  // 257: a + a
        tokens.Add("<|endoftext|>"u8.ToArray());
        var vocab = new BpeVocabulary([.. tokens], [(257, a, 256), (a, a, 257)], [("<|endoftext|>", 258)], "test");
        foreach (string text in new[] { "aa", "aaa", "aaaa", "aaaaa", "aaaaaaa" })
        {
            byte[] bytes = System.Text.Encoding.ASCII.GetBytes(text);
            Assert.That(BytePairMerger.Merge(vocab, bytes), Is.EqualTo(MergeByPasses(vocab, bytes)), text);
        }
    }
}
