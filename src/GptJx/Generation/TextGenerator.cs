using System.Runtime.CompilerServices;
using System.Threading.Channels;

namespace GptJx.Generation;

public enum FinishReason
{
    /// <summary>Not finished yet.</summary>
    None,
    /// <summary>End-of-text token or a stop sequence.</summary>
    Stop,
    /// <summary>max-new-tokens or the end of the context was reached.</summary>
    Length,
}

/// <summary>One generated token and the text it completes (possibly empty while a character or stop sequence is pending).</summary>
public readonly record struct GeneratedToken(int Id, string Text, FinishReason Finish);

/// <summary>The generation loop of one sequence: prefill the prompt, then sample, stream and stop (see <see cref="GenerationState"/>).</summary>
public static class TextGenerator
{
    /// <summary>Generates synchronously from token ids; the last item carries the finish reason.</summary>
    public static IEnumerable<GeneratedToken> Generate(GptJxModel model, IReadOnlyList<int> promptIds, GenerationOptions options, CancellationToken cancellationToken = default)
    {
        int context = model.Config.ContextLength;
        var state = new GenerationState(model, promptIds, options, context, $"the model's context is {context} tokens");
        if (state.NothingToGenerate) yield break;

        using var sequence = model.CreateSequence(state.Capacity);
        var next = new int[1];
        int token = sequence.AppendAndSample(state.Prompt, state.Sampler);
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var (piece, finish) = state.Accept(token, sequence.Length);
            yield return new GeneratedToken(token, piece, finish);
            if (finish != FinishReason.None) yield break;
            next[0] = token;
            token = sequence.AppendAndSample(next, state.Sampler);
        }
    }

    /// <summary>Streams generation on a worker thread; cancelling ends the stream and frees the sequence.</summary>
    public static async IAsyncEnumerable<GeneratedToken> GenerateAsync(GptJxModel model, string prompt, GenerationOptions options,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        options.Validate();
        var ids = model.Encode(prompt);
        var channel = Channel.CreateBounded<GeneratedToken>(new BoundedChannelOptions(64) { SingleReader = true, SingleWriter = true });
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var producer = Task.Run(async () =>
        {
            try
            {
                foreach (var token in Generate(model, ids, options, stop.Token))
                    await channel.Writer.WriteAsync(token, stop.Token).ConfigureAwait(false);
                channel.Writer.Complete();
            }
            catch (Exception e)
            {
                channel.Writer.Complete(e);
            }
        }, CancellationToken.None);
        try
        {
            await foreach (var token in channel.Reader.ReadAllAsync(cancellationToken).ConfigureAwait(false))
            {
                // Buffered tokens are not handed out once the caller has cancelled.
                cancellationToken.ThrowIfCancellationRequested();
                yield return token;
            }
        }
        finally
        {
            stop.Cancel();
            try { await producer.ConfigureAwait(false); } catch (OperationCanceledException) { }
        }
    }
}
