namespace GptJx.Server;

/// <summary>Where the server listens and what it reports.</summary>
public sealed record GptJxServerOptions
{
    /// <summary>Address to bind: an IP address, "localhost", or "*" / "0.0.0.0" for every interface. Loopback by default.</summary>
    public string Host { get; init; } = "127.0.0.1";

    /// <summary>TCP port; 0 picks a free one (see <see cref="GptJxServer.Urls"/>).</summary>
    public int Port { get; init; } = 8080;

    /// <summary>The model id served by /v1/models and echoed in responses.</summary>
    public string ModelId { get; init; } = "gpt-jx";

    /// <summary>max_tokens of /v1/completions when the request has none (OpenAI's default is 16).</summary>
    public int DefaultCompletionTokens { get; init; } = 16;

    /// <summary>max_tokens of /v1/chat/completions when the request has none.</summary>
    public int DefaultChatTokens { get; init; } = 256;

    /// <summary>Largest request body accepted, in bytes.</summary>
    public long MaxRequestBodyBytes { get; init; } = 4 * 1024 * 1024;
}
