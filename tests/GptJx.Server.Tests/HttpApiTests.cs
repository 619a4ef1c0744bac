using System.Net;
using System.Text;
using System.Text.Json;
using GptJx.Server;
using GptJx.Serving;
using static GptJxServerTests.ServerFixture;

namespace GptJxServerTests;

/// <summary>The HTTP surface with a plain HttpClient: completions, errors, capacity, disconnects, health and metrics.</summary>
public class HttpApiTests
{
    private static async Task<(HttpStatusCode Status, JsonElement Body)> Post(string path, string json, HttpClient? http = null)
    {
        using var response = await (http ?? Http).PostAsync(path, new StringContent(json, Encoding.UTF8, "application/json"));
        var text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, JsonDocument.Parse(text).RootElement.Clone());
    }

    private static string Completion(string prompt, int maxTokens, string extra = "") =>
        $"{{\"model\":\"gpt-jx\",\"prompt\":{JsonSerializer.Serialize(prompt)},\"max_tokens\":{maxTokens}{extra}}}";

    [Test]
    public async Task CompletionsMatchTheEngineAndEcho()
    {
        var (status, body) = await Post("v1/completions", Completion("The quick brown fox", 8, ",\"temperature\":0,\"echo\":true,\"logprobs\":2"));
        Assert.That(status, Is.EqualTo(HttpStatusCode.OK));
        var expected = await Engine.CompleteAsync(GenerationRequest.FromText("The quick brown fox", new() { MaxNewTokens = 8 }));
        var choice = body.GetProperty("choices")[0];
        Assert.That(choice.GetProperty("text").GetString(), Is.EqualTo("The quick brown fox" + expected.Text));
        Assert.That(choice.GetProperty("finish_reason").GetString(), Is.EqualTo(expected.Finish == GptJx.Generation.FinishReason.Stop ? "stop" : "length"));
        Assert.That(body.GetProperty("object").GetString(), Is.EqualTo("text_completion"));
        Assert.That(body.GetProperty("usage").GetProperty("completion_tokens").GetInt32(), Is.EqualTo(expected.CompletionTokens));
        var logprobs = choice.GetProperty("logprobs");
        Assert.That(logprobs.GetProperty("tokens").GetArrayLength(), Is.EqualTo(expected.CompletionTokens));
        var chosen = logprobs.GetProperty("token_logprobs").EnumerateArray().Select(e => e.GetSingle()).ToArray();
        var top = logprobs.GetProperty("top_logprobs").EnumerateArray().Select(t => t.EnumerateObject().Select(p => p.Value.GetSingle()).ToArray()).ToArray();
        Assert.That(top, Has.Length.EqualTo(expected.CompletionTokens));
        for (int i = 0; i < top.Length; i++)
        {
            Assert.That(top[i], Has.Length.EqualTo(2), $"token {i}: \"logprobs\":2 gives the two most likely tokens");
            Assert.That(top[i].Max(), Is.EqualTo(chosen[i]).Within(1e-6), $"token {i}: greedy takes the most likely token");
            Assert.That(top[i], Is.All.LessThanOrEqualTo(0f));
        }
    }

    [Test]
    public async Task StreamedCompletionEqualsTheWholeOne()
    {
        var (_, whole) = await Post("v1/completions", Completion("Once upon a time", 12, ",\"temperature\":0.7,\"seed\":42,\"stop\":[\"\\n\\n\"]"));
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/completions")
        {
            Content = new StringContent(Completion("Once upon a time", 12, ",\"temperature\":0.7,\"seed\":42,\"stop\":[\"\\n\\n\"],\"stream\":true,\"stream_options\":{\"include_usage\":true}"), Encoding.UTF8, "application/json"),
        };
        using var response = await Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.That(response.Content.Headers.ContentType!.MediaType, Is.EqualTo("text/event-stream"));
        var events = await ReadEvents(response);
        Assert.That(events[^1], Is.EqualTo("[DONE]"));
        var chunks = events.SkipLast(1).Select(e => JsonDocument.Parse(e).RootElement).ToList();
        string text = string.Concat(chunks.Where(c => c.GetProperty("choices").GetArrayLength() > 0).Select(c => c.GetProperty("choices")[0].GetProperty("text").GetString()));
        Assert.That(text, Is.EqualTo(whole.GetProperty("choices")[0].GetProperty("text").GetString()));
        Assert.That(chunks[^1].GetProperty("usage").GetProperty("completion_tokens").GetInt32(), Is.EqualTo(whole.GetProperty("usage").GetProperty("completion_tokens").GetInt32()));
    }

    private static async Task<List<string>> ReadEvents(HttpResponseMessage response)
    {
        var events = new List<string>();
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        while (await reader.ReadLineAsync() is { } line)
            if (line.StartsWith("data: ", StringComparison.Ordinal)) events.Add(line["data: ".Length..]);
        return events;
    }

    [Test]
    public async Task ConcurrentRequestsGetTheSameTokensAsAlone()
    {
        var bodies = Enumerable.Range(0, 24).Select(i => Completion($"Story {i}: the", 10 + i % 5,
            i % 2 == 0 ? ",\"temperature\":0" : $",\"temperature\":0.9,\"top_p\":0.9,\"seed\":{i}")).ToArray();
        var alone = new List<string>();
        foreach (var b in bodies) alone.Add((await Post("v1/completions", b)).Body.GetProperty("choices")[0].GetProperty("text").GetString()!);
        long stepsBefore = Engine.GetStatistics().Steps;
        long tokensBefore = Engine.GetStatistics().GeneratedTokens;
        var together = await Task.WhenAll(bodies.Select(b => Post("v1/completions", b)));
        Assert.That(together.Select(r => r.Body.GetProperty("choices")[0].GetProperty("text").GetString()), Is.EqualTo(alone));
        var stats = Engine.GetStatistics();
        Assert.That(stats.Steps - stepsBefore, Is.LessThan((stats.GeneratedTokens - tokensBefore) / 2), "concurrent requests shared forward steps");
    }

    private static readonly object[] BadRequests =
    [
        new object[] { "v1/completions", "{\"prompt\": \"x\",", null!, "invalid_json" },
        new object[] { "v1/completions", "[1, 2]", null!, "invalid_json" },
        new object[] { "v1/completions", "{\"prompt\":\"x\",\"n\":2}", "n", "unsupported_value" },
        new object[] { "v1/completions", "{\"prompt\":\"x\",\"temperature\":3}", "temperature", "invalid_value" },
        new object[] { "v1/completions", "{\"prompt\":\"x\",\"temperature\":\"hot\"}", "temperature", "invalid_type" },
        new object[] { "v1/completions", "{\"prompt\":\"x\",\"max_tokens\":-1}", "max_tokens", "invalid_value" },
        new object[] { "v1/completions", "{\"prompt\":\"x\",\"top_p\":0}", "top_p", "invalid_value" },
        new object[] { "v1/completions", "{\"prompt\":\"x\",\"stop\":5}", "stop", "invalid_type" },
        new object[] { "v1/completions", "{\"prompt\":\"x\",\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}", "stop", "invalid_value" },
        new object[] { "v1/completions", "{\"prompt\":\"x\",\"logprobs\":9}", "logprobs", "invalid_value" },
        new object[] { "v1/completions", "{\"prompt\":[\"a\",\"b\"]}", "prompt", "unsupported_value" },
        new object[] { "v1/completions", "{\"prompt\":[1,-2]}", "prompt", "invalid_type" },
        new object[] { "v1/completions", "{\"prompt\":[50257]}", "prompt", "invalid_value" },
        new object[] { "v1/completions", "{\"prompt\":\"x\",\"seed\":1.5}", "seed", "invalid_type" },
        new object[] { "v1/completions", "{\"prompt\":\"x\",\"stream\":\"yes\"}", "stream", "invalid_type" },
        new object[] { "v1/chat/completions", "{\"model\":\"gpt-jx\"}", "messages", "missing_required_parameter" },
        new object[] { "v1/chat/completions", "{\"messages\":[]}", "messages", "invalid_value" },
        new object[] { "v1/chat/completions", "{\"messages\":[{\"content\":\"hi\"}]}", "messages[0].role", "invalid_type" },
        new object[] { "v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]}", "messages[0].content", "unsupported_value" },
        new object[] { "v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"top_logprobs\":3}", "top_logprobs", "invalid_value" },
        new object[] { "v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"n\":3}", "n", "unsupported_value" },
    ];

    [TestCaseSource(nameof(BadRequests))]
    public async Task MalformedRequestsGetAnOpenAiStyle400(string path, string json, string? param, string code)
    {
        var (status, body) = await Post(path, json);
        Assert.That(status, Is.EqualTo(HttpStatusCode.BadRequest));
        var error = body.GetProperty("error");
        Assert.That(error.GetProperty("type").GetString(), Is.EqualTo("invalid_request_error"));
        Assert.That(error.GetProperty("message").GetString(), Is.Not.Empty);
        Assert.That(error.GetProperty("param").ValueKind == JsonValueKind.Null ? null : error.GetProperty("param").GetString(), Is.EqualTo(param));
        Assert.That(error.GetProperty("code").GetString(), Is.EqualTo(code));
    }

    [Test]
    public async Task APromptLongerThanTheContextIsA400()
    {
        var ids = string.Join(",", Enumerable.Repeat(464, Shape.ContextLength));
        var (status, body) = await Post("v1/completions", $"{{\"prompt\":[{ids}]}}");
        Assert.That(status, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That(body.GetProperty("error").GetProperty("code").GetString(), Is.EqualTo("context_length_exceeded"));
        Assert.That(body.GetProperty("error").GetProperty("message").GetString(), Does.Contain($"{Shape.ContextLength} tokens"));
    }

    [Test]
    public async Task OverCapacityIsA429AndTheServerRecovers()
    {
        using var engine = new InferenceEngine(Engine.Model, new EngineOptions { MaxBatchSize = 1, MaxQueueLength = 0 });
        using var gate = new ManualResetEventSlim(false);
        engine.StepCompleted += _ => gate.Wait(TimeSpan.FromSeconds(30));
        var (server, uri) = await StartServer(engine);
        await using var _ = server;
        using var http = new HttpClient { BaseAddress = uri };
        var first = Post("v1/completions", Completion("hold the slot", 3), http);
        await WaitUntil(() => engine.ActiveSequences == 1, "the first request holds the only slot");
        var (status, body) = await Post("v1/completions", Completion("one too many", 3), http);
        Assert.That(status, Is.EqualTo((HttpStatusCode)429));
        Assert.That(body.GetProperty("error").GetProperty("type").GetString(), Is.EqualTo("rate_limit_error"));
        Assert.That(body.GetProperty("error").GetProperty("code").GetString(), Is.EqualTo("rate_limit_exceeded"));
        gate.Set();
        Assert.That((await first).Status, Is.EqualTo(HttpStatusCode.OK));
        Assert.That((await Post("v1/completions", Completion("after", 3), http)).Status, Is.EqualTo(HttpStatusCode.OK));
        var metrics = await http.GetStringAsync("metrics");
        Assert.That(metrics, Does.Contain("gptjx_requests_total{endpoint=\"/v1/completions\",status=\"429\"} 1"));
        Assert.That(metrics, Does.Contain("gptjx_engine_requests_rejected_total 1"));
    }

    [Test]
    public async Task AClientThatDisconnectsCancelsItsGeneration()
    {
        long cancelledBefore = Engine.GetStatistics().CancelledRequests;
        // Slow the steps down so that the generation cannot finish before the disconnect reaches the server.
        Action<GptJx.Serving.EngineStep> slow = _ => Thread.Sleep(20);
        Engine.StepCompleted += slow;
        try
        {
            using (var request = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions")
            {
                Content = new StringContent("{\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a long story\"}],\"max_tokens\":200,\"stream\":true}", Encoding.UTF8, "application/json"),
            })
            using (var response = await Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead))
            {
                using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
                Assert.That(await reader.ReadLineAsync(), Does.StartWith("data: "));
            } // the connection is dropped here, mid-stream
            await WaitUntil(() => Engine.GetStatistics().CancelledRequests > cancelledBefore, "the server cancels the generation");
            await WaitUntil(() => Engine.ActiveSequences == 0, "its slot is freed");
        }
        finally
        {
            Engine.StepCompleted -= slow;
        }
    }

    [Test]
    public async Task ModelsHealthAndMetrics()
    {
        using var models = JsonDocument.Parse(await Http.GetStringAsync("v1/models"));
        Assert.That(models.RootElement.GetProperty("object").GetString(), Is.EqualTo("list"));
        Assert.That(models.RootElement.GetProperty("data")[0].GetProperty("id").GetString(), Is.EqualTo("gpt-jx"));

        using var health = await Http.GetAsync("health");
        Assert.That(health.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(JsonDocument.Parse(await health.Content.ReadAsStringAsync()).RootElement.GetProperty("status").GetString(), Is.EqualTo("ok"));

        using (var streamed = await Http.PostAsync("v1/completions", new StringContent(Completion("metrics", 3, ",\"stream\":true"), Encoding.UTF8, "application/json")))
            Assert.That(await streamed.Content.ReadAsStringAsync(), Does.EndWith("data: [DONE]\n\n"));
        using var metrics = await Http.GetAsync("metrics");
        Assert.That(metrics.Content.Headers.ContentType!.MediaType, Is.EqualTo("text/plain"));
        var text = await metrics.Content.ReadAsStringAsync();
        foreach (var name in (string[])["gptjx_requests_total{", "gptjx_queue_depth ", "gptjx_active_sequences ", "gptjx_batch_size_bucket{le=\"1\"}",
            "gptjx_time_to_first_token_seconds_count ", "gptjx_inter_token_latency_seconds_bucket{le=\"+Inf\"}", "gptjx_completion_tokens_total "])
            Assert.That(text, Does.Contain(name));
        // Every sample line is "name{labels} value" or "name value".
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => !l.StartsWith('#')))
            Assert.That(line, Does.Match(@"^[a-z_]+(\{[^}]*\})? [0-9.eE+-]+$"), line);
    }
}
