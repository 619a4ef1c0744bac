namespace GptJx.Generation;

/// <summary>
/// What every generation loop keeps for one sequence: the checked prompt, the positions it may
/// fill, its sampler, its text stream and the tokens it has produced. <see cref="TextGenerator"/>
/// drives one on a <see cref="Sequence"/>; the serving engine drives one per request in its batch,
/// so both validate, size, sample and stop the same way.
/// </summary>
internal sealed class GenerationState
{
    private readonly TokenTextStream _text;
    private int _generated;

    /// <param name="promptIds">The prompt; an empty one starts from the beginning-of-text token, as the model was trained.</param>
    /// <param name="maxPositions">Positions the sequence may hold at most, prompt and generated.</param>
    /// <param name="limit">How a too-long prompt's error describes <paramref name="maxPositions"/>.</param>
    public GenerationState(GptJxModel model, IReadOnlyList<int> promptIds, GenerationOptions options, int maxPositions, string limit)
    {
        options.Validate();
        var config = model.Config;
        int[] prompt = promptIds.Count > 0 ? [.. promptIds] : [config.BosTokenId];
        if (prompt.Length >= maxPositions)
            throw new InvalidArgumentException("prompt", $"of {prompt.Length} tokens leaves no room to generate: {limit}", ArgumentErrorCode.ContextLengthExceeded);
        model.CheckIds(prompt, "prompt");

        Prompt = prompt;
        Options = options;
        Capacity = (int)Math.Min(maxPositions, (long)prompt.Length + Math.Max(options.MaxNewTokens, 1));
        Sampler = new Sampler(options, config.VocabularySize);
        Sampler.Observe(prompt);
        _text = new TokenTextStream(model.Tokenizer, options, config.EosTokenId);
    }

    public int[] Prompt { get; }

    public GenerationOptions Options { get; }

    /// <summary>Positions the sequence may fill: its prompt plus up to MaxNewTokens, within the limit.</summary>
    public int Capacity { get; }

    public Sampler Sampler { get; }

    /// <summary>Tokens generated so far (read from any thread).</summary>
    public int Generated => Volatile.Read(ref _generated);

    /// <summary>Whether the options ask for no token at all (the prompt is then not even run).</summary>
    public bool NothingToGenerate => Options.MaxNewTokens == 0;

    /// <summary>
    /// Takes the token picked after <paramref name="cached"/> tokens (prompt and generated, in the
    /// KV cache): the text it completes and whether generation ends with it.
    /// </summary>
    public (string Text, FinishReason Finish) Accept(int token, int cached)
    {
        int generated = _generated + 1;
        Volatile.Write(ref _generated, generated);
        // Prompt and generated tokens together fill at most the capacity (as Hugging Face's max_length).
        bool last = generated >= Options.MaxNewTokens || cached + 1 >= Capacity;
        return _text.Accept(token, last);
    }
}
