namespace GptJx.Tokenization;

/// <summary>
/// Turns the spelled-out form shared by vocab.json/merges.txt and
/// tokenizer.json (token strings in the byte-level alphabet, merges as pairs
/// of token strings) into a validated <see cref="BpeVocabulary"/>, naming the
/// file and the entry when something does not add up.
/// </summary>
internal static class VocabularyBuilder
{
    /// <param name="vocab">token spelling -> id</param>
    /// <param name="merges">merge pairs in rank order, each with where it was read (for messages)</param>
    /// <param name="addedTokens">tokens declared outside the BPE (tokenizer.json's added_tokens)</param>
    public static BpeVocabulary Build(
        IReadOnlyDictionary<string, int> vocab, string vocabFile,
        IReadOnlyList<(string Left, string Right, string Where)> merges,
        IReadOnlyList<(string Content, int Id)> addedTokens,
        string source)
    {
        long count = 0;
        foreach (var (token, id) in vocab)
        {
            if (id < 0) throw new InvalidDataException($"{vocabFile}: token '{token}' has negative id {id}.");
            count = Math.Max(count, id + 1L);
        }
        foreach (var (content, id) in addedTokens)
        {
            if (id < 0) throw new InvalidDataException($"{vocabFile}: added token '{content}' has negative id {id}.");
            count = Math.Max(count, id + 1L);
        }

        var mergeList = new List<(int, int, int)>(merges.Count);
        var producedByMerge = new HashSet<int>();
        foreach (var (left, right, where) in merges)
        {
            int l = Lookup(vocab, left, where), r = Lookup(vocab, right, where);
            int product = Lookup(vocab, left + right, where);
            mergeList.Add((l, r, product));
            producedByMerge.Add(product);
        }

        // Ids run from 0 without gaps, so there are at most as many as tokens; checked before any table is sized by the largest.
        if (count > vocab.Count + addedTokens.Count)
            throw new InvalidDataException($"{vocabFile}: the largest id is {count - 1}, but {vocab.Count + addedTokens.Count} tokens cannot fill ids 0..{count - 1} without gaps.");

        var spelling = new string?[count];
        foreach (var (token, id) in vocab)
        {
            if (spelling[id] is not null)
                throw new InvalidDataException($"{vocabFile}: id {id} is used by both '{spelling[id]}' and '{token}'.");
            spelling[id] = token;
        }

        var added = new Dictionary<int, string>();
        foreach (var (content, id) in addedTokens) added[id] = content;

        var tokenBytes = new byte[count][];
        var specials = new List<(string, int)>();
        var isSpecial = new bool[count];
        for (int id = 0; id < count; id++)
        {
            string? token = spelling[id];
            // A token is special when it is declared as added, or when it is
            // neither a single byte nor the product of a merge (GPT-2's
            // <|endoftext|> in a bare vocab.json): BPE can never produce it,
            // so it can only be matched as literal text.
            bool isByte = token is { Length: 1 } && ByteLevelAlphabet.Byte(token[0]) >= 0;
            if (added.TryGetValue(id, out string? content) || (token is not null && !isByte && !producedByMerge.Contains(id)))
            {
                content ??= token!;
                tokenBytes[id] = System.Text.Encoding.UTF8.GetBytes(content);
                specials.Add((content, id));
                isSpecial[id] = true;
                continue;
            }
            if (token is null)
                throw new InvalidDataException($"{vocabFile}: no token has id {id} (ids must run from 0 to {count - 1} without gaps).");
            tokenBytes[id] = ByteLevelAlphabet.TryUnspell(token)
                ?? throw new InvalidDataException($"{vocabFile}: token '{token}' (id {id}) has characters outside GPT-2's byte-level alphabet.");
        }

        var seen = new bool[256];
        for (int id = 0; id < count; id++)
            if (tokenBytes[id].Length == 1 && !isSpecial[id]) seen[tokenBytes[id][0]] = true;
        for (int b = 0; b < 256; b++)
            if (!seen[b])
                throw new InvalidDataException(
                    $"{vocabFile}: no token for byte 0x{b:X2} ('{ByteLevelAlphabet.Char((byte)b)}'); byte-level BPE needs all 256.");

        return new BpeVocabulary(tokenBytes, mergeList, specials, source);
    }

    private static int Lookup(IReadOnlyDictionary<string, int> vocab, string token, string where) =>
        vocab.TryGetValue(token, out int id)
            ? id
            : throw new InvalidDataException($"{where}: token '{token}' is not in the vocabulary.");
}
