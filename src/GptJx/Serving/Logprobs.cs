namespace GptJx.Serving;

/// <summary>Log-probabilities of one step: log-softmax of the raw logits, and the most likely tokens.</summary>
internal static class Logprobs
{
    public static TokenLogprobs Compute(ReadOnlySpan<float> logits, int chosen, int top)
    {
        float max = float.NegativeInfinity;
        foreach (float l in logits) if (l > max) max = l;
        double sum = 0;
        foreach (float l in logits) sum += Math.Exp(l - max);
        double logSumExp = max + Math.Log(sum);

        // The top N by insertion into a short sorted list (N <= 20); lower ids first on ties.
        var ids = new int[Math.Min(top, logits.Length)];
        int count = 0;
        for (int i = 0; i < logits.Length && ids.Length > 0; i++)
        {
            float l = logits[i];
            if (count == ids.Length && l <= logits[ids[count - 1]]) continue;
            int at = count < ids.Length ? count++ : count - 1;
            while (at > 0 && logits[ids[at - 1]] < l)
            {
                ids[at] = ids[at - 1];
                at--;
            }
            ids[at] = i;
        }
        var best = new TopLogprob[count];
        for (int i = 0; i < count; i++) best[i] = new TopLogprob(ids[i], (float)(logits[ids[i]] - logSumExp));
        return new TokenLogprobs((float)(logits[chosen] - logSumExp), best);
    }
}
