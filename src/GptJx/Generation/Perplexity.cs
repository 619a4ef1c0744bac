namespace GptJx.Generation;

/// <param name="Tokens">Tokens whose likelihood was scored.</param>
/// <param name="MeanNegativeLogLikelihood">Mean -ln p(token | preceding tokens), in nats.</param>
public sealed record PerplexityResult(int Tokens, double MeanNegativeLogLikelihood)
{
    public double Perplexity => Math.Exp(MeanNegativeLogLikelihood);
}

/// <summary>
/// Perplexity of a text: the end-of-text token is prepended (so the first token is
/// scored too), the ids are cut into consecutive windows of at most the context
/// length that overlap by one token, and each window is scored from an empty cache,
/// every token after its first (so every text token is scored exactly once).
/// </summary>
public static class Perplexity
{
    public static PerplexityResult Evaluate(GptJxModel model, IReadOnlyList<int> textIds, int? context = null, IProgress<double>? progress = null)
    {
        int window = context ?? model.Config.ContextLength;
        if (window < 2 || window > model.Config.ContextLength)
            throw new InvalidArgumentException(nameof(context), $"must be 2..{model.Config.ContextLength} tokens (got {window})");
        if (textIds.Count == 0) throw new InvalidArgumentException("text", "has no tokens");
        var ids = new int[textIds.Count + 1];
        ids[0] = model.Config.BosTokenId;
        for (int i = 0; i < textIds.Count; i++) ids[i + 1] = textIds[i];

        int vocabulary = model.VocabularySize;
        int chunk = Math.Min(window, model.MaxRowsPerForward);
        var logits = new float[chunk * vocabulary];
        double total = 0;
        int scored = 0;
        for (int start = 0; start < ids.Length - 1; start += window - 1)
        {
            int length = Math.Min(window, ids.Length - start);
            if (length < 2) break;
            using var sequence = model.CreateSequence(length);
            // Inputs are ids[start .. start+length-1); each predicts the next id.
            for (int offset = 0; offset < length - 1; offset += chunk)
            {
                int n = Math.Min(chunk, length - 1 - offset);
                var input = ids.AsSpan(start + offset, n);
                sequence.AppendAll(input, logits.AsSpan(0, n * vocabulary));
                for (int i = 0; i < n; i++)
                {
                    int target = ids[start + offset + i + 1];
                    total += NegativeLogLikelihood(logits.AsSpan(i * vocabulary, vocabulary), target);
                    scored++;
                }
                progress?.Report((double)scored / (ids.Length - 1));
            }
        }
        return new PerplexityResult(scored, total / scored);
    }

    /// <summary>-ln softmax(logits)[target], computed stably in double.</summary>
    public static double NegativeLogLikelihood(ReadOnlySpan<float> logits, int target)
    {
        float max = float.NegativeInfinity;
        foreach (float l in logits) if (l > max) max = l;
        double sum = 0;
        foreach (float l in logits) sum += Math.Exp(l - max);
        return Math.Log(sum) - (logits[target] - max);
    }
}
