using System.Net;
using System.Text;
using System.Text.Json;
using GptJx.Backends.Cpu;
using GptJx.Generation;
using GptJx.Server;
using GptJx.Serving;
using GptJx.Tests.Generation;

namespace GptJxServerTests;

/// <summary>finish_reason "stop" from the end-of-text token, on a model that ends text early (see EndOfTextModel).</summary>
public class EndOfTextHttpTests
{
    private string _directory = null!;
    private InferenceEngine _engine = null!;
    private GptJxServer _server = null!;
    private HttpClient _http = null!;

    [OneTimeSetUp]
    public async Task Start()
    {
        _directory = Directory.CreateTempSubdirectory("gptjx-eot-").FullName;
        EndOfTextModel.Write(_directory);
        _engine = InferenceEngine.Load(_directory, new CpuBackend());
        Uri uri;
        (_server, uri) = await ServerFixture.StartServer(_engine);
        _http = new HttpClient { BaseAddress = uri };
    }

    [OneTimeTearDown]
    public async Task Stop()
    {
        _http.Dispose();
        await _server.DisposeAsync();
        _engine.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    private async Task<JsonElement> Post(string path, string json)
    {
        using var response = await _http.PostAsync(path, new StringContent(json, Encoding.UTF8, "application/json"));
        string text = await response.Content.ReadAsStringAsync();
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), text);
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    [Test]
    public async Task GreedyCompletionEndsAtOnceWithNoText()
    {
        var body = await Post("v1/completions", "{\"prompt\":\"Once upon a time\",\"max_tokens\":10,\"temperature\":0}");
        var choice = body.GetProperty("choices")[0];
        Assert.That(choice.GetProperty("finish_reason").GetString(), Is.EqualTo("stop"));
        Assert.That(choice.GetProperty("text").GetString(), Is.Empty);
        Assert.That(body.GetProperty("usage").GetProperty("completion_tokens").GetInt32(), Is.EqualTo(1), "the end-of-text token counts as generated");
    }

    [Test]
    public async Task SampledCompletionEndsAtTheEndOfTextToken()
    {
        var body = await Post("v1/completions", "{\"prompt\":\"Once upon a time\",\"max_tokens\":40,\"temperature\":1,\"seed\":2}");
        var choice = body.GetProperty("choices")[0];
        int tokens = body.GetProperty("usage").GetProperty("completion_tokens").GetInt32();
        Assert.That(choice.GetProperty("finish_reason").GetString(), Is.EqualTo("stop"));
        Assert.That(tokens, Is.InRange(2, 39), "with this seed, some tokens come before end-of-text");

        var alone = TextGenerator.Generate(_engine.Model, _engine.Model.Encode("Once upon a time"), new GenerationOptions { MaxNewTokens = 40, Temperature = 1f, Seed = 2 }).ToList();
        Assert.That(alone[^1].Id, Is.EqualTo(EndOfTextModel.EndOfText));
        Assert.That(tokens, Is.EqualTo(alone.Count));
        Assert.That(choice.GetProperty("text").GetString(), Is.EqualTo(_engine.Model.Tokenizer.Decode(alone.SkipLast(1).Select(t => t.Id).ToArray())));
    }

    [Test]
    public async Task StreamedChatEndsWithStop()
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions")
        {
            Content = new StringContent("{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":10,\"temperature\":0,\"stream\":true}", Encoding.UTF8, "application/json"),
        };
        using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        var events = (await response.Content.ReadAsStringAsync()).Split("\n\n", StringSplitOptions.RemoveEmptyEntries)
            .Select(e => e["data: ".Length..]).ToList();
        Assert.That(events[^1], Is.EqualTo("[DONE]"));
        var choices = events.SkipLast(1).Select(e => JsonDocument.Parse(e).RootElement.GetProperty("choices")[0]).ToList();
        Assert.That(choices[^1].GetProperty("finish_reason").GetString(), Is.EqualTo("stop"));
        Assert.That(choices.SkipLast(1).Select(c => c.GetProperty("finish_reason").ValueKind), Is.All.EqualTo(JsonValueKind.Null));
        Assert.That(string.Concat(choices.Select(c => c.GetProperty("delta").TryGetProperty("content", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : "")), Is.Empty);
    }
}
