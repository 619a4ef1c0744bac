using System.Collections.Concurrent;
using System.Text;

namespace GptJx.Tokenization;

/// <summary>
/// GPT-2 byte-level BPE tokenizer: text to ids exactly as OpenAI's original
/// GPT-2 encoder produces them, and ids back to text. Immutable and safe to
/// share between threads.
/// </summary>
public sealed class Gpt2Tokenizer
{
    /// <summary>GPT-2's end-of-text token, used as both BOS and EOS.</summary>
    public const string EndOfTextToken = "<|endoftext|>";

    // Pieces longer than this are merged every time rather than cached: long
    // runs are rare and would crowd out the short words that repeat.
    private const int MaxCachedPieceLength = 64;
    private const int MaxCacheEntries = 1 << 17;

    private static readonly Lazy<Gpt2Tokenizer> EmbeddedInstance =
        new(() => new Gpt2Tokenizer(EmbeddedGpt2Ranks.Load()), LazyThreadSafetyMode.ExecutionAndPublication);

    private readonly BpeVocabulary _vocab;
    private readonly ConcurrentDictionary<string, int[]> _pieceCache = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, int[]>.AlternateLookup<ReadOnlySpan<char>> _pieceLookup;

    private Gpt2Tokenizer(BpeVocabulary vocab)
    {
        _vocab = vocab;
        _pieceLookup = _pieceCache.GetAlternateLookup<ReadOnlySpan<char>>();
        EndOfTextId = -1;
        foreach (var (content, id) in vocab.SpecialTokens)
            if (content == EndOfTextToken) EndOfTextId = id;
        if (EndOfTextId < 0)
            throw new InvalidDataException($"{vocab.Source}: no '{EndOfTextToken}' token; GPT-2 models need it as BOS/EOS.");
    }

    /// <summary>GPT-2's tokenizer from the ranks embedded in the library; needs no files.</summary>
    public static Gpt2Tokenizer Default => EmbeddedInstance.Value;

    /// <summary>
    /// The tokenizer of a model folder: its vocab.json + merges.txt when
    /// present, else its tokenizer.json, else (or when <paramref name="modelDirectory"/>
    /// is null) GPT-2's embedded ranks.
    /// </summary>
    /// <exception cref="DirectoryNotFoundException">The folder does not exist.</exception>
    /// <exception cref="FileNotFoundException">vocab.json or merges.txt is there without the other, and no tokenizer.json.</exception>
    /// <exception cref="InvalidDataException">A file is malformed; the message names it.</exception>
    public static Gpt2Tokenizer Load(string? modelDirectory)
    {
        if (modelDirectory is null) return Default;
        if (!Directory.Exists(modelDirectory))
            throw new DirectoryNotFoundException($"Tokenizer folder '{modelDirectory}' does not exist.");

        string vocabPath = Path.Combine(modelDirectory, TokenizerFiles.VocabFileName);
        string mergesPath = Path.Combine(modelDirectory, TokenizerFiles.MergesFileName);
        string tokenizerJsonPath = Path.Combine(modelDirectory, TokenizerFiles.TokenizerJsonFileName);
        bool hasVocab = File.Exists(vocabPath), hasMerges = File.Exists(mergesPath);

        if (hasVocab && hasMerges)
            return new Gpt2Tokenizer(TokenizerFiles.LoadVocabAndMerges(vocabPath, mergesPath));
        if (File.Exists(tokenizerJsonPath))
            return new Gpt2Tokenizer(TokenizerFiles.LoadTokenizerJson(tokenizerJsonPath));
        if (hasVocab)
            throw new FileNotFoundException(
                $"'{mergesPath}' is missing: {TokenizerFiles.VocabFileName} needs {TokenizerFiles.MergesFileName} next to it (or use a {TokenizerFiles.TokenizerJsonFileName}).",
                mergesPath);
        if (hasMerges)
            throw new FileNotFoundException(
                $"'{vocabPath}' is missing: {TokenizerFiles.MergesFileName} needs {TokenizerFiles.VocabFileName} next to it (or use a {TokenizerFiles.TokenizerJsonFileName}).",
                vocabPath);
        return Default;
    }

    /// <summary>Number of token ids, special tokens included (50257 for GPT-2).</summary>
    public int VocabularySize => _vocab.Count;

    /// <summary>Id of <c>&lt;|endoftext|&gt;</c> (50256 for GPT-2): BOS and EOS.</summary>
    public int EndOfTextId { get; }

    /// <summary>Where the vocabulary came from, for messages.</summary>
    public string Source => _vocab.Source;

    /// <summary>Special tokens (content and id), which BPE never produces from text.</summary>
    public IReadOnlyList<(string Content, int Id)> SpecialTokens => _vocab.SpecialTokens;

    /// <summary>
    /// Encodes text exactly as GPT-2's original encoder does. The text of a
    /// special token such as <c>&lt;|endoftext|&gt;</c> is ordinary text unless
    /// <paramref name="parseSpecialTokens"/> is true; then it becomes the token's id.
    /// </summary>
    public int[] Encode(string text, bool parseSpecialTokens = false)
    {
        ArgumentNullException.ThrowIfNull(text);
        return Encode(text.AsSpan(), parseSpecialTokens);
    }

    /// <inheritdoc cref="Encode(string, bool)"/>
    public int[] Encode(ReadOnlySpan<char> text, bool parseSpecialTokens = false)
    {
        var ids = new List<int>(text.Length / 3 + 4);
        if (!parseSpecialTokens)
        {
            EncodeOrdinary(text, ids);
            return [.. ids];
        }

        while (!text.IsEmpty)
        {
            var (at, length, id) = FindSpecialToken(text);
            if (at < 0)
            {
                EncodeOrdinary(text, ids);
                break;
            }
            EncodeOrdinary(text[..at], ids);
            ids.Add(id);
            text = text[(at + length)..];
        }
        return [.. ids];
    }

    /// <summary>Number of tokens <see cref="Encode(string, bool)"/> would give.</summary>
    public int CountTokens(string text, bool parseSpecialTokens = false) => Encode(text, parseSpecialTokens).Length;

    /// <summary>
    /// Decodes ids to text. Bytes that are not valid UTF-8 (a sequence cut
    /// between tokens) become U+FFFD, as Python's errors="replace" does.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">An id is outside the vocabulary.</exception>
    public string Decode(ReadOnlySpan<int> ids, bool skipSpecialTokens = false) =>
        Encoding.UTF8.GetString(Bytes(ids, skipSpecialTokens));

    /// <summary>The raw bytes of the ids, special tokens as their UTF-8 text.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An id is outside the vocabulary.</exception>
    public byte[] DecodeBytes(ReadOnlySpan<int> ids) => Bytes(ids, skipSpecialTokens: false);

    /// <summary>An incremental decoder for ids that arrive one at a time.</summary>
    public StreamingDecoder CreateStreamingDecoder(bool skipSpecialTokens = false) => new(this, skipSpecialTokens);

    /// <summary>The vocabulary and merges, for writing them back as tokenizer files.</summary>
    internal BpeVocabulary Vocabulary => _vocab;

    /// <summary>Whether <paramref name="id"/> is a special token.</summary>
    public bool IsSpecialToken(int id) => _vocab.IsSpecial[CheckId(id)];

    internal byte[] TokenBytes(int id) => _vocab.TokenBytes[CheckId(id)];

    private int CheckId(int id) =>
        (uint)id < (uint)_vocab.Count
            ? id
            : throw new ArgumentOutOfRangeException("ids", id,
                $"Token id {id} is outside the vocabulary of {_vocab.Count} tokens (0..{_vocab.Count - 1}).");

    private byte[] Bytes(ReadOnlySpan<int> ids, bool skipSpecialTokens)
    {
        int total = 0;
        foreach (int id in ids)
            if (!(skipSpecialTokens && IsSpecialToken(id))) total += TokenBytes(id).Length;
        var bytes = new byte[total];
        int offset = 0;
        foreach (int id in ids)
        {
            if (skipSpecialTokens && _vocab.IsSpecial[id]) continue;
            byte[] token = _vocab.TokenBytes[id];
            token.CopyTo(bytes, offset);
            offset += token.Length;
        }
        return bytes;
    }

    private void EncodeOrdinary(ReadOnlySpan<char> text, List<int> ids)
    {
        var pieces = new Gpt2PreTokenizer(text);
        while (pieces.MoveNext())
            EncodePiece(text[pieces.Current], ids);
    }

    private void EncodePiece(ReadOnlySpan<char> piece, List<int> ids)
    {
        // A lone ASCII character is its own byte token: skip the cache.
        if (piece.Length == 1 && piece[0] < 0x80)
        {
            ids.Add(_vocab.ByteIds[piece[0]]);
            return;
        }
        if (piece.Length <= MaxCachedPieceLength && _pieceLookup.TryGetValue(piece, out int[]? cached))
        {
            ids.AddRange(cached);
            return;
        }

        // Lone surrogates become U+FFFD's bytes, as UTF8Encoding replaces them.
        int byteCount = Encoding.UTF8.GetByteCount(piece);
        byte[]? rented = null;
        Span<byte> bytes = byteCount <= 512 ? stackalloc byte[byteCount] : (rented = new byte[byteCount]);
        Encoding.UTF8.GetBytes(piece, bytes);
        int[] merged = BytePairMerger.Merge(_vocab, bytes);
        ids.AddRange(merged);

        if (piece.Length <= MaxCachedPieceLength)
        {
            // Crude bound: when full, start over rather than track recency.
            if (_pieceCache.Count >= MaxCacheEntries) _pieceCache.Clear();
            _pieceLookup.TryAdd(piece, merged);
        }
    }

    /// <summary>The earliest special token in the text (the longest one at that position).</summary>
    private (int At, int Length, int Id) FindSpecialToken(ReadOnlySpan<char> text)
    {
        (int At, int Length, int Id) best = (-1, 0, -1);
        foreach (var (content, id) in _vocab.SpecialTokens)
        {
            if (content.Length == 0) continue;
            int at = text.IndexOf(content.AsSpan(), StringComparison.Ordinal);
            if (at < 0) continue;
            if (best.At < 0 || at < best.At || (at == best.At && content.Length > best.Length))
                best = (at, content.Length, id);
        }
        return best;
    }
}
