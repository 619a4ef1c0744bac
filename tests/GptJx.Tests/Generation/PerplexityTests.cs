using GptJx.Generation;

namespace GptJx.Tests.Generation;

public class PerplexityTests
{
    [Test]
    public void EveryTokenIsScoredOnceAndMatchesTheLogits()
    {
        using var model = TestModels.LoadSmall();
        var ids = model.Encode("The cat sat on the mat. The dog sat on the log.");
        var whole = Perplexity.Evaluate(model, ids);
        Assert.That(whole.Tokens, Is.EqualTo(ids.Length));

        // Independent computation: one pass over [bos] + ids, summing -log softmax of each next id.
        var input = new[] { model.Config.BosTokenId }.Concat(ids).ToArray();
        using var sequence = model.CreateSequence(input.Length);
        var logits = new float[input.Length * model.VocabularySize];
        sequence.AppendAll(input, logits);
        double total = 0;
        for (int i = 0; i < ids.Length; i++)
            total += Perplexity.NegativeLogLikelihood(logits.AsSpan(i * model.VocabularySize, model.VocabularySize), ids[i]);
        Assert.That(whole.MeanNegativeLogLikelihood, Is.EqualTo(total / ids.Length).Within(1e-9));
        Assert.That(whole.Perplexity, Is.EqualTo(Math.Exp(total / ids.Length)).Within(1e-6));

        // Shorter windows still score every token exactly once.
        var windowed = Perplexity.Evaluate(model, ids, context: 5);
        Assert.That(windowed.Tokens, Is.EqualTo(ids.Length));
        Assert.That(windowed.MeanNegativeLogLikelihood, Is.Not.EqualTo(whole.MeanNegativeLogLikelihood), "less context changes the score");
    }
}
