using System.Net;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using GptJx.Backends.Cpu;
using GptJx.Model;
using GptJx.Serving;
using GptJx.Tensors;
using GptJx.TestModels;
using static GptJxServerTests.ServerFixture;

namespace GptJxServerTests;

/// <summary>Requests that used to give HTTP 500 with an empty body or a cut stream: each is now an error JSON naming the field.</summary>
public class HostileRequestTests
{
    private static async Task<(HttpStatusCode Status, JsonElement Body)> PostBytes(string path, byte[] body, HttpClient? http = null)
    {
        using var content = new ByteArrayContent(body);
        content.Headers.ContentType = new("application/json");
        using var response = await (http ?? Http).PostAsync(path, content);
        var text = await response.Content.ReadAsStringAsync();
        Assert.That(text, Is.Not.Empty, $"{(int)response.StatusCode} with an empty body");
        return (response.StatusCode, JsonDocument.Parse(text).RootElement.Clone());
    }

    private static Task<(HttpStatusCode Status, JsonElement Body)> Post(string path, string json, HttpClient? http = null) =>
        PostBytes(path, Encoding.UTF8.GetBytes(json), http);

    private static void AssertError(JsonElement body, string? param, string code, string message)
    {
        var error = body.GetProperty("error");
        Assert.That(error.GetProperty("param").ValueKind == JsonValueKind.Null ? null : error.GetProperty("param").GetString(), Is.EqualTo(param));
        Assert.That(error.GetProperty("code").GetString(), Is.EqualTo(code));
        Assert.That(error.GetProperty("message").GetString(), Is.EqualTo(message));
    }

    private const string NotText = "is not valid text: it holds invalid UTF-8 or an unpaired UTF-16 surrogate escape";

    // An escaped lone surrogate ("\ud800") and a raw byte that is not UTF-8 (0xFF), in every text field.
    [TestCase("v1/completions", "{\"prompt\": \"a\\ud800b\"}", "prompt")]
    [TestCase("v1/completions", "{\"prompt\": [\"\\udc00\"]}", "prompt[0]")]
    [TestCase("v1/completions", "{\"prompt\": \"x\", \"stop\": [\"ok\", \"\\ud834\"]}", "stop[1]")]
    [TestCase("v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"\\ud800\"}]}", "messages[0].content")]
    [TestCase("v1/chat/completions", "{\"messages\": [{\"role\": \"\\ud800\", \"content\": \"hi\"}]}", "messages[0].role")]
    [TestCase("v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"\\ud800\"}]}]}", "messages[0].content[0].text")]
    [TestCase("v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"stop\": \"\\udfff\"}", "stop")]
    public async Task TextThatIsNotUnicodeIsA400NamingTheField(string path, string json, string field)
    {
        var (status, body) = await Post(path, json);
        Assert.That(status, Is.EqualTo(HttpStatusCode.BadRequest));
        AssertError(body, field, "invalid_encoding", $"{field} {NotText}");

        // The same field holding a raw 0xFF byte instead.
        int at = json.IndexOf("\\u", StringComparison.Ordinal);
        byte[] raw = [.. Encoding.UTF8.GetBytes(json[..at]), 0xFF, .. Encoding.UTF8.GetBytes(json[(at + 6)..])];
        (status, body) = await PostBytes(path, raw);
        Assert.That(status, Is.EqualTo(HttpStatusCode.BadRequest));
        AssertError(body, field, "invalid_encoding", $"{field} {NotText}");
    }

    [Test]
    public async Task APropertyNameThatIsNotTextIsA400()
    {
        var (status, body) = await Post("v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"\\ud800\": 1}]}");
        Assert.That(status, Is.EqualTo(HttpStatusCode.BadRequest));
        AssertError(body, "messages[0]", "invalid_encoding", $"a property name in messages[0] {NotText}");
    }

    [TestCase("[{\"type\": 5, \"text\": \"hi\"}]")]
    [TestCase("[{\"type\": [\"text\"], \"text\": \"hi\"}]")]
    [TestCase("[{\"type\": \"text\", \"text\": 5}]")]
    [TestCase("[\"hi\"]")]
    public async Task AContentPartOfTheWrongTypeIsA400(string content)
    {
        var (status, body) = await Post("v1/chat/completions", $"{{\"messages\": [{{\"role\": \"user\", \"content\": {content}}}]}}");
        Assert.That(status, Is.EqualTo(HttpStatusCode.BadRequest));
        AssertError(body, "messages[0].content", "unsupported_value",
            "messages[0].content: only text parts ({\"type\": \"text\", \"text\": ...}) are supported");
    }

    [Test]
    public async Task AChatPromptLongerThanTheContextNamesTheMessages()
    {
        var words = string.Concat(Enumerable.Repeat(" word", Shape.ContextLength));
        var (status, body) = await Post("v1/chat/completions", $"{{\"messages\": [{{\"role\": \"user\", \"content\": \"{words}\"}}]}}");
        Assert.That(status, Is.EqualTo(HttpStatusCode.BadRequest));
        var error = body.GetProperty("error");
        Assert.That(error.GetProperty("param").GetString(), Is.EqualTo("messages"));
        Assert.That(error.GetProperty("code").GetString(), Is.EqualTo("context_length_exceeded"));
        Assert.That(error.GetProperty("message").GetString(), Does.StartWith("the prompt of ").And.Contain($"a request holds at most {Shape.ContextLength} tokens"));
    }

    [Test]
    public async Task MaxTokensNearTheIntegerLimitGeneratesToTheEndOfTheContext()
    {
        // prompt + max_tokens used to overflow, and the server answered with one token.
        var ids = string.Join(",", Enumerable.Repeat(464, Shape.ContextLength - 5));
        var (status, body) = await Post("v1/completions", $"{{\"prompt\": [{ids}], \"max_tokens\": 2147483647, \"temperature\": 0.9, \"seed\": 1, \"ignore_eos\": true}}");
        Assert.That(status, Is.EqualTo(HttpStatusCode.OK), body.ToString());
        var usage = body.GetProperty("usage");
        int completion = usage.GetProperty("completion_tokens").GetInt32();
        Assert.That(completion, Is.GreaterThan(1));
        if (body.GetProperty("choices")[0].GetProperty("finish_reason").GetString() == "length")
            Assert.That(completion, Is.EqualTo(5), "the slot's remaining positions");
    }

    // ---- logits that turn non-finite while generating ----------------------------------

    /// <summary>A model whose weights are finite (the largest fp32 values) but whose activations overflow: loading succeeds, every step's logits are inf or NaN.</summary>
    private static string WriteOverflowingModel(string directory)
    {
        var shape = ModelConfig.Tiny with { Layers = 1, Width = 16, Heads = 2, FeedForwardWidth = 20, ContextLength = 64 };
        var slopes = Alibi.Slopes(shape.Heads);
        CheckpointWriter.Write(directory, CheckpointFormat.SafeTensors, TestModel.Tensors(shape, DType.F32), (spec, bytes) =>
        {
            var values = MemoryMarshal.Cast<byte, float>(bytes);
            if (spec.Name.EndsWith("slopes", StringComparison.Ordinal)) slopes.CopyTo(values);
            else values.Fill(3e38f);
        });
        File.WriteAllText(Path.Combine(directory, "config.json"), TestModel.Config(shape, DType.F32).ToJsonString());
        return directory;
    }

    [Test]
    public async Task NonFiniteLogitsAreAnErrorJsonNeverA500OrACutStream()
    {
        var directory = WriteOverflowingModel(Directory.CreateTempSubdirectory("gptjx-overflow-").FullName);
        try
        {
            using var engine = InferenceEngine.Load(directory, new CpuBackend(), new EngineOptions { MaxBatchSize = 2 });
            var (server, uri) = await StartServer(engine);
            await using var _ = server;
            using var http = new HttpClient { BaseAddress = uri };
            const string expected = "the model's logits are not finite (token id ";

            foreach (var (path, json) in new[] { ("v1/completions", "{\"prompt\": \"Hello\"}"), ("v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"Hello\"}]}") })
            {
                var (status, body) = await Post(path, json, http);
                Assert.That((int)status, Is.EqualTo(422), path);
                var error = body.GetProperty("error");
                Assert.That(error.GetProperty("type").GetString(), Is.EqualTo("model_error"));
                Assert.That(error.GetProperty("code").GetString(), Is.EqualTo("non_finite_logits"));
                Assert.That(error.GetProperty("message").GetString(), Does.StartWith(expected));

                // Streamed: the stream has started (200), so the error is its last event before [DONE].
                using var response = await http.PostAsync(path, new StringContent(json.Insert(1, "\"stream\": true, "), Encoding.UTF8, "application/json"));
                Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
                string text = await response.Content.ReadAsStringAsync();
                var events = text.Split("\n\n", StringSplitOptions.RemoveEmptyEntries);
                Assert.That(events[^1], Is.EqualTo("data: [DONE]"), text);
                using var last = JsonDocument.Parse(events[^2]["data: ".Length..]);
                Assert.That(last.RootElement.GetProperty("error").GetProperty("code").GetString(), Is.EqualTo("non_finite_logits"));
                Assert.That(last.RootElement.GetProperty("error").GetProperty("message").GetString(), Does.StartWith(expected));
            }
            Assert.That(server.Metrics.Render(), Does.Contain("gptjx_requests_total{endpoint=\"/v1/completions\",status=\"422\"} 2"));
        }
        finally
        {
            Directory.Delete(directory, true);
        }
    }
}
