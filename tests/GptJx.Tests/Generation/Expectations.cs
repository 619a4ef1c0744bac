namespace GptJx.Tests.Generation;

/// <summary>
/// Expected values computed by the tests themselves, from a model's logits only: never by the
/// sampler, text stream or scoring code that the tests check.
/// </summary>
internal static class Expectations
{
    /// <summary>-ln softmax(logits)[target] by log-sum-exp in double.</summary>
    public static double NegativeLogSoftmax(ReadOnlySpan<float> logits, int target)
    {
        double max = double.NegativeInfinity;
        foreach (float l in logits) max = Math.Max(max, l);
        double sum = 0;
        foreach (float l in logits) sum += Math.Exp(l - max);
        return max + Math.Log(sum) - logits[target];
    }

    /// <summary>Index of the largest value; ties go to the lowest index.</summary>
    public static int ArgMax(ReadOnlySpan<float> values)
    {
        int best = 0;
        for (int i = 1; i < values.Length; i++)
            if (values[i] > values[best]) best = i;
        return best;
    }

    /// <summary>
    /// Greedy continuation by a full recompute of the whole context at every step (no cache reuse),
    /// an empty prompt standing for the end-of-text token, up to <paramref name="count"/> ids or end-of-text.
    /// </summary>
    public static int[] GreedyByFullRecompute(GptJxModel model, IReadOnlyList<int> prompt, int count, bool stopAtEndOfText = true)
    {
        var context = prompt.Count > 0 ? prompt.ToList() : [model.Config.BosTokenId];
        var produced = new List<int>();
        var logits = new float[model.VocabularySize];
        while (produced.Count < count)
        {
            using var sequence = model.CreateSequence(context.Count);
            sequence.Append(context.ToArray(), logits);
            int next = ArgMax(logits);
            produced.Add(next);
            context.Add(next);
            if (stopAtEndOfText && next == model.Config.EosTokenId) break;
        }
        return [.. produced];
    }

    /// <summary>The text of generated ids: their decoding, less a final end-of-text token that ended them.</summary>
    public static string TextOf(GptJxModel model, IReadOnlyList<int> ids, bool endedByEndOfText) =>
        model.Tokenizer.Decode((endedByEndOfText ? ids.Take(ids.Count - 1) : ids).ToArray());
}
