using System.ClientModel;
using GptJx.Backends.Cpu;
using GptJx.Server;
using GptJx.Serving;
using GptJx.Model;
using GptJx.Tensors;
using GptJx.TestModels;
using OpenAI;

namespace GptJxServerTests;

/// <summary>A small random model (tiny width, full GPT-2 vocabulary) and a server on a free loopback port, shared by the tests.</summary>
[SetUpFixture]
public sealed class ServerFixture
{
    public static readonly ModelConfig Shape = ModelConfig.Tiny with { Layers = 2, Width = 32, Heads = 4, FeedForwardWidth = 70, ContextLength = 256 };

    public static string ModelDirectory { get; private set; } = null!;
    public static InferenceEngine Engine { get; private set; } = null!;
    public static GptJxServer Server { get; private set; } = null!;
    public static Uri BaseUri { get; private set; } = null!;
    public static HttpClient Http { get; private set; } = null!;

    public const int MaxBatch = 16;

    [OneTimeSetUp]
    public async Task Start()
    {
        ModelDirectory = Path.Combine(Path.GetTempPath(), $"gptjx-server-tests-{Environment.ProcessId}");
        TestModel.Write(ModelDirectory, Shape, DType.BF16, CheckpointFormat.SafeTensors, seed: 11);
        Engine = InferenceEngine.Load(ModelDirectory, new CpuBackend(), new EngineOptions { MaxBatchSize = MaxBatch, MaxQueueLength = 64, PrefillChunk = 64 });
        (Server, BaseUri) = await StartServer(Engine);
        Http = new HttpClient { BaseAddress = BaseUri, Timeout = TimeSpan.FromSeconds(120) };
    }

    [OneTimeTearDown]
    public async Task Stop()
    {
        Http.Dispose();
        await Server.DisposeAsync();
        Engine.Dispose();
        try { Directory.Delete(ModelDirectory, true); } catch (IOException) { }
    }

    public static async Task<(GptJxServer Server, Uri BaseUri)> StartServer(InferenceEngine engine)
    {
        var server = GptJxServer.Create(engine, new GptJxServerOptions { Port = 0 });
        await server.StartAsync();
        var url = server.Urls.Single();
        Assert.That(url, Does.StartWith("http://127.0.0.1:"), "binds to loopback");
        return (server, new Uri(url + "/"));
    }

    /// <summary>The official OpenAI client pointed at <paramref name="baseUri"/> (no retries, so errors show as they are).</summary>
    public static OpenAIClient OpenAi(Uri? baseUri = null) => new(new ApiKeyCredential("unused"), new OpenAIClientOptions
    {
        Endpoint = new Uri(baseUri ?? BaseUri, "v1"),
        RetryPolicy = new System.ClientModel.Primitives.ClientRetryPolicy(0),
        NetworkTimeout = TimeSpan.FromSeconds(120),
    });

    public static async Task WaitUntil(Func<bool> condition, string what, int seconds = 30)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) Assert.Fail($"timed out waiting for: {what}");
            await Task.Delay(10);
        }
    }
}
