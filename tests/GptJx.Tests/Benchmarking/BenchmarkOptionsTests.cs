using GptJx.Benchmarking;
using GptJx.Model;

namespace GptJx.Tests.Benchmarking;

public class BenchmarkOptionsTests
{
    private static ModelConfig WithContext(int context) => ModelConfig.Tiny with { ContextLength = context };

    [Test]
    public void DefaultsAreTheStandardLengthsThatFit()
    {
        var full = new BenchmarkOptions().FitTo(ModelConfig.GptJx3B);
        Assert.That(full.PromptTokens, Is.EqualTo(new[] { 128, 512, 2048 }));
        Assert.That(full.DecodeContext, Is.EqualTo(128));
        Assert.That(new BenchmarkOptions().FitTo(WithContext(1024)).PromptTokens, Is.EqualTo(new[] { 128, 512 }));
    }

    [Test]
    public void AContextShorterThanEveryDefaultGetsHalfItsLength()
    {
        var fitted = new BenchmarkOptions { NewTokens = 16 }.FitTo(WithContext(64));
        Assert.That(fitted.PromptTokens, Is.EqualTo(new[] { 32 }));
        Assert.That(fitted.DecodeContext, Is.EqualTo(32));
    }

    [Test]
    public void TheDefaultDecodeContextLeavesRoomForTheNewTokens()
    {
        var fitted = new BenchmarkOptions { PromptTokens = [150], NewTokens = 64 }.FitTo(WithContext(200));
        Assert.That(fitted.DecodeContext, Is.EqualTo(200 - 64 - 1));
    }

    [Test]
    public void GivenLengthsThatDoNotFitAreNamed()
    {
        var e = Assert.Throws<InvalidArgumentException>(() => new BenchmarkOptions { PromptTokens = [16, 65], NewTokens = 8 }.FitTo(WithContext(64)))!;
        Assert.That((e.ParamName, e.Message), Is.EqualTo(("PromptTokens", "PromptTokens 65 is longer than the model's context of 64 tokens")));
        e = Assert.Throws<InvalidArgumentException>(() => new BenchmarkOptions { PromptTokens = [16], NewTokens = 8, DecodeContext = 56 }.FitTo(WithContext(64)))!;
        Assert.That((e.ParamName, e.Message), Is.EqualTo(("DecodeContext", "DecodeContext 56 leaves no room for 8 new tokens in the model's context of 64 tokens (at most 55)")));
        Assert.That(new BenchmarkOptions { PromptTokens = [16], NewTokens = 8, DecodeContext = 55 }.FitTo(WithContext(64)).DecodeContext, Is.EqualTo(55));
        e = Assert.Throws<InvalidArgumentException>(() => new BenchmarkOptions { NewTokens = 63 }.FitTo(WithContext(64)))!;
        Assert.That((e.ParamName, e.Message), Is.EqualTo(("NewTokens", "NewTokens 63 leaves no room for a prompt in the model's context of 64 tokens")));
    }
}
