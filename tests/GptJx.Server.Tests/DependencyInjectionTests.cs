using GptJx.Extensions;
using GptJx.Server;
using GptJx.Serving;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;

namespace GptJxServerTests;

public class DependencyInjectionTests
{
    [Test]
    public async Task AddGptJxRegistersAnEngineAndAChatClientTheContainerDisposes()
    {
        var services = new ServiceCollection();
        services.AddGptJx(ServerFixture.ModelDirectory, new EngineOptions { MaxBatchSize = 2 });
        InferenceEngine engine;
        await using (var provider = services.BuildServiceProvider())
        {
            var client = provider.GetRequiredService<IChatClient>();
            engine = provider.GetRequiredService<InferenceEngine>();
            Assert.That(client.GetService(typeof(InferenceEngine)), Is.SameAs(engine));
            var response = await client.GetResponseAsync("Say something", new ChatOptions { MaxOutputTokens = 3 });
            Assert.That(response.Usage!.OutputTokenCount, Is.EqualTo(3));
            Assert.That(response.FinishReason, Is.EqualTo(ChatFinishReason.Length));
        }
        Assert.Throws<ObjectDisposedException>(() => engine.Submit(GenerationRequest.FromText("x")), "disposing the container disposes the engine");
    }
}
