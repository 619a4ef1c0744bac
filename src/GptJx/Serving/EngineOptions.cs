namespace GptJx.Serving;

/// <summary>Capacity and scheduling limits of an <see cref="InferenceEngine"/>. Validate() names the bad setting.</summary>
public sealed record EngineOptions
{
    /// <summary>
    /// Sequences generated at once: the KV-cache slots, and the most decode rows of one forward step.
    /// </summary>
    public int MaxBatchSize { get; init; } = 8;

    /// <summary>Requests that may wait for a free slot; one more is refused with <see cref="EngineOverloadedException"/>.</summary>
    public int MaxQueueLength { get; init; } = 64;

    /// <summary>
    /// Prompt tokens run per step, on top of the decode rows: a long prompt is prefilled in chunks of at
    /// most this many tokens, interleaved with the other sequences' decode steps so they never stall.
    /// One step therefore holds at most <see cref="MaxBatchSize"/> + PrefillChunk rows.
    /// </summary>
    public int PrefillChunk { get; init; } = 256;

    /// <summary>
    /// Positions of each KV-cache slot (prompt plus generated tokens of one request); null: the model's
    /// context. Smaller values cut the cache's memory (slots x positions x 2 x layers x width values).
    /// </summary>
    public int? MaxSequenceLength { get; init; }

    /// <summary>Time a request may take from submission to its last token; null: no limit. A request may ask for less.</summary>
    public TimeSpan? RequestTimeout { get; init; }

    /// <summary>Most alternatives a request may ask for per generated token (top log-probabilities).</summary>
    public const int MaxTopLogprobs = 20;

    /// <summary>Most sequences one engine generates at once (a clear limit well above what memory allows at full context).</summary>
    public const int MaxBatchSizeLimit = 1024;

    /// <summary>Longest time limit a request may have (the runtime's timers go to about 49 days).</summary>
    public static readonly TimeSpan MaxTimeout = TimeSpan.FromDays(30);

    public void Validate()
    {
        if (MaxBatchSize is < 1 or > MaxBatchSizeLimit)
            throw new InvalidArgumentException(nameof(MaxBatchSize), $"must be 1..{MaxBatchSizeLimit} (got {MaxBatchSize})");
        if (MaxQueueLength < 0) throw new InvalidArgumentException(nameof(MaxQueueLength), $"must be zero or more (got {MaxQueueLength})");
        if (PrefillChunk is < 1 or > ModelLoadOptions.MaxPrefillChunk)
            throw new InvalidArgumentException(nameof(PrefillChunk), $"must be 1..{ModelLoadOptions.MaxPrefillChunk} tokens (got {PrefillChunk})");
        if (MaxSequenceLength is < 2)
            throw new InvalidArgumentException(nameof(MaxSequenceLength), $"must be at least 2, one prompt token and one generated (got {MaxSequenceLength})");
        if (RequestTimeout is { } t) CheckTimeout(nameof(RequestTimeout), t);
    }

    /// <summary>A time limit must be positive and at most <see cref="MaxTimeout"/>.</summary>
    internal static void CheckTimeout(string parameter, TimeSpan timeout)
    {
        if (timeout <= TimeSpan.Zero || timeout > MaxTimeout)
            throw new InvalidArgumentException(parameter, $"must be positive and at most {MaxTimeout.TotalDays:0} days (got {timeout.TotalSeconds:0.###} s)");
    }
}
