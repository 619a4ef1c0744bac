using GptJx.Generation;
using GptJx.Serving;

namespace GptJx.Tests.Serving;

/// <summary>Integer limits of generation: sums that used to overflow now saturate at the context.</summary>
public class EngineLimitTests
{
    private GptJxModel _model = null!;

    [OneTimeSetUp]
    public void Load() => _model = TestModels.LoadSmall();

    [OneTimeTearDown]
    public void Unload() => _model.Dispose();

    private static readonly GenerationOptions Unlimited = new() { MaxNewTokens = int.MaxValue, StopAtEndOfText = false, Temperature = 0.8f, Seed = 2 };

    [Test]
    public async Task MaxTokensNearTheIntegerLimitFillsTheSlot()
    {
        using var engine = new InferenceEngine(_model, new EngineOptions { MaxBatchSize = 2, MaxSequenceLength = 32 });
        var result = await engine.CompleteAsync(new GenerationRequest { PromptIds = Enumerable.Repeat(464, 20).ToArray(), Options = Unlimited });
        Assert.That(result.CompletionTokens, Is.EqualTo(12), "20 prompt tokens leave 12 of the slot's 32 positions");
        Assert.That(result.Finish, Is.EqualTo(FinishReason.Length));
    }

    [Test]
    public void MaxNewTokensNearTheIntegerLimitFillsTheContext()
    {
        var tokens = TextGenerator.Generate(_model, Enumerable.Repeat(464, 40).ToArray(), Unlimited).ToList();
        Assert.That(tokens, Has.Count.EqualTo(24), "40 prompt tokens leave 24 of the 64-token context");
    }

    [Test]
    public void AQueueAsLongAsAnIntegerAllowsStillAcceptsRequests()
    {
        using var engine = new InferenceEngine(_model, new EngineOptions { MaxBatchSize = 1, MaxQueueLength = int.MaxValue });
        using var stream = engine.Submit(GenerationRequest.FromText("x", new GenerationOptions { MaxNewTokens = 1 }));
        Assert.That(stream, Is.Not.Null, "the queue's room (queue + batch - active) no longer overflows to a refusal");
    }

    [TestCase(0, "must be 1..1024 (got 0)")]
    [TestCase(100_000, "must be 1..1024 (got 100000)")]
    public void BatchSizeHasAStatedLimit(int batch, string reason)
    {
        var e = Assert.Throws<InvalidArgumentException>(() => new InferenceEngine(_model, new EngineOptions { MaxBatchSize = batch }));
        Assert.That(e!.ParamName, Is.EqualTo(nameof(EngineOptions.MaxBatchSize)));
        Assert.That(e.Reason, Is.EqualTo(reason));
    }

    [Test]
    public void PrefillChunkHasAStatedLimitAndLongerThanTheSlotIsHarmless()
    {
        var e = Assert.Throws<InvalidArgumentException>(() => new InferenceEngine(_model, new EngineOptions { PrefillChunk = int.MaxValue }));
        Assert.That(e!.Message, Is.EqualTo("PrefillChunk must be 1..65536 tokens (got 2147483647)"));

        // A chunk of the full limit on a 64-token model allocates scratch for 64 rows, not 65536.
        using var engine = new InferenceEngine(_model, new EngineOptions { MaxBatchSize = 1, PrefillChunk = 65536 });
        var result = engine.CompleteAsync(new GenerationRequest { PromptIds = Enumerable.Repeat(464, 50).ToArray(), Options = new GenerationOptions { MaxNewTokens = 3, StopAtEndOfText = false } }).Result;
        Assert.That(result.CompletionTokens, Is.EqualTo(3));
    }

    [Test]
    public void TimeoutsBeyondTheTimersRangeAreRefused()
    {
        var e = Assert.Throws<InvalidArgumentException>(() => new InferenceEngine(_model, new EngineOptions { RequestTimeout = TimeSpan.FromDays(60) }));
        Assert.That(e!.Message, Is.EqualTo("RequestTimeout must be positive and at most 30 days (got 5184000 s)"));
        using var engine = new InferenceEngine(_model, new EngineOptions { MaxBatchSize = 1 });
        var request = Assert.Throws<InvalidArgumentException>(() => engine.Submit(new GenerationRequest { Prompt = "x", Timeout = TimeSpan.FromDays(100) }));
        Assert.That(request!.ParamName, Is.EqualTo("Timeout"));
    }
}
