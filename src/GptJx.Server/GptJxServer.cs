using System.Net;
using System.Text.Json;
using GptJx.Serving;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace GptJx.Server;

/// <summary>
/// An OpenAI-compatible HTTP server over an <see cref="InferenceEngine"/> (Kestrel, minimal APIs):
/// POST /v1/completions, POST /v1/chat/completions (JSON or SSE streaming), GET /v1/models,
/// GET /health, GET /metrics. Stateless between requests, so replicas can sit behind a load balancer.
/// The server does not own the engine.
/// </summary>
public sealed class GptJxServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ServerMetrics _metrics;

    private GptJxServer(WebApplication app, ServerMetrics metrics)
    {
        _app = app;
        _metrics = metrics;
    }

    /// <summary>Builds the server (not started) on <paramref name="options"/>' address.</summary>
    public static GptJxServer Create(InferenceEngine engine, GptJxServerOptions? options = null, LogLevel logLevel = LogLevel.Warning)
    {
        ArgumentNullException.ThrowIfNull(engine);
        options ??= new GptJxServerOptions();
        if (options.Port is < 0 or > 65535) throw new InvalidArgumentException("port", $"must be 0..65535 (got {options.Port})");
        var address = ParseHost(options.Host);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.SetMinimumLevel(logLevel);
        // A host that fails to start (a busy port) throws from StartAsync; its own log of that failure would repeat it with a stack trace.
        builder.Logging.AddFilter("Microsoft.Extensions.Hosting.Internal.Host", level => level >= logLevel && level != LogLevel.Error);
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.Limits.MaxRequestBodySize = options.MaxRequestBodyBytes;
            if (address is null) kestrel.ListenLocalhost(options.Port);
            else kestrel.Listen(address, options.Port);
        });
        var app = builder.Build();
        var metrics = app.MapGptJx(engine, options);
        return new GptJxServer(app, metrics);
    }

    /// <summary>null for "localhost" (both loopback families).</summary>
    private static IPAddress? ParseHost(string host) => host.Trim() switch
    {
        "localhost" => null,
        "*" or "+" or "0.0.0.0" => IPAddress.Any,
        "::" or "[::]" => IPAddress.IPv6Any,
        var h when IPAddress.TryParse(h.Trim('[', ']'), out var ip) => ip,
        var h => throw new InvalidArgumentException(nameof(host), $"'{h}' is not an IP address, localhost or *"),
    };

    public WebApplication App => _app;

    public ServerMetrics Metrics => _metrics;

    /// <summary>The addresses bound, e.g. http://127.0.0.1:8080 (known once started; port 0 becomes the real port).</summary>
    public IReadOnlyList<string> Urls =>
        _app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.ToList() ?? [];

    public Task StartAsync(CancellationToken cancellationToken = default) => _app.StartAsync(cancellationToken);

    public Task StopAsync(CancellationToken cancellationToken = default) => _app.StopAsync(cancellationToken);

    /// <summary>Runs until the host is stopped (Ctrl+C or SIGTERM).</summary>
    public Task WaitForShutdownAsync(CancellationToken cancellationToken = default) => _app.WaitForShutdownAsync(cancellationToken);

    public async ValueTask DisposeAsync()
    {
        await _app.DisposeAsync();
        _metrics.Dispose();
    }
}

public static class GptJxEndpointExtensions
{
    /// <summary>Maps the OpenAI-compatible endpoints, /health and /metrics onto any ASP.NET Core app; returns the metrics they record.</summary>
    public static ServerMetrics MapGptJx(this IEndpointRouteBuilder endpoints, InferenceEngine engine, GptJxServerOptions? options = null)
    {
        options ??= new GptJxServerOptions();
        var metrics = new ServerMetrics(engine);
        var handlers = new CompletionEndpoints(engine, options, metrics);
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();

        endpoints.MapPost("/v1/completions", handlers.Completions);
        endpoints.MapPost("/v1/chat/completions", handlers.ChatCompletions);
        endpoints.MapGet("/v1/models", (HttpContext context) =>
        {
            metrics.Request("/v1/models", 200);
            var card = new ModelCard(options.ModelId, "model", created, "gptjx", engine.MaxSequenceLength, engine.MaxSequenceLength);
            return Json(context, new ModelList("list", [card]), ProtocolJson.Default.ModelList);
        });
        endpoints.MapGet("/health", (HttpContext context) =>
        {
            // Ready while the engine runs; a load balancer's readiness probe.
            var stats = engine.GetStatistics();
            var health = new Health("ok", options.ModelId, stats.ActiveSequences, stats.QueuedRequests, stats.MaxBatchSize, stats.MaxQueueLength);
            return Json(context, health, ProtocolJson.Default.Health);
        });
        endpoints.MapGet("/metrics", (HttpContext context) =>
        {
            context.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
            return context.Response.WriteAsync(metrics.Render());
        });
        return metrics;
    }

    private static Task Json<T>(HttpContext context, T value, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type)
    {
        context.Response.ContentType = "application/json";
        return JsonSerializer.SerializeAsync(context.Response.Body, value, type, context.RequestAborted);
    }
}
