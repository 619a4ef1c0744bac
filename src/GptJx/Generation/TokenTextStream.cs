using GptJx.Tokenization;

namespace GptJx.Generation;

/// <summary>
/// Turns a request's generated tokens into streamed text and decides when it ends: at the
/// end-of-text token, before a stop sequence, or when the caller says there is no room for
/// more (max-new-tokens or the end of the context). Shared by every generation loop.
/// </summary>
public sealed class TokenTextStream(Gpt2Tokenizer tokenizer, GenerationOptions options, int endOfTextId)
{
    private readonly StreamingDecoder _decoder = tokenizer.CreateStreamingDecoder();
    private readonly StopSequenceFilter _filter = new(options.StopSequences);

    /// <summary>
    /// The text <paramref name="token"/> completes and whether generation ends with it;
    /// <paramref name="last"/> says no further token may follow.
    /// </summary>
    public (string Text, FinishReason Finish) Accept(int token, bool last)
    {
        if (options.StopAtEndOfText && token == endOfTextId)
            return (_filter.Flush() + _decoder.Flush(), FinishReason.Stop);
        string text = _filter.Push(_decoder.Append(token));
        if (_filter.Stopped) return (text, FinishReason.Stop);
        if (!last) return (text, FinishReason.None);
        text += _filter.Push(_decoder.Flush());
        if (!_filter.Stopped) text += _filter.Flush();
        return (text, _filter.Stopped ? FinishReason.Stop : FinishReason.Length);
    }
}
