using GptJx.Generation;

namespace GptJx.Serving;

/// <summary>One generation asked of an <see cref="InferenceEngine"/>: a prompt (text or token ids) and how to continue it.</summary>
public sealed record GenerationRequest
{
    /// <summary>The text to continue (tokenized without special tokens). Ignored when <see cref="PromptIds"/> is set.</summary>
    public string? Prompt { get; init; }

    /// <summary>The prompt as token ids. An empty prompt starts from the end-of-text token, as the model was trained.</summary>
    public IReadOnlyList<int>? PromptIds { get; init; }

    /// <summary>Sampling and stopping; the same options and seed give the same tokens alone or batched with others.</summary>
    public GenerationOptions Options { get; init; } = new();

    /// <summary>
    /// null: no log-probabilities. 0..<see cref="EngineOptions.MaxTopLogprobs"/>: each generated token carries its
    /// log-probability under the model (log-softmax of the raw logits) and that many most likely alternatives.
    /// </summary>
    public int? TopLogprobs { get; init; }

    /// <summary>Time limit from submission to the last token (at most the engine's <see cref="EngineOptions.RequestTimeout"/>).</summary>
    public TimeSpan? Timeout { get; init; }

    public static GenerationRequest FromText(string prompt, GenerationOptions? options = null) => new() { Prompt = prompt, Options = options ?? new() };
}

/// <summary>One generated token, the text it completes (possibly empty while a character or a stop sequence is pending), and its log-probabilities when asked.</summary>
/// <param name="Finish">Set on the last token of the stream.</param>
public readonly record struct EngineToken(int Id, string Text, FinishReason Finish, TokenLogprobs? Logprobs);

/// <param name="Logprob">ln p(token) under the model's distribution at that step.</param>
/// <param name="Top">The most likely tokens at that step, most likely first.</param>
public sealed record TokenLogprobs(float Logprob, IReadOnlyList<TopLogprob> Top);

public readonly record struct TopLogprob(int Id, float Logprob);

/// <summary>A whole generation, as <see cref="InferenceEngine.CompleteAsync"/> returns it.</summary>
public sealed record GenerationResult(string Text, IReadOnlyList<EngineToken> Tokens, FinishReason Finish, int PromptTokens)
{
    public int CompletionTokens => Tokens.Count;
}

/// <summary>The engine's queue is full: the request was refused (a server answers 429).</summary>
public sealed class EngineOverloadedException(int queueLength)
    : Exception($"the engine is at capacity: {queueLength} requests are already waiting for a slot; retry later")
{
    public int QueueLength { get; } = queueLength;
}
