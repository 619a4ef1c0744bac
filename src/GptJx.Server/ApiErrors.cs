using System.Text.Json;
using GptJx.Generation;
using GptJx.Serving;
using Microsoft.AspNetCore.Http;

namespace GptJx.Server;

/// <summary>An error as the API answers it: HTTP status and the OpenAI-style error body.</summary>
internal sealed record ApiError(int Status, string Message, string Type, string? Param, string? Code)
{
    public ErrorBody Body => new(new ErrorDetail(Message, Type, Param, Code));
}

/// <summary>The one place where the library's errors become HTTP statuses and OpenAI error codes.</summary>
internal static class ApiErrors
{
    public static ApiError From(Exception e, bool chat) => e switch
    {
        JsonException => new(400, $"the request body is not valid JSON: {e.Message}", "invalid_request_error", null, "invalid_json"),
        RequestException r => new(400, r.Message, "invalid_request_error", r.Param, r.Code),
        InvalidArgumentException a => Argument(a, chat),
        BadHttpRequestException b => new(b.StatusCode, b.Message, "invalid_request_error", null, "invalid_request"),
        EngineOverloadedException => new(429, e.Message, "rate_limit_error", null, "rate_limit_exceeded"),
        ObjectDisposedException => new(503, "the server is shutting down", "server_error", null, "unavailable"),
        TimeoutException => new(504, e.Message, "timeout_error", null, "timeout"),
        // The model, not the server, failed on this request's tokens: retrying it gives the same.
        NonFiniteLogitsException => new(422, e.Message, "model_error", null, "non_finite_logits"),
        _ => new(500, $"generation failed: {e.Message}", "server_error", null, "internal_error"),
    };

    /// <summary>A value the engine refused: 400, naming the request field that carried it.</summary>
    private static ApiError Argument(InvalidArgumentException e, bool chat)
    {
        string param = e.ParamName switch
        {
            "prompt" => chat ? "messages" : "prompt",
            nameof(GenerationOptions.MaxNewTokens) => "max_tokens",
            nameof(GenerationOptions.StopSequences) => "stop",
            nameof(GenerationRequest.TopLogprobs) => chat ? "top_logprobs" : "logprobs",
            var name => JsonNamingPolicy.SnakeCaseLower.ConvertName(name ?? ""),
        };
        string message = e.ParamName == "prompt" ? e.MessageFor("the prompt") : e.MessageFor(param);
        string code = e.Code == ArgumentErrorCode.ContextLengthExceeded ? "context_length_exceeded" : "invalid_value";
        return new(400, message, "invalid_request_error", param, code);
    }
}
