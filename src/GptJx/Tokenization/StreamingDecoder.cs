using System.Buffers;
using System.Text;

namespace GptJx.Tokenization;

/// <summary>
/// Turns generated ids into text one id at a time. A token may end in the
/// middle of a UTF-8 character (emoji and CJK often span two or three
/// tokens), so the bytes of an unfinished character are held back until the
/// token that completes them arrives. Concatenating every <see cref="Append"/>
/// and the final <see cref="Flush"/> gives exactly <see cref="Gpt2Tokenizer.Decode"/>
/// of all the ids. Not thread-safe: one decoder per generation stream.
/// </summary>
public sealed class StreamingDecoder
{
    private readonly Gpt2Tokenizer _tokenizer;
    private readonly bool _skipSpecialTokens;
    // At most 3 bytes wait here: the start of a character that may still complete.
    private byte[] _pending = new byte[16];
    private int _pendingLength;

    internal StreamingDecoder(Gpt2Tokenizer tokenizer, bool skipSpecialTokens)
    {
        _tokenizer = tokenizer;
        _skipSpecialTokens = skipSpecialTokens;
    }

    /// <summary>Adds one token; returns the characters it completes (possibly empty).</summary>
    /// <exception cref="ArgumentOutOfRangeException">The id is outside the vocabulary.</exception>
    public string Append(int id)
    {
        byte[] bytes = _tokenizer.TokenBytes(id);
        if (_skipSpecialTokens && _tokenizer.IsSpecialToken(id)) return string.Empty;

        int needed = _pendingLength + bytes.Length;
        if (needed > _pending.Length) Array.Resize(ref _pending, Math.Max(needed, _pending.Length * 2));
        bytes.CopyTo(_pending, _pendingLength);
        _pendingLength = needed;
        return DecodeComplete(final: false);
    }

    /// <summary>
    /// Ends the stream: bytes still held back can no longer complete a
    /// character and come out as U+FFFD, as a whole-sequence decode would show them.
    /// </summary>
    public string Flush() => DecodeComplete(final: true);

    /// <summary>Drops held-back bytes so the decoder can start a new stream.</summary>
    public void Reset() => _pendingLength = 0;

    private string DecodeComplete(bool final)
    {
        ReadOnlySpan<byte> data = _pending.AsSpan(0, _pendingLength);
        var sb = new StringBuilder(data.Length);
        int index = 0;
        while (index < data.Length)
        {
            OperationStatus status = Rune.DecodeFromUtf8(data[index..], out Rune rune, out int consumed);
            if (status == OperationStatus.NeedMoreData && !final) break;
            // Done, or invalid bytes (the maximal invalid subsequence, one
            // U+FFFD for it, as Python's errors="replace" and .NET's UTF8Encoding do).
            AppendRune(sb, status == OperationStatus.Done ? rune : Rune.ReplacementChar);
            index += consumed;
        }
        data[index..].CopyTo(_pending);
        _pendingLength = data.Length - index;
        return sb.ToString();
    }

    private static void AppendRune(StringBuilder sb, Rune rune)
    {
        Span<char> chars = stackalloc char[2];
        sb.Append(chars[..rune.EncodeToUtf16(chars)]);
    }
}
