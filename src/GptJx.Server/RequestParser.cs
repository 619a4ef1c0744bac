using System.Text.Json;
using GptJx.Generation;
using GptJx.Serving;

namespace GptJx.Server;

/// <summary>A request the server refuses with 400 and an OpenAI-style error naming the parameter.</summary>
internal sealed class RequestException(string message, string? param, string code = "invalid_value") : Exception(message)
{
    public string? Param { get; } = param;
    public string Code { get; } = code;
}

/// <summary>A parsed /v1/completions or /v1/chat/completions request.</summary>
internal sealed record ApiRequest(GenerationRequest Generation, bool Stream, bool IncludeUsage, bool Echo, string EchoText);

/// <summary>
/// Reads OpenAI request bodies into engine requests, checking every parameter it knows
/// (unknown ones are ignored, as OpenAI-compatible servers commonly do).
/// </summary>
internal static class RequestParser
{
    public static ApiRequest ParseCompletion(JsonElement root, GptJxServerOptions options)
    {
        RequireObject(root);
        RequireValidText(root);
        CommonChecks(root);
        var (promptText, promptIds) = ReadPrompt(root);
        int? logprobs = OptionalInt(root, "logprobs", 0, 5);
        bool echo = OptionalBool(root, "echo") ?? false;
        var generation = new GenerationRequest
        {
            Prompt = promptText,
            PromptIds = promptIds,
            Options = ReadSampling(root, "max_tokens", options.DefaultCompletionTokens, ReadStops(root)),
            TopLogprobs = logprobs,
        };
        var (stream, includeUsage) = ReadStream(root);
        return new ApiRequest(generation, stream, includeUsage, echo, echo ? promptText ?? "" : "");
    }

    public static ApiRequest ParseChat(JsonElement root, GptJxServerOptions options)
    {
        RequireObject(root);
        RequireValidText(root);
        CommonChecks(root);
        if (root.TryGetProperty("echo", out var echo) && echo.ValueKind == JsonValueKind.True)
            throw new RequestException("echo is not supported by chat completions", "echo", "unsupported_parameter");
        var messages = ReadMessages(root);
        bool logprobs = OptionalBool(root, "logprobs") ?? false;
        int? top = OptionalInt(root, "top_logprobs", 0, EngineOptions.MaxTopLogprobs);
        if (top is not null && !logprobs) throw new RequestException("top_logprobs needs logprobs: true", "top_logprobs");
        string maxKey = root.TryGetProperty("max_completion_tokens", out var m) && m.ValueKind != JsonValueKind.Null ? "max_completion_tokens" : "max_tokens";
        var generation = new GenerationRequest
        {
            Prompt = ChatPromptTemplate.Format(messages),
            Options = ReadSampling(root, maxKey, options.DefaultChatTokens, ChatPromptTemplate.WithTemplateStops(ReadStops(root))),
            TopLogprobs = logprobs ? top ?? 0 : null,
        };
        var (stream, includeUsage) = ReadStream(root);
        return new ApiRequest(generation, stream, includeUsage, false, "");
    }

    private static void RequireObject(JsonElement root)
    {
        if (root.ValueKind != JsonValueKind.Object) throw new RequestException("the request body must be a JSON object", null, "invalid_json");
    }

    /// <summary>
    /// Every string and property name must be text: invalid UTF-8 or an escaped unpaired surrogate
    /// (<c>"\ud800"</c>) is refused here, naming where it is, before any lookup trips over it.
    /// </summary>
    private static void RequireValidText(JsonElement root)
    {
        if (JsonText.FindInvalid(root) is { } bad)
            throw new RequestException($"{bad.Describe()} is not valid text: it holds invalid UTF-8 or an unpaired UTF-16 surrogate escape",
                bad.Path.Length == 0 ? null : bad.Path, "invalid_encoding");
    }

    private static void CommonChecks(JsonElement root)
    {
        if (root.TryGetProperty("model", out var model) && model.ValueKind is not (JsonValueKind.String or JsonValueKind.Null))
            throw new RequestException("model must be a string", "model", "invalid_type");
        if (OptionalInt(root, "n", int.MinValue, int.MaxValue) is { } n && n != 1)
            throw new RequestException($"n = {n} is not supported: this server returns one choice per request (n = 1)", "n", "unsupported_value");
        if (OptionalInt(root, "best_of", int.MinValue, int.MaxValue) is { } bestOf && bestOf != 1)
            throw new RequestException($"best_of = {bestOf} is not supported (only 1)", "best_of", "unsupported_value");
        foreach (var penalty in (string[])["presence_penalty", "frequency_penalty"])
            if (OptionalFloat(root, penalty, -2, 2) is { } p && p != 0)
                throw new RequestException($"{penalty} is not supported (only 0); use repetition_penalty", penalty, "unsupported_value");
    }

    private static GenerationOptions ReadSampling(JsonElement root, string maxKey, int defaultMax, IReadOnlyList<string> stops) => new()
    {
        MaxNewTokens = OptionalInt(root, maxKey, 0, int.MaxValue) ?? defaultMax,
        // OpenAI's default temperature is 1.
        Temperature = OptionalFloat(root, "temperature", 0, 2) ?? 1f,
        TopP = OptionalFloat(root, "top_p", 0, 1, exclusiveMin: true) ?? 1f,
        TopK = OptionalInt(root, "top_k", 0, int.MaxValue) ?? 0,
        RepetitionPenalty = OptionalFloat(root, "repetition_penalty", 0, float.MaxValue, exclusiveMin: true) ?? 1f,
        Seed = OptionalSeed(root),
        StopSequences = stops,
    };

    private static (bool Stream, bool IncludeUsage) ReadStream(JsonElement root)
    {
        bool stream = OptionalBool(root, "stream") ?? false;
        bool usage = false;
        if (root.TryGetProperty("stream_options", out var so) && so.ValueKind != JsonValueKind.Null)
        {
            if (so.ValueKind != JsonValueKind.Object) throw new RequestException("stream_options must be an object", "stream_options", "invalid_type");
            usage = OptionalBool(so, "include_usage", "stream_options.include_usage") ?? false;
        }
        return (stream, usage);
    }

    private static (string? Text, int[]? Ids) ReadPrompt(JsonElement root)
    {
        if (!root.TryGetProperty("prompt", out var p) || p.ValueKind == JsonValueKind.Null) return ("", null);
        switch (p.ValueKind)
        {
            case JsonValueKind.String:
                return (p.GetString(), null);
            case JsonValueKind.Array:
                int count = p.GetArrayLength();
                if (count == 0) return ("", null);
                var first = p[0];
                if (first.ValueKind == JsonValueKind.String)
                {
                    if (count > 1) throw new RequestException("only one prompt per request is supported", "prompt", "unsupported_value");
                    return (first.GetString(), null);
                }
                if (first.ValueKind == JsonValueKind.Array)
                {
                    if (count > 1) throw new RequestException("only one prompt per request is supported", "prompt", "unsupported_value");
                    return (null, ReadIds(first));
                }
                return (null, ReadIds(p));
            default:
                throw new RequestException("prompt must be a string, an array of one string, or an array of token ids", "prompt", "invalid_type");
        }
    }

    private static int[] ReadIds(JsonElement array)
    {
        var ids = new int[array.GetArrayLength()];
        int i = 0;
        foreach (var e in array.EnumerateArray())
        {
            if (e.ValueKind != JsonValueKind.Number || !e.TryGetInt32(out ids[i]) || ids[i] < 0)
                throw new RequestException("prompt token ids must be non-negative integers", "prompt", "invalid_type");
            i++;
        }
        return ids;
    }

    private static List<(string Role, string Text)> ReadMessages(JsonElement root)
    {
        if (!root.TryGetProperty("messages", out var list) || list.ValueKind != JsonValueKind.Array)
            throw new RequestException("messages is required: an array of {role, content}", "messages", "missing_required_parameter");
        if (list.GetArrayLength() == 0) throw new RequestException("messages must not be empty", "messages");
        var messages = new List<(string, string)>();
        int index = 0;
        foreach (var m in list.EnumerateArray())
        {
            string at = $"messages[{index++}]";
            if (m.ValueKind != JsonValueKind.Object) throw new RequestException($"{at} must be an object with role and content", at, "invalid_type");
            if (!m.TryGetProperty("role", out var role) || role.ValueKind != JsonValueKind.String || string.IsNullOrWhiteSpace(role.GetString()))
                throw new RequestException($"{at}.role must be a string (system, user or assistant)", $"{at}.role", "invalid_type");
            messages.Add((role.GetString()!, ReadContent(m, at)));
        }
        return messages;
    }

    private static string ReadContent(JsonElement message, string at)
    {
        if (!message.TryGetProperty("content", out var content) || content.ValueKind == JsonValueKind.Null) return "";
        if (content.ValueKind == JsonValueKind.String) return content.GetString()!;
        if (content.ValueKind != JsonValueKind.Array) throw new RequestException($"{at}.content must be a string or an array of text parts", $"{at}.content", "invalid_type");
        var text = new System.Text.StringBuilder();
        foreach (var part in content.EnumerateArray())
        {
            if (part.ValueKind != JsonValueKind.Object || !part.TryGetProperty("type", out var type) || type.ValueKind != JsonValueKind.String || !type.ValueEquals("text")
                || !part.TryGetProperty("text", out var t) || t.ValueKind != JsonValueKind.String)
                throw new RequestException($"{at}.content: only text parts ({{\"type\": \"text\", \"text\": ...}}) are supported", $"{at}.content", "unsupported_value");
            text.Append(t.GetString());
        }
        return text.ToString();
    }

    private static IReadOnlyList<string> ReadStops(JsonElement root)
    {
        if (!root.TryGetProperty("stop", out var stop) || stop.ValueKind == JsonValueKind.Null) return [];
        var stops = new List<string>();
        if (stop.ValueKind == JsonValueKind.String) stops.Add(stop.GetString()!);
        else if (stop.ValueKind == JsonValueKind.Array)
        {
            foreach (var s in stop.EnumerateArray())
            {
                if (s.ValueKind != JsonValueKind.String) throw new RequestException("stop must be a string or an array of strings", "stop", "invalid_type");
                stops.Add(s.GetString()!);
            }
        }
        else throw new RequestException("stop must be a string or an array of strings", "stop", "invalid_type");
        if (stops.Count > 4) throw new RequestException($"stop has {stops.Count} sequences; at most 4 are allowed", "stop");
        if (stops.Any(string.IsNullOrEmpty)) throw new RequestException("stop sequences must not be empty", "stop");
        return stops;
    }

    private static int? OptionalInt(JsonElement root, string name, int min, int max)
    {
        if (!root.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out int value))
            throw new RequestException($"{name} must be an integer", name, "invalid_type");
        if (value < min || value > max)
            throw new RequestException(max == int.MaxValue ? $"{name} must be >= {min} (got {value})" : $"{name} must be between {min} and {max} (got {value})", name);
        return value;
    }

    private static float? OptionalFloat(JsonElement root, string name, float min, float max, bool exclusiveMin = false)
    {
        if (!root.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetDouble(out double value) || !double.IsFinite(value))
            throw new RequestException($"{name} must be a number", name, "invalid_type");
        bool below = exclusiveMin ? value <= min : value < min;
        if (below || value > max)
        {
            string low = exclusiveMin ? $"> {min}" : $">= {min}";
            throw new RequestException(max == float.MaxValue ? $"{name} must be {low} (got {value})" : $"{name} must be {low} and <= {max} (got {value})", name);
        }
        return (float)value;
    }

    private static bool? OptionalBool(JsonElement root, string name, string? param = null)
    {
        if (!root.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        return v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw new RequestException($"{param ?? name} must be true or false", param ?? name, "invalid_type"),
        };
    }

    private static ulong? OptionalSeed(JsonElement root)
    {
        if (!root.TryGetProperty("seed", out var v) || v.ValueKind == JsonValueKind.Null) return null;
        if (v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out long signed)) return unchecked((ulong)signed);
        if (v.ValueKind == JsonValueKind.Number && v.TryGetUInt64(out ulong unsigned)) return unsigned;
        throw new RequestException("seed must be an integer", "seed", "invalid_type");
    }
}
