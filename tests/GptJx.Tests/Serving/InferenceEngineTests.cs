using System.Collections.Concurrent;
using GptJx.Generation;
using GptJx.Serving;
using GptJx.Tests.Generation;

namespace GptJx.Tests.Serving;

public class InferenceEngineTests
{
    private GptJxModel _model = null!;

    [OneTimeSetUp]
    public void Load() => _model = TestModels.LoadSmall();

    [OneTimeTearDown]
    public void Unload() => _model.Dispose();

    private static readonly string[] Prompts =
    [
        "The quick brown fox",
        "Once upon a time, in a land far away, there lived a",
        "1, 2, 3,",
        "",
        "Hello",
        "In the beginning the Universe was created. This has made a lot of people very angry",
    ];

    private static GenerationOptions Options(int i) => (i % 3) switch
    {
        0 => new GenerationOptions { MaxNewTokens = 20, StopAtEndOfText = false },
        1 => new GenerationOptions { MaxNewTokens = 16, Temperature = 0.9f, TopK = 40, Seed = (ulong)(100 + i), StopAtEndOfText = false },
        _ => new GenerationOptions { MaxNewTokens = 12, Temperature = 1.2f, TopP = 0.9f, RepetitionPenalty = 1.3f, Seed = 7 },
    };

    /// <summary>What the single-sequence generator produces: the reference for the engine.</summary>
    private int[] Alone(string prompt, GenerationOptions options) =>
        TextGenerator.Generate(_model, _model.Encode(prompt), options).Select(t => t.Id).ToArray();

    private static async Task<(int[] Ids, string Text, FinishReason Finish)> Collect(GenerationStream stream)
    {
        var result = await stream.ReadToEndAsync();
        return (result.Tokens.Select(t => t.Id).ToArray(), result.Text, result.Finish);
    }

    private static async Task WaitUntil(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) Assert.Fail($"timed out waiting for: {what}");
            await Task.Delay(5);
        }
    }

    [Test]
    public async Task BatchedOutputEqualsTheSingleSequenceGenerator()
    {
        using var engine = new InferenceEngine(_model, new EngineOptions { MaxBatchSize = 4, PrefillChunk = 8 });
        var steps = new ConcurrentBag<EngineStep>();
        engine.StepCompleted += steps.Add;
        // Every prompt twice with its options, all at once: more requests than slots, mixed prefill and decode.
        var requests = Enumerable.Range(0, 12).Select(i => (Prompt: Prompts[i % Prompts.Length], Options: Options(i))).ToArray();
        var streams = requests.Select(r => engine.Submit(GenerationRequest.FromText(r.Prompt, r.Options))).ToArray();
        var results = await Task.WhenAll(streams.Select(Collect));
        for (int i = 0; i < requests.Length; i++)
        {
            var (prompt, options) = requests[i];
            // Batching changes nothing: the same ids as generating alone (seeded sampling included).
            Assert.That(results[i].Ids, Is.EqualTo(Alone(prompt, options)), $"request {i} ('{prompt}')");
            // And, computed without the generator's sampler or text stream: greedy ids are the argmax
            // of a full recompute, and the text is the decoding of the ids (less an ending end-of-text).
            if (options.Temperature == 0)
                Assert.That(results[i].Ids, Is.EqualTo(Expectations.GreedyByFullRecompute(_model, _model.Encode(prompt), options.MaxNewTokens, options.StopAtEndOfText)), $"request {i} greedy");
            bool endedByEndOfText = results[i].Finish == FinishReason.Stop;
            Assert.That(results[i].Text, Is.EqualTo(Expectations.TextOf(_model, results[i].Ids, endedByEndOfText)), $"request {i} text");
        }
        Assert.That(steps.Max(s => s.DecodeRows), Is.EqualTo(4), "decode steps ran batched");
        Assert.That(steps.Any(s => s.DecodeRows > 0 && s.PrefillRows > 0), "prefill chunks share steps with decode rows");
        Assert.That(engine.ActiveSequences, Is.Zero);
        Assert.That(engine.QueuedRequests, Is.Zero);
    }

    [Test]
    public async Task DecodeStepsAreBatchedSoStepsAreFarFewerThanTokens()
    {
        using var engine = new InferenceEngine(_model, new EngineOptions { MaxBatchSize = 8 });
        var options = new GenerationOptions { MaxNewTokens = 24, StopAtEndOfText = false };
        var streams = Enumerable.Range(0, 8).Select(i => engine.Submit(GenerationRequest.FromText($"Request number {i} says", options))).ToArray();
        await Task.WhenAll(streams.Select(s => s.ReadToEndAsync()));
        var stats = engine.GetStatistics();
        Assert.That(stats.GeneratedTokens, Is.EqualTo(8 * 24));
        Assert.That(stats.Steps, Is.LessThan(stats.GeneratedTokens / 4), "eight sequences share their decode steps");
    }

    [Test]
    public async Task ARequestJoinsMidGenerationAndGetsTheSameTokens()
    {
        using var engine = new InferenceEngine(_model, new EngineOptions { MaxBatchSize = 4 });
        var steps = new ConcurrentQueue<EngineStep>();
        engine.StepCompleted += step => { steps.Enqueue(step); Thread.Sleep(2); };
        var longOptions = new GenerationOptions { MaxNewTokens = 40, StopAtEndOfText = false };
        var first = engine.Submit(GenerationRequest.FromText(Prompts[0], longOptions));
        await using var reader = first.GetAsyncEnumerator();
        for (int i = 0; i < 5; i++) Assert.That(await reader.MoveNextAsync());

        var joinOptions = Options(1);
        var second = await Collect(engine.Submit(GenerationRequest.FromText(Prompts[1], joinOptions)));
        var firstIds = new List<int>();
        while (await reader.MoveNextAsync()) firstIds.Add(reader.Current.Id);

        Assert.That(second.Ids, Is.EqualTo(Alone(Prompts[1], joinOptions)));
        Assert.That(Alone(Prompts[0], longOptions).Skip(5), Is.EqualTo(firstIds));
        Assert.That(steps.Any(s => s.Sequences == 2 && s.DecodeRows == 1 && s.PrefillRows > 0), "the newcomer prefilled beside the running decode");
        Assert.That(steps.Any(s => s.DecodeRows == 2), "then both decoded in one step");
    }

    [Test]
    public async Task AFinishedSequenceLeavesAtOnce()
    {
        using var engine = new InferenceEngine(_model, new EngineOptions { MaxBatchSize = 4 });
        var steps = new ConcurrentQueue<EngineStep>();
        engine.StepCompleted += steps.Enqueue;
        var shortOne = engine.Submit(GenerationRequest.FromText("Hi", new GenerationOptions { MaxNewTokens = 2, StopAtEndOfText = false }));
        var longOne = engine.Submit(GenerationRequest.FromText("Hello there", new GenerationOptions { MaxNewTokens = 30, StopAtEndOfText = false }));
        var shortResult = await Collect(shortOne);
        Assert.That(shortResult.Ids, Has.Length.EqualTo(2));
        Assert.That(shortResult.Finish, Is.EqualTo(FinishReason.Length));
        await Collect(longOne);
        var list = steps.ToList();
        // After the short one's two tokens, the long one decodes alone: steps of one sequence.
        Assert.That(list.Count(s => s.Sequences == 1 && s.DecodeRows == 1), Is.GreaterThanOrEqualTo(30 - 3));
        Assert.That(engine.ActiveSequences, Is.Zero);
    }

    [Test]
    public void AFullQueueRefusesClearly()
    {
        using var engine = new InferenceEngine(_model, new EngineOptions { MaxBatchSize = 1, MaxQueueLength = 1 });
        using var gate = new ManualResetEventSlim(false);
        engine.StepCompleted += _ => gate.Wait(TimeSpan.FromSeconds(20));
        var options = new GenerationOptions { MaxNewTokens = 5 };
        using var running = engine.Submit(GenerationRequest.FromText("a", options));
        using var waiting = engine.Submit(GenerationRequest.FromText("b", options));
        var e = Assert.Throws<EngineOverloadedException>(() => engine.Submit(GenerationRequest.FromText("c", options)));
        Assert.That(e!.Message, Does.Contain("at capacity"));
        Assert.That(engine.GetStatistics().RejectedRequests, Is.EqualTo(1));
        gate.Set();
    }

    [Test]
    public async Task ATimeoutEndsTheRequestAndFreesItsSlot()
    {
        using var engine = new InferenceEngine(_model, new EngineOptions { MaxBatchSize = 2 });
        engine.StepCompleted += _ => Thread.Sleep(10);
        var request = new GenerationRequest { Prompt = "Slow", Options = new GenerationOptions { MaxNewTokens = 50, StopAtEndOfText = false }, Timeout = TimeSpan.FromMilliseconds(100) };
        var e = Assert.ThrowsAsync<TimeoutException>(() => engine.CompleteAsync(request));
        Assert.That(e!.Message, Does.Contain("timeout"));
        await WaitUntil(() => engine.ActiveSequences == 0, "the slot is freed");
        Assert.That(engine.GetStatistics().TimedOutRequests, Is.EqualTo(1));
        var after = await engine.CompleteAsync(GenerationRequest.FromText("Fast", new GenerationOptions { MaxNewTokens = 3, StopAtEndOfText = false }));
        Assert.That(after.CompletionTokens, Is.EqualTo(3));
    }

    [Test]
    public async Task CancellationMidStreamAndInTheQueueFreesEverything()
    {
        using var engine = new InferenceEngine(_model, new EngineOptions { MaxBatchSize = 1, MaxQueueLength = 4 });
        engine.StepCompleted += _ => Thread.Sleep(2);
        var options = new GenerationOptions { MaxNewTokens = 50, StopAtEndOfText = false };
        using var cancelRunning = new CancellationTokenSource();
        using var cancelQueued = new CancellationTokenSource();
        var running = engine.Submit(GenerationRequest.FromText("one", options), cancelRunning.Token);
        await WaitUntil(() => engine.ActiveSequences == 1, "the first request runs");
        var queued = engine.Submit(GenerationRequest.FromText("two", options), cancelQueued.Token);
        Assert.That(engine.QueuedRequests, Is.EqualTo(1));
        cancelQueued.Cancel();
        Assert.That(engine.QueuedRequests, Is.Zero, "a cancelled request leaves the queue at once");
        Assert.CatchAsync<OperationCanceledException>(() => queued.ReadToEndAsync());

        int seen = 0;
        Assert.CatchAsync<OperationCanceledException>(async () =>
        {
            await foreach (var _ in running.WithCancellation(cancelRunning.Token))
                if (++seen == 3) cancelRunning.Cancel();
        });
        Assert.That(seen, Is.EqualTo(3));
        await WaitUntil(() => engine.ActiveSequences == 0, "the cancelled sequence's slot is freed");
        var stats = engine.GetStatistics();
        Assert.That(stats.CancelledRequests, Is.EqualTo(2));

        // Leaving the loop early cancels too.
        await foreach (var _ in engine.GenerateAsync(GenerationRequest.FromText("three", options))) break;
        await WaitUntil(() => engine.ActiveSequences == 0, "an abandoned stream's slot is freed");
        Assert.That(engine.GetStatistics().CancelledRequests, Is.EqualTo(3));
    }

    [Test]
    public async Task DisposeEndsRequestsAndReleasesTheModelWhenOwned()
    {
        var engine = InferenceEngine.Load(TestModels.SmallModelDirectory, new GptJx.Backends.Cpu.CpuBackend(), new EngineOptions { MaxBatchSize = 1, MaxQueueLength = 2 });
        using var gate = new ManualResetEventSlim(false);
        engine.StepCompleted += _ => gate.Wait(TimeSpan.FromSeconds(20));
        var options = new GenerationOptions { MaxNewTokens = 50, StopAtEndOfText = false };
        var running = engine.Submit(GenerationRequest.FromText("one", options));
        var queued = engine.Submit(GenerationRequest.FromText("two", options));
        await WaitUntil(() => engine.ActiveSequences == 1, "the first request runs");
        var disposing = Task.Run(engine.Dispose);
        gate.Set();
        await disposing;
        Assert.ThrowsAsync<ObjectDisposedException>(() => running.ReadToEndAsync());
        Assert.ThrowsAsync<ObjectDisposedException>(() => queued.ReadToEndAsync());
        Assert.Throws<ObjectDisposedException>(() => engine.Submit(GenerationRequest.FromText("three", options)));
        Assert.Throws<ObjectDisposedException>(() => engine.Model.CreateSequence(4), "the owned model is disposed");
        engine.Dispose(); // twice is fine
    }

    [Test]
    public async Task DisposingAnEngineLeavesASharedModelUsable()
    {
        var engine = new InferenceEngine(_model, new EngineOptions { MaxBatchSize = 2 });
        await engine.CompleteAsync(GenerationRequest.FromText("x", new GenerationOptions { MaxNewTokens = 2 }));
        engine.Dispose();
        using var sequence = _model.CreateSequence(4);
        Assert.That(sequence.Capacity, Is.EqualTo(4));
    }

    [Test]
    public async Task LogprobsAreTheLogSoftmaxOfTheStep()
    {
        using var engine = new InferenceEngine(_model);
        var result = await engine.CompleteAsync(new GenerationRequest
        {
            Prompt = "The quick brown fox",
            Options = new GenerationOptions { MaxNewTokens = 4, StopAtEndOfText = false },
            TopLogprobs = 5,
        });
        var expected = Alone("The quick brown fox", new GenerationOptions { MaxNewTokens = 4, StopAtEndOfText = false });
        Assert.That(result.Tokens.Select(t => t.Id), Is.EqualTo(expected));

        using var sequence = _model.CreateSequence(16);
        var logits = new float[_model.VocabularySize];
        sequence.Append(_model.Encode("The quick brown fox"), logits);
        var first = result.Tokens[0].Logprobs!;
        Assert.That(first.Logprob, Is.EqualTo(-Expectations.NegativeLogSoftmax(logits, expected[0])).Within(1e-4));
        Assert.That(first.Top, Has.Count.EqualTo(5));
        Assert.That(first.Top[0].Id, Is.EqualTo(expected[0]), "greedy picks the most likely token");
        Assert.That(first.Top.Select(t => t.Logprob), Is.Ordered.Descending);
        Assert.That(first.Top.Sum(t => Math.Exp(t.Logprob)), Is.LessThanOrEqualTo(1.0001));
        Assert.That(result.Tokens.All(t => t.Logprobs is not null));
    }

    [Test]
    public async Task EdgeCasesAndBadRequests()
    {
        using var engine = new InferenceEngine(_model, new EngineOptions { MaxSequenceLength = 32 });
        var none = await engine.CompleteAsync(GenerationRequest.FromText("x", new GenerationOptions { MaxNewTokens = 0 }));
        Assert.That(none.Tokens, Is.Empty);
        Assert.That(none.Finish, Is.EqualTo(FinishReason.Length));

        // The slot's positions bound prompt plus generation.
        var capped = await engine.CompleteAsync(new GenerationRequest { PromptIds = Enumerable.Repeat(464, 30).ToArray(), Options = new GenerationOptions { MaxNewTokens = 10, StopAtEndOfText = false } });
        Assert.That(capped.CompletionTokens, Is.EqualTo(2));
        Assert.That(capped.Finish, Is.EqualTo(FinishReason.Length));

        var tooLong = Assert.Throws<InvalidArgumentException>(() => engine.Submit(new GenerationRequest { PromptIds = Enumerable.Repeat(464, 32).ToArray() }));
        Assert.That(tooLong!.Code, Is.EqualTo(ArgumentErrorCode.ContextLengthExceeded));
        Assert.That(tooLong.Message, Is.EqualTo("prompt of 32 tokens leaves no room to generate: a request holds at most 32 tokens, prompt and generated"));
        var badId = Assert.Throws<InvalidArgumentException>(() => engine.Submit(new GenerationRequest { PromptIds = [50257] }));
        Assert.That(badId!.Message, Is.EqualTo("prompt token id 50257 is outside the model's vocabulary of 50257"));
        Assert.That(Assert.Throws<InvalidArgumentException>(() => engine.Submit(new GenerationRequest { Prompt = "x", TopLogprobs = 21 }))!.Message,
            Is.EqualTo("TopLogprobs must be 0..20 (got 21)"));
        Assert.That(Assert.Throws<InvalidArgumentException>(() => engine.Submit(GenerationRequest.FromText("x", new GenerationOptions { Temperature = -1 })))!.ParamName,
            Is.EqualTo(nameof(GenerationOptions.Temperature)));
        Assert.That(Assert.Throws<InvalidArgumentException>(() => new InferenceEngine(_model, new EngineOptions { MaxBatchSize = 0 }))!.Message,
            Is.EqualTo("MaxBatchSize must be 1..1024 (got 0)"));
        Assert.That(engine.ActiveSequences, Is.Zero);
    }
}

public class InferenceEngineOnARecordingBackendTests
{
    [Test]
    public async Task BatchedStepsRecordedAndPickedOnTheBackendGiveTheSameTokensAsAlone()
    {
        var backend = new GptJx.Tests.Model.EmulatedGraphBackend();
        using var model = GptJxModel.Load(TestModels.SmallModelDirectory, backend);
        using var reference = TestModels.LoadSmall();
        using var engine = new InferenceEngine(model, new EngineOptions { MaxBatchSize = 3, PrefillChunk = 4 });
        var requests = new (string Prompt, GenerationOptions Options)[]
        {
            ("The quick brown fox", new GenerationOptions { MaxNewTokens = 14, StopAtEndOfText = false }),
            ("Once upon a time", new GenerationOptions { MaxNewTokens = 14, Temperature = 1.1f, TopK = 30, TopP = 0.95f, Seed = 5, StopAtEndOfText = false }),
            ("1, 2, 3,", new GenerationOptions { MaxNewTokens = 14, Temperature = 0.7f, Seed = 8, StopAtEndOfText = false }),
        };
        var streams = requests.Select(r => engine.Submit(GenerationRequest.FromText(r.Prompt, r.Options))).ToArray();
        var results = await Task.WhenAll(streams.Select(s => s.ReadToEndAsync()));
        for (int i = 0; i < requests.Length; i++)
        {
            var alone = TextGenerator.Generate(reference, reference.Encode(requests[i].Prompt), requests[i].Options).Select(t => t.Id);
            Assert.That(results[i].Tokens.Select(t => t.Id), Is.EqualTo(alone), $"request {i}");
        }
        Assert.That(backend.Picks, Is.GreaterThan(0), "tokens were picked on the backend");
        Assert.That(backend.Replays, Is.GreaterThan(0), "batched decode steps were replayed");
    }
}
