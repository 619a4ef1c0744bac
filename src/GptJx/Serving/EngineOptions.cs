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

    public void Validate()
    {
        if (MaxBatchSize < 1) throw new ArgumentOutOfRangeException(nameof(MaxBatchSize), MaxBatchSize, "max batch size must be at least 1");
        if (MaxQueueLength < 0) throw new ArgumentOutOfRangeException(nameof(MaxQueueLength), MaxQueueLength, "max queue length must be zero or more");
        if (PrefillChunk < 1) throw new ArgumentOutOfRangeException(nameof(PrefillChunk), PrefillChunk, "prefill chunk must be at least 1 token");
        if (MaxSequenceLength is < 2)
            throw new ArgumentOutOfRangeException(nameof(MaxSequenceLength), MaxSequenceLength, "max sequence length must be at least 2 (one prompt token and one generated)");
        if (RequestTimeout is { } t && t <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(RequestTimeout), t, "request timeout must be positive (null = none)");
    }
}
