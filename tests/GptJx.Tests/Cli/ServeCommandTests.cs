using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using GptJx.Tensors;
using GptJx.TestModels;

namespace GptJx.Tests.Cli;

/// <summary>`gptjx serve` run as a user runs it: its options reach the server.</summary>
public class ServeCommandTests
{
    /// <summary>Starts `gptjx serve`, waits for its "serving ... on URL" line and returns the process and the URL.</summary>
    private static (Process Process, Uri Url) StartServe(params string[] args)
    {
        var process = Process.Start(CliRunner.StartInfo(["serve", .. args]))!;
        process.StandardInput.Close();
        var stderr = new StringBuilder();
        var deadline = DateTime.UtcNow.AddMinutes(2);
        while (DateTime.UtcNow < deadline && process.StandardError.ReadLine() is { } line)
        {
            stderr.AppendLine(line);
            var match = Regex.Match(line, @"^serving .* on (http://[^ ,]+)");
            if (match.Success) return (process, new Uri(match.Groups[1].Value + "/"));
        }
        process.Kill(entireProcessTree: true);
        process.Dispose();
        Assert.Fail($"gptjx serve did not report its address; stderr:\n{stderr}");
        return default;
    }

    [Test]
    public async Task HostModelIdAndTimeoutReachTheServer()
    {
        using var model = new TempDirectory();
        // A 1024-token context, so a request can ask for far more tokens than fit in the timeout.
        TestModel.Write(model.Path, TestModels.Shape with { ContextLength = 1024 }, DType.BF16, CheckpointFormat.SafeTensors, seed: 5);
        var (process, url) = StartServe("--model", model.Path, "--device", "cpu", "--host", "127.0.0.2", "--port", "0", "--model-id", "my-model", "--timeout", "0.01");
        try
        {
            Assert.That(url.Host, Is.EqualTo("127.0.0.2"), "bound where --host says, not on the default 127.0.0.1");
            using var http = new HttpClient { BaseAddress = url, Timeout = TimeSpan.FromMinutes(1) };

            using var models = JsonDocument.Parse(await http.GetStringAsync("v1/models"));
            Assert.That(models.RootElement.GetProperty("data")[0].GetProperty("id").GetString(), Is.EqualTo("my-model"));

            // 1000 greedy tokens (1000 decode steps, each over the 50257-token vocabulary) take far longer than 10 ms.
            using var response = await http.PostAsync("v1/completions",
                new StringContent("{\"prompt\":\"Once upon a time\",\"max_tokens\":1000,\"temperature\":0}", Encoding.UTF8, "application/json"));
            string body = await response.Content.ReadAsStringAsync();
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.GatewayTimeout), body);
            Assert.That(body, Does.Contain("\"code\":\"timeout\"").And.Contain("timeout of 0.01 s"));
        }
        finally
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
            process.Dispose();
        }
    }
}
