using System.Text.Json.Serialization;

namespace GptJx.Server;

// The OpenAI wire format, as much of it as this server speaks. Names are snake_case.

internal sealed record ErrorBody(ErrorDetail Error);

internal sealed record ErrorDetail(
    string Message, string Type,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? Param,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? Code);

internal sealed record Usage(int PromptTokens, int CompletionTokens, int TotalTokens);

internal sealed record ModelList(string Object, IReadOnlyList<ModelCard> Data);

internal sealed record ModelCard(string Id, string Object, long Created, string OwnedBy, int? ContextLength, int? MaxModelLen);

internal sealed record Health(string Status, string Model, int ActiveSequences, int QueuedRequests, int MaxBatchSize, int MaxQueueLength);

// ---- /v1/completions -------------------------------------------------------------

internal sealed record Completion(string Id, string Object, long Created, string Model, IReadOnlyList<CompletionChoice> Choices, Usage? Usage);

internal sealed record CompletionChoice(
    string Text, int Index,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] CompletionLogprobs? Logprobs,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? FinishReason);

internal sealed record CompletionLogprobs(
    IReadOnlyList<string> Tokens,
    IReadOnlyList<float?> TokenLogprobs,
    IReadOnlyList<Dictionary<string, float>?> TopLogprobs,
    IReadOnlyList<int> TextOffset);

// ---- /v1/chat/completions --------------------------------------------------------

internal sealed record ChatCompletion(string Id, string Object, long Created, string Model, IReadOnlyList<ChatChoice> Choices, Usage Usage, string? SystemFingerprint);

internal sealed record ChatChoice(
    int Index, ChatMessageBody Message,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] ChatLogprobs? Logprobs,
    string FinishReason);

internal sealed record ChatMessageBody(string Role, string Content);

internal sealed record ChatCompletionChunk(string Id, string Object, long Created, string Model, IReadOnlyList<ChatChunkChoice> Choices, Usage? Usage);

internal sealed record ChatChunkChoice(
    int Index, ChatDelta Delta,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] ChatLogprobs? Logprobs,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? FinishReason);

internal sealed record ChatDelta(string? Role, string? Content);

internal sealed record ChatLogprobs(IReadOnlyList<ChatTokenLogprob> Content);

internal sealed record ChatTokenLogprob(string Token, float Logprob, IReadOnlyList<int> Bytes, IReadOnlyList<ChatTopLogprob> TopLogprobs);

internal sealed record ChatTopLogprob(string Token, float Logprob, IReadOnlyList<int> Bytes);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(ErrorBody))]
[JsonSerializable(typeof(ModelList))]
[JsonSerializable(typeof(Health))]
[JsonSerializable(typeof(Completion))]
[JsonSerializable(typeof(ChatCompletion))]
[JsonSerializable(typeof(ChatCompletionChunk))]
internal sealed partial class ProtocolJson : JsonSerializerContext;
