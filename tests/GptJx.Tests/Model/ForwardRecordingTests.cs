using GptJx.Backends;
using GptJx.Backends.Cpu;
using GptJx.Checkpoints;
using GptJx.Generation;
using GptJx.Tensors;

namespace GptJx.Tests.Model;

/// <summary>
/// The engine's use of the optional backend capabilities (recorded forward calls, as CUDA
/// graphs; picking tokens on the backend), checked on the CPU with a backend that emulates
/// them: a recording replays the same ops on the same tensors with new ids, batch and rows.
/// </summary>
public class ForwardRecordingTests
{
    [Test]
    public void DecodeStepsAreRecordedOnceAndReplayedWithIdenticalResults()
    {
        var options = new GenerationOptions { MaxNewTokens = 12, StopAtEndOfText = false };
        var prompt = new[] { 464, 2068, 7586, 21831 };
        int[] expected;
        using (var plain = TestModels.LoadSmall())
            expected = TextGenerator.Generate(plain, prompt, options).Select(t => t.Id).ToArray();

        var backend = new EmulatedGraphBackend();
        using var model = GptJxModel.Load(TestModels.SmallModelDirectory, backend);
        var produced = TextGenerator.Generate(model, prompt, options).Select(t => t.Id).ToArray();

        Assert.That(produced, Is.EqualTo(expected));
        Assert.That(backend.Recordings, Is.EqualTo(1), "one decode shape, recorded once");
        Assert.That(backend.Replays, Is.EqualTo(10), "12 tokens: prefill, 1 eager decode step, 1 recorded (and replayed), 9 more replays");
        Assert.That(backend.Picks, Is.EqualTo(12), "every token picked on the backend");
    }

    [Test]
    public void SeededSamplingPicksTheSameTokensOnTheBackendAsOnTheHost()
    {
        var options = new GenerationOptions { MaxNewTokens = 10, Temperature = 1.3f, TopK = 40, TopP = 0.9f, Seed = 9, StopAtEndOfText = false };
        var prompt = new[] { 40, 588, 284 };
        using var plain = TestModels.LoadSmall();
        var host = TextGenerator.Generate(plain, prompt, options).Select(t => t.Id).ToArray();
        var backend = new EmulatedGraphBackend();
        using var model = GptJxModel.Load(TestModels.SmallModelDirectory, backend);
        var device = TextGenerator.Generate(model, prompt, options).Select(t => t.Id).ToArray();
        Assert.That(device, Is.EqualTo(host));
        Assert.That(backend.Picks, Is.EqualTo(10));
    }

    [Test]
    public void RepetitionPenaltyKeepsPickingOnTheHost()
    {
        var backend = new EmulatedGraphBackend();
        using var model = GptJxModel.Load(TestModels.SmallModelDirectory, backend);
        var tokens = TextGenerator.Generate(model, [1, 2, 3], new GenerationOptions { MaxNewTokens = 5, RepetitionPenalty = 1.3f, StopAtEndOfText = false }).ToList();
        Assert.That(tokens, Has.Count.EqualTo(5));
        Assert.That(backend.Picks, Is.Zero);
    }
}
