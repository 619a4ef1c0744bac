using GptJx.Generation;

namespace GptJx.Serving;

/// <summary>
/// The tokens of one submitted request, as the engine produces them. Enumerate it once.
/// Cancelling the enumeration's token, leaving the loop early or disposing the stream cancels
/// the request, and the engine frees its slot before its next step. Errors (a timeout, the
/// engine being disposed) surface from the enumeration.
/// </summary>
public sealed class GenerationStream : IAsyncEnumerable<EngineToken>, IDisposable
{
    private readonly EngineSequence _sequence;

    internal GenerationStream(EngineSequence sequence)
    {
        _sequence = sequence;
    }

    /// <summary>The engine's number for this request.</summary>
    public long Id => _sequence.Id;

    /// <summary>Tokens of the prompt, as run through the model (an empty prompt counts its end-of-text token).</summary>
    public int PromptTokens => _sequence.Prompt.Length;

    /// <summary>Tokens generated so far.</summary>
    public int CompletionTokens => _sequence.CompletionTokens;

    /// <summary>Why generation ended (None while it runs, or when it was cancelled or failed).</summary>
    public FinishReason Finish => _sequence.Finish;

    public async IAsyncEnumerator<EngineToken> GetAsyncEnumerator(CancellationToken cancellationToken = default)
    {
        var reader = _sequence.Output.Reader;
        using var link = cancellationToken.Register(static s => ((EngineSequence)s!).TryCancel(), _sequence);
        try
        {
            while (await reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
            {
                while (reader.TryRead(out var token))
                {
                    // Buffered tokens are not handed out once the caller has cancelled.
                    cancellationToken.ThrowIfCancellationRequested();
                    yield return token;
                }
            }
        }
        finally
        {
            _sequence.TryCancel();
        }
    }

    /// <summary>Stops the generation (a no-op once it has ended).</summary>
    public void Cancel() => _sequence.TryCancel();

    public void Dispose() => Cancel();

    /// <summary>Reads the whole stream.</summary>
    public async Task<GenerationResult> ReadToEndAsync(CancellationToken cancellationToken = default)
    {
        var tokens = new List<EngineToken>();
        var text = new System.Text.StringBuilder();
        await foreach (var token in this.WithCancellation(cancellationToken).ConfigureAwait(false))
        {
            tokens.Add(token);
            text.Append(token.Text);
        }
        var finish = Finish == FinishReason.None ? FinishReason.Length : Finish;
        return new GenerationResult(text.ToString(), tokens, finish, PromptTokens);
    }
}
