using GptJx.Backends.Cpu;
using GptJx.Generation;

namespace GptJx.Tests.Generation;

/// <summary>Generation ends at the end-of-text token, which is not part of the text.</summary>
public class EndOfTextTests
{
    private TempDirectory _directory = null!;
    private GptJxModel _model = null!;

    [OneTimeSetUp]
    public void Load()
    {
        _directory = new TempDirectory();
        EndOfTextModel.Write(_directory.Path);
        _model = GptJxModel.Load(_directory.Path, new CpuBackend());
    }

    [OneTimeTearDown]
    public void Unload()
    {
        _model.Dispose();
        _directory.Dispose();
    }

    private List<GeneratedToken> Run(GenerationOptions options) => TextGenerator.Generate(_model, _model.Encode("Once upon a time"), options).ToList();

    [Test]
    public void TheModelPutsEndOfTextFirst()
    {
        using var sequence = _model.CreateSequence(4);
        var logits = new float[_model.VocabularySize];
        sequence.Append(_model.Encode("Once upon a"), logits);
        Assert.That(Expectations.ArgMax(logits), Is.EqualTo(EndOfTextModel.EndOfText));
        Assert.That(logits[EndOfTextModel.EndOfText], Is.EqualTo(EndOfTextModel.EndOfTextLogit).Within(1e-4));
        Assert.That(logits.Where((_, id) => id != EndOfTextModel.EndOfText), Is.All.EqualTo(0f).Within(1e-6));
    }

    [Test]
    public void GreedyStopsAtTheEndOfTextTokenWithNoText()
    {
        var tokens = Run(new GenerationOptions { MaxNewTokens = 10 });
        Assert.That(tokens, Has.Count.EqualTo(1));
        Assert.That(tokens[0], Is.EqualTo(new GeneratedToken(EndOfTextModel.EndOfText, "", FinishReason.Stop)));
    }

    [Test]
    public void SamplingStopsAtTheFirstEndOfText()
    {
        var tokens = Run(new GenerationOptions { MaxNewTokens = 40, Temperature = 1f, Seed = 2 });
        var ids = tokens.Select(t => t.Id).ToArray();
        Assert.That(ids, Has.Length.InRange(2, 39), "with this seed, some tokens come before end-of-text");
        Assert.That(ids[^1], Is.EqualTo(EndOfTextModel.EndOfText));
        Assert.That(ids[..^1], Has.None.EqualTo(EndOfTextModel.EndOfText));
        Assert.That(tokens[^1].Finish, Is.EqualTo(FinishReason.Stop));
        Assert.That(tokens[..^1].Select(t => t.Finish), Is.All.EqualTo(FinishReason.None));
        Assert.That(string.Concat(tokens.Select(t => t.Text)), Is.EqualTo(_model.Tokenizer.Decode(ids[..^1])));
    }

    [Test]
    public void WithoutStopAtEndOfTextItRunsToTheLength()
    {
        var tokens = Run(new GenerationOptions { MaxNewTokens = 5, StopAtEndOfText = false });
        Assert.That(tokens.Select(t => t.Id), Is.All.EqualTo(EndOfTextModel.EndOfText));
        Assert.That(tokens, Has.Count.EqualTo(5));
        Assert.That(tokens[^1].Finish, Is.EqualTo(FinishReason.Length));
        Assert.That(string.Concat(tokens.Select(t => t.Text)), Is.EqualTo(string.Concat(Enumerable.Repeat("<|endoftext|>", 5))));
    }
}
