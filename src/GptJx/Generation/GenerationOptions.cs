namespace GptJx.Generation;

/// <summary>How to pick tokens and when to stop. Validate() names the bad parameter.</summary>
public sealed record GenerationOptions
{
    /// <summary>Tokens to generate at most (generation also stops at the end of the context).</summary>
    public int MaxNewTokens { get; init; } = 128;

    /// <summary>0 picks the most likely token (greedy); otherwise logits are divided by it before sampling.</summary>
    public float Temperature { get; init; } = 0f;

    /// <summary>Sample only among the K most likely tokens; 0 disables.</summary>
    public int TopK { get; init; }

    /// <summary>Sample only among the most likely tokens whose probabilities sum to P; 1 disables.</summary>
    public float TopP { get; init; } = 1f;

    /// <summary>Divides positive logits (multiplies negative ones) of tokens already seen; 1 disables.</summary>
    public float RepetitionPenalty { get; init; } = 1f;

    /// <summary>Seed of the sampler: the same seed and prompt give the same output.</summary>
    public ulong? Seed { get; init; }

    /// <summary>Generation ends before any of these texts would be produced.</summary>
    public IReadOnlyList<string> StopSequences { get; init; } = [];

    /// <summary>Stop at the end-of-text token (true by default).</summary>
    public bool StopAtEndOfText { get; init; } = true;

    public void Validate()
    {
        if (MaxNewTokens < 0) throw new InvalidArgumentException(nameof(MaxNewTokens), $"must be zero or more (got {MaxNewTokens})");
        if (!float.IsFinite(Temperature) || Temperature < 0)
            throw new InvalidArgumentException(nameof(Temperature), $"must be a finite number >= 0, 0 = greedy (got {Temperature})");
        if (TopK < 0) throw new InvalidArgumentException(nameof(TopK), $"must be >= 0, 0 = off (got {TopK})");
        if (!(TopP > 0 && TopP <= 1)) throw new InvalidArgumentException(nameof(TopP), $"must be in (0, 1] (got {TopP})");
        if (!float.IsFinite(RepetitionPenalty) || RepetitionPenalty <= 0)
            throw new InvalidArgumentException(nameof(RepetitionPenalty), $"must be a finite number > 0, 1 = off (got {RepetitionPenalty})");
        foreach (var stop in StopSequences)
            if (string.IsNullOrEmpty(stop)) throw new InvalidArgumentException(nameof(StopSequences), "must not be empty");
    }
}
