using GptJx.Backends;

namespace GptJx.Generation;

/// <summary>
/// Picks the next token from logits: repetition penalty, then greedy or
/// temperature / top-k / top-p sampling. Buffers are allocated once per sampler.
/// </summary>
public sealed class Sampler
{
    private readonly GenerationOptions _options;
    private readonly Pcg32 _random;
    private readonly int[] _order;
    private readonly float[] _probabilities;
    private readonly float[] _logits;
    private readonly bool[] _seen;

    public Sampler(GenerationOptions options, int vocabularySize)
    {
        options.Validate();
        _options = options;
        _random = new Pcg32(options.Seed ?? (ulong)Random.Shared.NextInt64());
        _order = new int[vocabularySize];
        _probabilities = new float[vocabularySize];
        _logits = new float[vocabularySize];
        _seen = new bool[vocabularySize];
    }

    /// <summary>Marks tokens as seen, for the repetition penalty.</summary>
    public void Observe(ReadOnlySpan<int> tokens)
    {
        foreach (int t in tokens)
            if ((uint)t < (uint)_seen.Length) _seen[t] = true;
    }

    /// <summary>Chooses a token and remembers it; <paramref name="logits"/> is modified in place.</summary>
    public int Next(Span<float> logits)
    {
        int token = Next(logits, Draw());
        Accept(token);
        return token;
    }

    /// <summary>
    /// The parameters of the next pick, with its random number drawn now (one per sampled
    /// token), so the same seed gives the same draws whether the host or a backend picks.
    /// </summary>
    public TokenDraw Draw() => _options.Temperature == 0f
        ? TokenDraw.Greedy
        : new TokenDraw(_options.Temperature, _options.TopK, _options.TopP, _random.NextSingle());

    /// <summary>Whether a backend may pick for this sampler (it has no repetition penalty to apply).</summary>
    public bool CanPickOnDevice => _options.RepetitionPenalty == 1f;

    /// <summary>
    /// Picks a token on the host for <paramref name="draw"/>; <paramref name="logits"/> is modified in place.
    /// Logits that are not all finite throw <see cref="NonFiniteLogitsException"/>.
    /// </summary>
    public int Next(Span<float> logits, TokenDraw draw)
    {
        NonFiniteLogitsException.ThrowIfAny(logits);
        if (_options.RepetitionPenalty != 1f) ApplyRepetitionPenalty(logits, _options.RepetitionPenalty);
        return draw.Temperature == 0f ? ArgMax(logits) : Sample(logits, draw.Uniform);
    }

    /// <summary>
    /// The token of the pick for <paramref name="draw"/>, remembered for the repetition penalty: the one a
    /// backend picked (<paramref name="devicePick"/>, checked: an id outside the vocabulary means its
    /// logits were not finite), else the host's pick from <paramref name="logits"/>.
    /// </summary>
    internal int Take(int? devicePick, Span<float> logits, TokenDraw draw)
    {
        int token = devicePick is { } id ? NonFiniteLogitsException.CheckPicked(id, _seen.Length) : Next(logits, draw);
        Accept(token);
        return token;
    }

    /// <summary>Records a chosen token (for the repetition penalty).</summary>
    public void Accept(int token)
    {
        if ((uint)token < (uint)_seen.Length) _seen[token] = true;
    }

    private void ApplyRepetitionPenalty(Span<float> logits, float penalty)
    {
        for (int i = 0; i < logits.Length; i++)
            if (_seen[i]) logits[i] = logits[i] > 0 ? logits[i] / penalty : logits[i] * penalty;
    }

    /// <summary>
    /// Index of the largest logit; the lowest index wins ties. NaN never wins (0 when every logit is
    /// NaN), as on the device, so the host and a backend pick the same token from the same logits.
    /// </summary>
    public static int ArgMax(ReadOnlySpan<float> logits)
    {
        int best = -1;
        for (int i = 0; i < logits.Length; i++)
            if (!float.IsNaN(logits[i]) && (best < 0 || logits[i] > logits[best])) best = i;
        return Math.Max(best, 0);
    }

    private int Sample(Span<float> logits, float uniform)
    {
        int n = logits.Length;
        var order = _order.AsSpan(0, n);
        for (int i = 0; i < n; i++) order[i] = i;

        // Candidates ranked by logit, highest first, equal logits by lowest id (as the device kernel ranks them).
        int candidates = _options.TopK > 0 ? Math.Min(_options.TopK, n) : n;
        logits.CopyTo(_logits);
        var ranking = new Ranking(_logits);
        if (candidates < n) PartialSelect(order, candidates, ranking);
        order[..candidates].Sort(ranking);

        // Softmax of the candidates at this temperature.
        float max = logits[order[0]];
        double sum = 0;
        var probs = _probabilities.AsSpan(0, candidates);
        for (int i = 0; i < candidates; i++)
        {
            float p = MathF.Exp((logits[order[i]] - max) / _options.Temperature);
            probs[i] = p;
            sum += p;
        }

        // Nucleus: the smallest prefix whose probability reaches top-p.
        int kept = candidates;
        if (_options.TopP < 1f)
        {
            double cumulative = 0;
            for (int i = 0; i < candidates; i++)
            {
                cumulative += probs[i] / sum;
                if (cumulative >= _options.TopP) { kept = i + 1; break; }
            }
            sum = 0;
            for (int i = 0; i < kept; i++) sum += probs[i];
        }

        double target = uniform * sum;
        double running = 0;
        for (int i = 0; i < kept; i++)
        {
            running += probs[i];
            if (running > target) return order[i];
        }
        return order[kept - 1];
    }

    /// <summary>Token ids by logit, highest first; equal logits by lowest id.</summary>
    private readonly struct Ranking(float[] logits) : IComparer<int>
    {
        public int Compare(int a, int b) => logits[a] != logits[b] ? logits[b].CompareTo(logits[a]) : a.CompareTo(b);
    }

    /// <summary>Moves the k best-ranked ids to the front of <paramref name="order"/>, in any order (quickselect).</summary>
    private static void PartialSelect(Span<int> order, int k, Ranking ranking)
    {
        int lo = 0, hi = order.Length - 1;
        while (lo < hi)
        {
            int pivot = order[(lo + hi) >>> 1];
            int i = lo, j = hi;
            while (i <= j)
            {
                while (ranking.Compare(order[i], pivot) < 0) i++;
                while (ranking.Compare(order[j], pivot) > 0) j--;
                if (i <= j)
                {
                    (order[i], order[j]) = (order[j], order[i]);
                    i++;
                    j--;
                }
            }
            if (k - 1 <= j) hi = j;
            else if (k - 1 >= i) lo = i;
            else break;
        }
    }
}

/// <summary>PCG-XSH-RR: a small generator whose sequence is fixed by its seed on every platform and runtime.</summary>
public sealed class Pcg32(ulong seed)
{
    private ulong _state = seed + 0x853C49E6748FEA9BUL;

    public uint NextUInt()
    {
        ulong old = _state;
        _state = old * 6364136223846793005UL + 1442695040888963407UL;
        uint xorShifted = (uint)(((old >> 18) ^ old) >> 27);
        int rotation = (int)(old >> 59);
        return (xorShifted >> rotation) | (xorShifted << (-rotation & 31));
    }

    /// <summary>Uniform in [0, 1) with 24 random bits (exactly representable, never 1).</summary>
    public float NextSingle() => (NextUInt() >> 8) * (1f / (1 << 24));
}
