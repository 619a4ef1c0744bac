using System.Runtime.CompilerServices;
using GptJx.Generation;
using GptJx.Serving;
using Microsoft.Extensions.AI;

namespace GptJx.Extensions;

/// <summary>Settings of <see cref="GptJxChatClient"/>.</summary>
public sealed record GptJxChatClientOptions
{
    /// <summary>Model id reported in responses and metadata.</summary>
    public string ModelId { get; init; } = "gpt-jx";

    /// <summary>Tokens generated when <see cref="ChatOptions.MaxOutputTokens"/> is not set.</summary>
    public int DefaultMaxOutputTokens { get; init; } = 256;
}

/// <summary>
/// Microsoft.Extensions.AI chat client over an <see cref="InferenceEngine"/>. Messages become a
/// prompt by <see cref="ChatPromptTemplate"/> (GPT-JX is a base model). Options used:
/// MaxOutputTokens, Temperature (unset: greedy), TopP, TopK, Seed, StopSequences, Instructions
/// (a leading system message); other options are ignored. Many calls may run at once: the
/// engine batches them. Disposing the client leaves the engine running.
/// </summary>
public sealed class GptJxChatClient : IChatClient
{
    private readonly InferenceEngine _engine;
    private readonly GptJxChatClientOptions _options;
    private readonly ChatClientMetadata _metadata;

    public GptJxChatClient(InferenceEngine engine, GptJxChatClientOptions? options = null)
    {
        _engine = engine ?? throw new ArgumentNullException(nameof(engine));
        _options = options ?? new GptJxChatClientOptions();
        _metadata = new ChatClientMetadata("gptjx", null, _options.ModelId);
    }

    public InferenceEngine Engine => _engine;

    public async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        var stream = _engine.Submit(CreateRequest(messages, options), cancellationToken);
        var result = await stream.ReadToEndAsync(cancellationToken).ConfigureAwait(false);
        return new ChatResponse(new ChatMessage(ChatRole.Assistant, result.Text.TrimStart()))
        {
            ResponseId = ResponseId(stream),
            ModelId = options?.ModelId ?? _options.ModelId,
            CreatedAt = DateTimeOffset.UtcNow,
            FinishReason = ToChatFinishReason(result.Finish),
            Usage = Usage(stream),
        };
    }

    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        using var stream = _engine.Submit(CreateRequest(messages, options), cancellationToken);
        string id = ResponseId(stream), model = options?.ModelId ?? _options.ModelId;
        var created = DateTimeOffset.UtcNow;
        var trimmer = new LeadingWhitespaceTrimmer();
        await foreach (var token in stream.WithCancellation(cancellationToken).ConfigureAwait(false))
        {
            string text = trimmer.Push(token.Text);
            if (text.Length > 0)
                yield return new ChatResponseUpdate(ChatRole.Assistant, text) { ResponseId = id, MessageId = id, ModelId = model, CreatedAt = created };
        }
        var finish = stream.Finish == FinishReason.None ? FinishReason.Length : stream.Finish;
        yield return new ChatResponseUpdate(ChatRole.Assistant, [new UsageContent(Usage(stream))])
        {
            ResponseId = id, MessageId = id, ModelId = model, CreatedAt = created, FinishReason = ToChatFinishReason(finish),
        };
    }

    public object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        if (serviceKey is not null) return null;
        if (serviceType == typeof(ChatClientMetadata)) return _metadata;
        if (serviceType.IsInstanceOfType(_engine)) return _engine;
        if (serviceType.IsInstanceOfType(this)) return this;
        return null;
    }

    public void Dispose()
    {
    }

    /// <summary>The engine request for a chat: the template's prompt and stops, and the options mapped.</summary>
    public GenerationRequest CreateRequest(IEnumerable<ChatMessage> messages, ChatOptions? options)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var turns = new List<(string, string)>();
        if (!string.IsNullOrWhiteSpace(options?.Instructions)) turns.Add(("system", options.Instructions));
        foreach (var m in messages) turns.Add((m.Role.Value, m.Text));
        var generation = new GenerationOptions
        {
            MaxNewTokens = options?.MaxOutputTokens ?? _options.DefaultMaxOutputTokens,
            Temperature = options?.Temperature ?? 0f,
            TopP = options?.TopP ?? 1f,
            TopK = options?.TopK ?? 0,
            Seed = options?.Seed is { } seed ? unchecked((ulong)seed) : null,
            StopSequences = ChatPromptTemplate.WithTemplateStops(options?.StopSequences),
        };
        return new GenerationRequest { Prompt = ChatPromptTemplate.Format(turns), Options = generation };
    }

    private static string ResponseId(GenerationStream stream) => $"chatcmpl-{stream.Id}";

    private static UsageDetails Usage(GenerationStream stream) => new()
    {
        InputTokenCount = stream.PromptTokens,
        OutputTokenCount = stream.CompletionTokens,
        TotalTokenCount = stream.PromptTokens + stream.CompletionTokens,
    };

    public static ChatFinishReason? ToChatFinishReason(FinishReason finish) => finish switch
    {
        FinishReason.Stop => ChatFinishReason.Stop,
        FinishReason.Length => ChatFinishReason.Length,
        _ => null,
    };
}
