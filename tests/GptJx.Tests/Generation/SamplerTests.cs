using GptJx.Generation;

namespace GptJx.Tests.Generation;

public class SamplerTests
{
    private static float[] Logits() => [1f, 3f, 2.5f, -1f, 0f, 2.9f];

    [Test]
    public void GreedyPicksTheLargestLogit()
    {
        var sampler = new Sampler(new GenerationOptions(), 6);
        Assert.That(sampler.Next(Logits()), Is.EqualTo(1));
        Assert.That(Sampler.ArgMax([2f, 5f, 5f]), Is.EqualTo(1), "ties go to the lowest index");
    }

    [Test]
    public void SameSeedSameSamples()
    {
        var options = new GenerationOptions { Temperature = 1.5f, Seed = 42 };
        var a = new Sampler(options, 6);
        var b = new Sampler(options, 6);
        var drawsA = Enumerable.Range(0, 200).Select(_ => a.Next(Logits())).ToArray();
        var drawsB = Enumerable.Range(0, 200).Select(_ => b.Next(Logits())).ToArray();
        Assert.That(drawsA, Is.EqualTo(drawsB));
        Assert.That(drawsA.Distinct().Count(), Is.GreaterThan(3), "temperature 1.5 should spread the draws");
        var c = new Sampler(options with { Seed = 43 }, 6);
        Assert.That(Enumerable.Range(0, 200).Select(_ => c.Next(Logits())), Is.Not.EqualTo(drawsA));
    }

    [Test]
    public void SamplingFollowsTheSoftmax()
    {
        var sampler = new Sampler(new GenerationOptions { Temperature = 1f, Seed = 7 }, 3);
        var counts = new int[3];
        for (int i = 0; i < 20000; i++) counts[sampler.Next(new[] { 0f, MathF.Log(2), MathF.Log(5) })]++;
        // Probabilities 1/8, 2/8, 5/8.
        Assert.That(counts[0] / 20000.0, Is.EqualTo(0.125).Within(0.012));
        Assert.That(counts[1] / 20000.0, Is.EqualTo(0.25).Within(0.015));
        Assert.That(counts[2] / 20000.0, Is.EqualTo(0.625).Within(0.015));
    }

    [Test]
    public void TopKKeepsOnlyTheKBest()
    {
        var sampler = new Sampler(new GenerationOptions { Temperature = 100f, TopK = 2, Seed = 1 }, 6);
        var seen = Enumerable.Range(0, 500).Select(_ => sampler.Next(Logits())).ToHashSet();
        Assert.That(seen, Is.EquivalentTo(new[] { 1, 5 }));
    }

    [Test]
    public void TopPKeepsTheSmallestNucleus()
    {
        // Probabilities 0.5, 0.3, 0.15, 0.05: top-p 0.75 keeps the first two (0.8 >= 0.75).
        float[] logits = [MathF.Log(0.5f), MathF.Log(0.3f), MathF.Log(0.15f), MathF.Log(0.05f)];
        var sampler = new Sampler(new GenerationOptions { Temperature = 1f, TopP = 0.75f, Seed = 3 }, 4);
        var counts = new int[4];
        for (int i = 0; i < 8000; i++) counts[sampler.Next((float[])logits.Clone())]++;
        Assert.That(counts[2] + counts[3], Is.Zero);
        Assert.That(counts[0] / (double)(counts[0] + counts[1]), Is.EqualTo(0.5 / 0.8).Within(0.03));
    }

    [Test]
    public void RepetitionPenaltyDividesPositiveAndMultipliesNegativeLogits()
    {
        var sampler = new Sampler(new GenerationOptions { RepetitionPenalty = 2f }, 4);
        sampler.Observe([0, 2]);
        float[] logits = [4f, 3f, -1f, 1f];
        int token = sampler.Next(logits);
        Assert.That(logits, Is.EqualTo(new[] { 2f, 3f, -2f, 1f }));
        Assert.That(token, Is.EqualTo(1));
    }

    [TestCase(nameof(GenerationOptions.Temperature), "must be a finite number >= 0, 0 = greedy (got -0.5)")]
    [TestCase(nameof(GenerationOptions.TopK), "must be >= 0, 0 = off (got -1)")]
    [TestCase(nameof(GenerationOptions.TopP), "must be in (0, 1] (got 1.5)")]
    [TestCase(nameof(GenerationOptions.RepetitionPenalty), "must be a finite number > 0, 1 = off (got 0)")]
    [TestCase(nameof(GenerationOptions.MaxNewTokens), "must be zero or more (got -3)")]
    public void BadParametersAreNamed(string parameter, string reason)
    {
        var options = parameter switch
        {
            nameof(GenerationOptions.Temperature) => new GenerationOptions { Temperature = -0.5f },
            nameof(GenerationOptions.TopK) => new GenerationOptions { TopK = -1 },
            nameof(GenerationOptions.TopP) => new GenerationOptions { TopP = 1.5f },
            nameof(GenerationOptions.RepetitionPenalty) => new GenerationOptions { RepetitionPenalty = 0f },
            _ => new GenerationOptions { MaxNewTokens = -3 },
        };
        var e = Assert.Throws<InvalidArgumentException>(() => options.Validate());
        Assert.That(e!.ParamName, Is.EqualTo(parameter));
        Assert.That(e.Code, Is.EqualTo(ArgumentErrorCode.InvalidValue));
        Assert.That(e.Reason, Is.EqualTo(reason));
        Assert.That(e.Message, Is.EqualTo($"{parameter} {reason}"), "no \" (Parameter ...)\" suffix");
        Assert.That(new GenerationOptions { TopP = float.NaN }, Has.Property("TopP").NaN);
        Assert.That(Assert.Throws<InvalidArgumentException>(() => new GenerationOptions { TopP = float.NaN }.Validate())!.Reason, Is.EqualTo("must be in (0, 1] (got NaN)"));
    }
}

public class SamplerRankingTests
{
    [Test]
    public void EqualLogitsRankByLowestId()
    {
        // Four equal logits; top-k 2 must keep ids 1 and 2 (the lowest of the tied best), in that order:
        // with uniform draws below 1/2 the first kept id wins, above it the second.
        float[] logits = [0f, 5f, 5f, 5f, 5f];
        var options = new GenerationOptions { Temperature = 1f, TopK = 2 };
        var sampler = new Sampler(options, 5);
        Assert.That(sampler.Next((float[])logits.Clone(), new GptJx.Backends.TokenDraw(1f, 2, 1f, 0.25f)), Is.EqualTo(1));
        Assert.That(sampler.Next((float[])logits.Clone(), new GptJx.Backends.TokenDraw(1f, 2, 1f, 0.75f)), Is.EqualTo(2));
    }
}
