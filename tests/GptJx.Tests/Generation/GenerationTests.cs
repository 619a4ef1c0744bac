using GptJx.Generation;

namespace GptJx.Tests.Generation;

public class GenerationTests
{
    private GptJxModel _model = null!;

    [OneTimeSetUp]
    public void Load() => _model = TestModels.LoadSmall();

    [OneTimeTearDown]
    public void Unload() => _model.Dispose();

    private List<GeneratedToken> Run(string prompt, GenerationOptions options) =>
        TextGenerator.Generate(_model, _model.Encode(prompt), options).ToList();

    [Test]
    public void GreedyIsDeterministicAndHonoursMaxNewTokens()
    {
        var a = Run("The quick brown fox", new GenerationOptions { MaxNewTokens = 12, StopAtEndOfText = false });
        var b = Run("The quick brown fox", new GenerationOptions { MaxNewTokens = 12, StopAtEndOfText = false });
        Assert.That(a.Select(t => t.Id), Is.EqualTo(b.Select(t => t.Id)));
        Assert.That(a, Has.Count.EqualTo(12));
        Assert.That(a[^1].Finish, Is.EqualTo(FinishReason.Length));
        Assert.That(a.Take(11).Select(t => t.Finish), Is.All.EqualTo(FinishReason.None));
    }

    [Test]
    public void GreedyEqualsArgmaxOfFullRecomputeAtEveryStep()
    {
        var prompt = _model.Encode("Hello world, this is");
        var produced = TextGenerator.Generate(_model, prompt, new GenerationOptions { MaxNewTokens = 8, StopAtEndOfText = false }).Select(t => t.Id).ToArray();
        Assert.That(produced, Is.EqualTo(Expectations.GreedyByFullRecompute(_model, prompt, 8, stopAtEndOfText: false)));
    }

    [Test]
    public void SameSeedSameTextOtherSeedOtherText()
    {
        var options = new GenerationOptions { MaxNewTokens = 16, Temperature = 1.2f, TopK = 50, TopP = 0.95f, Seed = 11, StopAtEndOfText = false };
        var a = Run("Once upon a time", options).Select(t => t.Id).ToArray();
        var b = Run("Once upon a time", options).Select(t => t.Id).ToArray();
        var c = Run("Once upon a time", options with { Seed = 12 }).Select(t => t.Id).ToArray();
        Assert.That(a, Is.EqualTo(b));
        Assert.That(c, Is.Not.EqualTo(a));
    }

    [Test]
    public void StopSequenceEndsGenerationWithoutEmittingIt()
    {
        var free = Run("A", new GenerationOptions { MaxNewTokens = 20, StopAtEndOfText = false });
        string text = string.Concat(free.Select(t => t.Text));
        Assert.That(text.Length, Is.GreaterThan(6), "20 tokens of the test model give more than 6 characters to cut");
        string stop = text.Substring(3, 3);
        var stopped = Run("A", new GenerationOptions { MaxNewTokens = 20, StopAtEndOfText = false, StopSequences = [stop] });
        string stoppedText = string.Concat(stopped.Select(t => t.Text));
        Assert.That(stoppedText, Is.EqualTo(text[..text.IndexOf(stop, StringComparison.Ordinal)]));
        Assert.That(stopped[^1].Finish, Is.EqualTo(FinishReason.Stop));
    }

    [Test]
    public void StreamedTextEqualsDecodingTheIds()
    {
        var tokens = Run("Streaming: ", new GenerationOptions { MaxNewTokens = 24, Temperature = 1f, Seed = 3, StopAtEndOfText = false });
        Assert.That(string.Concat(tokens.Select(t => t.Text)), Is.EqualTo(_model.Tokenizer.Decode(tokens.Select(t => t.Id).ToArray())));
    }

    [Test]
    public void GenerationStopsAtTheEndOfTheContext()
    {
        var prompt = Enumerable.Repeat(_model.Encode(" a")[0], 60).ToArray();
        var tokens = TextGenerator.Generate(_model, prompt, new GenerationOptions { MaxNewTokens = 100, StopAtEndOfText = false }).ToList();
        Assert.That(tokens, Has.Count.EqualTo(4), "60 prompt tokens leave 4 positions of the 64-token context");
        Assert.That(tokens[^1].Finish, Is.EqualTo(FinishReason.Length));
    }

    [Test]
    public void PromptAsLongAsTheContextIsAClearError()
    {
        var prompt = Enumerable.Repeat(11, 64).ToArray();
        var e = Assert.Throws<InvalidArgumentException>(() => TextGenerator.Generate(_model, prompt, new GenerationOptions()).ToList());
        Assert.That(e!.Code, Is.EqualTo(ArgumentErrorCode.ContextLengthExceeded));
        Assert.That(e.Message, Is.EqualTo("prompt of 64 tokens leaves no room to generate: the model's context is 64 tokens"));
    }

    [Test]
    public void BadSamplingParametersFailBeforeAnyWork()
    {
        var e = Assert.Throws<InvalidArgumentException>(() => TextGenerator.Generate(_model, [1, 2], new GenerationOptions { TopP = 0f }).ToList());
        Assert.That(e!.ParamName, Is.EqualTo("TopP"));
    }

    [Test]
    public async Task StreamingIsCancellable()
    {
        using var cancel = new CancellationTokenSource();
        int received = 0;
        Assert.That(async () =>
        {
            await foreach (var _ in _model.GenerateAsync("Cancel me", new GenerationOptions { MaxNewTokens = 50, StopAtEndOfText = false }, cancel.Token))
                if (++received == 3) cancel.Cancel();
        }, Throws.InstanceOf<OperationCanceledException>());
        Assert.That(received, Is.EqualTo(3));
        // The model is still usable afterwards.
        var after = new List<GeneratedToken>();
        await foreach (var t in _model.GenerateAsync("Again", new GenerationOptions { MaxNewTokens = 2, StopAtEndOfText = false })) after.Add(t);
        Assert.That(after, Has.Count.EqualTo(2));
    }

    [Test]
    public void TokenIdsOutsideTheVocabularyAreRejected()
    {
        using var sequence = _model.CreateSequence(8);
        var e = Assert.Throws<InvalidArgumentException>(() => sequence.Append([1, 50257], new float[_model.VocabularySize]));
        Assert.That(e!.Message, Is.EqualTo("input token id 50257 is outside the model's vocabulary of 50257"));
    }
}
