using GptJx.Generation;
using static GptJx.Tests.Generation.Expectations;

namespace GptJx.Tests.Generation;

public class PerplexityTests
{
    private const string Text = "The cat sat on the mat. The dog sat on the log.";

    /// <summary>
    /// Mean NLL of <paramref name="ids"/> scored in windows of <paramref name="window"/> ids of [bos] + ids
    /// that overlap by one: each window is one full pass from an empty cache and scores every id after its first.
    /// </summary>
    private static (int Tokens, double Mean) ScoreInWindows(GptJxModel model, int[] ids, int window)
    {
        var input = new[] { model.Config.BosTokenId }.Concat(ids).ToArray();
        int v = model.VocabularySize, tokens = 0;
        double total = 0;
        for (int start = 0; start + 1 < input.Length; start += window - 1)
        {
            var piece = input.AsSpan(start, Math.Min(window, input.Length - start)).ToArray();
            using var sequence = model.CreateSequence(piece.Length);
            var logits = new float[piece.Length * v];
            sequence.AppendAll(piece, logits);
            for (int i = 0; i + 1 < piece.Length; i++, tokens++)
                total += NegativeLogSoftmax(logits.AsSpan(i * v, v), piece[i + 1]);
        }
        return (tokens, total / tokens);
    }

    [Test]
    public void EveryTokenIsScoredOnceFromTheLogitsOfOnePass()
    {
        using var model = TestModels.LoadSmall();
        var ids = model.Encode(Text);
        var whole = Perplexity.Evaluate(model, ids);
        var (tokens, mean) = ScoreInWindows(model, ids, window: ids.Length + 1);
        Assert.That(tokens, Is.EqualTo(ids.Length));
        Assert.That(whole.Tokens, Is.EqualTo(ids.Length));
        // The code subtracts the max in float; this test in double: they differ by about 1e-9.
        Assert.That(whole.MeanNegativeLogLikelihood, Is.EqualTo(mean).Within(1e-7));
        Assert.That(whole.Perplexity, Is.EqualTo(Math.Exp(mean)).Within(1e-5).Percent);
    }

    [Test]
    public void ShortWindowsOverlapByOneAndStartFromAnEmptyCache()
    {
        using var model = TestModels.LoadSmall();
        var ids = model.Encode(Text);
        var windowed = Perplexity.Evaluate(model, ids, context: 5);
        var (tokens, mean) = ScoreInWindows(model, ids, window: 5);
        Assert.That(windowed.Tokens, Is.EqualTo(ids.Length));
        Assert.That(tokens, Is.EqualTo(ids.Length));
        Assert.That(windowed.MeanNegativeLogLikelihood, Is.EqualTo(mean).Within(1e-7));
        Assert.That(windowed.MeanNegativeLogLikelihood, Is.Not.EqualTo(Perplexity.Evaluate(model, ids).MeanNegativeLogLikelihood).Within(1e-6),
            "less context changes the score");
    }

    [Test]
    public void NegativeLogLikelihoodIsTheLogSoftmax()
    {
        float[] logits = [2f, -1f, 0.5f, 30f, -40f];
        for (int target = 0; target < logits.Length; target++)
            Assert.That(Perplexity.NegativeLogLikelihood(logits, target), Is.EqualTo(NegativeLogSoftmax(logits, target)).Within(1e-6));
        // Uniform logits: ln 4 whatever their value.
        Assert.That(Perplexity.NegativeLogLikelihood([1000f, 1000f, 1000f, 1000f], 2), Is.EqualTo(Math.Log(4)).Within(1e-12));
    }
}
