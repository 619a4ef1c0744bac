using System.Net;
using System.Text;
using System.Text.Json;
using GptJx.Server;
using GptJx.Serving;
using static GptJxServerTests.ServerFixture;

namespace GptJxServerTests;

/// <summary>The 504 and 503 responses docs/serving.md promises, each on its own engine over the shared model.</summary>
public class TimeoutAndShutdownTests
{
    private const string LongCompletion = "{\"prompt\":\"Tell me a long story\",\"max_tokens\":200,\"temperature\":0}";

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    private static JsonElement Error(string body) => JsonDocument.Parse(body).RootElement.GetProperty("error").Clone();

    /// <summary>A server on an engine whose steps take at least 20 ms, so a 200-token request runs for seconds.</summary>
    private sealed class SlowServer : IAsyncDisposable
    {
        private GptJxServer _server = null!;

        public InferenceEngine Engine { get; private init; } = null!;
        public HttpClient Http { get; private set; } = null!;

        public static async Task<SlowServer> Start(TimeSpan? timeout = null)
        {
            var engine = new InferenceEngine(ServerFixture.Engine.Model, new EngineOptions { MaxBatchSize = 2, RequestTimeout = timeout });
            engine.StepCompleted += _ => Thread.Sleep(20);
            var slow = new SlowServer { Engine = engine };
            (slow._server, var uri) = await StartServer(engine);
            slow.Http = new HttpClient { BaseAddress = uri };
            return slow;
        }

        public async ValueTask DisposeAsync()
        {
            Http.Dispose();
            await _server.DisposeAsync();
            Engine.Dispose();
        }
    }

    [Test]
    public async Task ARequestPastTheTimeoutIsA504()
    {
        await using var slow = await SlowServer.Start(TimeSpan.FromMilliseconds(200));
        using var response = await slow.Http.PostAsync("v1/completions", Json(LongCompletion));
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.GatewayTimeout));
        var error = Error(await response.Content.ReadAsStringAsync());
        Assert.That(error.GetProperty("type").GetString(), Is.EqualTo("timeout_error"));
        Assert.That(error.GetProperty("code").GetString(), Is.EqualTo("timeout"));
        Assert.That(error.GetProperty("message").GetString(), Does.Contain("timeout of 0.2 s"));
        Assert.That(await slow.Http.GetStringAsync("metrics"), Does.Contain("gptjx_requests_total{endpoint=\"/v1/completions\",status=\"504\"} 1"));
        await WaitUntil(() => slow.Engine.ActiveSequences == 0, "the timed-out request's slot is freed");
    }

    [Test]
    public async Task AStreamPastTheTimeoutEndsWithAnErrorEventThenDone()
    {
        await using var slow = await SlowServer.Start(TimeSpan.FromMilliseconds(200));
        using var response = await slow.Http.PostAsync("v1/chat/completions",
            Json("{\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a long story\"}],\"max_tokens\":200,\"temperature\":0,\"stream\":true}"));
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), "the stream had started");
        var events = (await response.Content.ReadAsStringAsync()).Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Select(e => e["data: ".Length..]).ToList();
        Assert.That(events[^1], Is.EqualTo("[DONE]"));
        var error = Error(events[^2]);
        Assert.That(error.GetProperty("type").GetString(), Is.EqualTo("timeout_error"));
        Assert.That(error.GetProperty("code").GetString(), Is.EqualTo("timeout"));
        Assert.That(events.SkipLast(2).Select(e => JsonDocument.Parse(e).RootElement.TryGetProperty("choices", out _)), Is.All.True, "content chunks came before the error");
    }

    [Test]
    public async Task AfterTheEngineStopsRequestsGetA503()
    {
        await using var slow = await SlowServer.Start();
        // One request is generating when the engine stops, the other arrives after.
        var running = slow.Http.PostAsync("v1/completions", Json(LongCompletion));
        await WaitUntil(() => slow.Engine.ActiveSequences == 1, "the first request is generating");
        slow.Engine.Dispose();
        using var late = await slow.Http.PostAsync("v1/completions", Json(LongCompletion));
        using var cut = await running;

        foreach (var response in new[] { cut, late })
        {
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.ServiceUnavailable));
            var error = Error(await response.Content.ReadAsStringAsync());
            Assert.That(error.GetProperty("type").GetString(), Is.EqualTo("server_error"));
            Assert.That(error.GetProperty("code").GetString(), Is.EqualTo("unavailable"));
            Assert.That(error.GetProperty("message").GetString(), Is.EqualTo("the server is shutting down"));
        }
        using var sequence = Engine.Model.CreateSequence(2);
        Assert.That(sequence.Capacity, Is.EqualTo(2), "the shared model outlives the engine");
    }
}
