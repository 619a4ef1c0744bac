using System.Diagnostics;
using System.Threading.Channels;
using GptJx.Generation;

namespace GptJx.Serving;

/// <summary>
/// The state of one request inside the engine. Fields below "engine thread" are touched only
/// by the engine's loop; the output channel is written only by whoever completes the request.
/// </summary>
internal sealed class EngineSequence
{
    private readonly CancellationToken _userToken;
    private readonly long _deadline;
    private readonly TimeSpan? _timeout;
    private int _released;
    private volatile bool _cancelledByReader;

    public EngineSequence(long id, GenerationState generation, int? topLogprobs, TimeSpan? timeout, CancellationToken userToken)
    {
        Id = id;
        Generation = generation;
        TopLogprobs = topLogprobs;
        _userToken = userToken;
        _timeout = timeout;
        _deadline = timeout is { } t ? Stopwatch.GetTimestamp() + (long)(t.TotalSeconds * Stopwatch.Frequency) : long.MaxValue;
        Abort = CancellationTokenSource.CreateLinkedTokenSource(userToken);
        if (timeout is { } after) Abort.CancelAfter(after);
        Output = Channel.CreateUnbounded<EngineToken>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
    }

    public long Id { get; }

    /// <summary>Prompt, capacity, sampler and text stream, as every generation loop keeps them.</summary>
    public GenerationState Generation { get; }

    public int[] Prompt => Generation.Prompt;
    public int? TopLogprobs { get; }

    /// <summary>Cancelled by the caller's token, the timeout, or disposing the stream.</summary>
    public CancellationTokenSource Abort { get; }

    public Channel<EngineToken> Output { get; }

    /// <summary>Node in the engine's wait queue while queued (guarded by the queue's lock).</summary>
    public LinkedListNode<EngineSequence>? QueueNode { get; set; }

    public int CompletionTokens => Generation.Generated;
    public volatile FinishReason Finish;

    // ---- engine thread ------------------------------------------------------

    public int Slot = -1;
    /// <summary>Tokens in the cache slot.</summary>
    public int Cached;
    /// <summary>True once the prompt is in the cache; the next row is <see cref="Pending"/>.</summary>
    public bool Decoding;
    public int Pending;
    /// <summary>A copy of the step's raw logits, kept only when log-probabilities are asked for.</summary>
    public float[]? RawLogits;
    public long AdmittedAt;

    public bool Aborted => Abort.IsCancellationRequested || Stopwatch.GetTimestamp() >= _deadline;

    /// <summary>
    /// Aborted by neither the caller's token nor the reader: the timeout's timer (which may fire a
    /// little before the deadline's clock reading) or the deadline itself.
    /// </summary>
    public bool TimedOut => !_userToken.IsCancellationRequested && !_cancelledByReader && Aborted;

    /// <summary>Why an aborted request ended, as the exception its reader sees.</summary>
    public Exception AbortReason() =>
        _userToken.IsCancellationRequested ? new OperationCanceledException("the request was cancelled", _userToken)
        : TimedOut ? new TimeoutException($"the request did not finish within its timeout of {_timeout!.Value.TotalSeconds:0.###} s")
        : new OperationCanceledException("the request was cancelled: its stream was disposed");

    /// <summary>Ends the output stream (with an error if given) and releases the timer and the link to the caller's token.</summary>
    public bool Complete(Exception? error = null)
    {
        if (Interlocked.Exchange(ref _released, 1) != 0) return false;
        Output.Writer.TryComplete(error);
        Abort.Dispose();
        return true;
    }

    public bool Completed => Volatile.Read(ref _released) != 0;

    /// <summary>Cancels the request unless it has already ended.</summary>
    public void TryCancel()
    {
        if (Completed) return;
        _cancelledByReader = true;
        try { Abort.Cancel(); } catch (ObjectDisposedException) { }
    }
}
