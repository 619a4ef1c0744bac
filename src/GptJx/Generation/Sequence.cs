using GptJx.Backends;

namespace GptJx.Generation;

/// <summary>
/// One token sequence and its KV cache: appending tokens runs them through the model
/// (prompts in chunks, one matrix-matrix pass per chunk) and yields logits or a next token.
/// </summary>
public sealed class Sequence : IDisposable
{
    private enum Wanted { None, Last, All }

    private readonly GptJxModel _model;
    private readonly IKvCache _cache;
    private readonly AttentionBatch _batch = new(1);
    private readonly List<int> _tokens;
    private readonly int[] _lastRow = new int[1];
    private readonly int[] _picked = new int[1];
    private readonly TokenDraw[] _draw = new TokenDraw[1];
    private int[]? _allRows;
    private float[]? _hostLogits;

    internal Sequence(GptJxModel model, IKvCache cache)
    {
        _model = model;
        _cache = cache;
        _tokens = new List<int>(cache.MaxPositions);   // room for every position: appending never reallocates
    }

    /// <summary>Tokens in the cache.</summary>
    public int Length => _tokens.Count;

    public int Capacity => _cache.MaxPositions;

    public IReadOnlyList<int> Tokens => _tokens;

    /// <summary>Runs <paramref name="tokens"/> and writes the logits after the last one to <paramref name="logits"/> (V values).</summary>
    public void Append(ReadOnlySpan<int> tokens, Span<float> logits) => Run(tokens, logits, Wanted.Last);

    /// <summary>Runs <paramref name="tokens"/> and writes the logits after each of them ([tokens, V] row-major).</summary>
    public void AppendAll(ReadOnlySpan<int> tokens, Span<float> logits) => Run(tokens, logits, Wanted.All);

    /// <summary>
    /// Runs <paramref name="tokens"/> and picks the next token with <paramref name="sampler"/>:
    /// on the backend when it can pick (only the id crosses to the host), else from host logits.
    /// </summary>
    public int AppendAndSample(ReadOnlySpan<int> tokens, Sampler sampler)
    {
        Check(tokens);
        int chunk = _model.MaxRowsPerForward;
        int head = (tokens.Length - 1) / chunk * chunk;   // all but the last chunk need no logits
        if (head > 0) Run(tokens[..head], default, Wanted.None);
        var last = tokens[head..];

        PrepareBatch(last.Length);
        _lastRow[0] = last.Length - 1;
        _draw[0] = sampler.Draw();
        var logits = _hostLogits ??= new float[_model.VocabularySize];
        bool picked = _model.ForwardAndPick(null, last, _batch, _cache, _lastRow, _draw, sampler.CanPickOnDevice, _picked, logits);
        foreach (int t in last) _tokens.Add(t);
        return sampler.Take(picked ? _picked[0] : null, logits, _draw[0]);
    }

    private void Run(ReadOnlySpan<int> tokens, Span<float> logits, Wanted wanted)
    {
        Check(tokens);
        int vocabulary = _model.VocabularySize;
        int chunk = _model.MaxRowsPerForward;
        for (int start = 0; start < tokens.Length; start += chunk)
        {
            var part = tokens.Slice(start, Math.Min(chunk, tokens.Length - start));
            bool last = start + part.Length == tokens.Length;
            PrepareBatch(part.Length);
            switch (wanted)
            {
                case Wanted.All:
                    _allRows ??= Enumerable.Range(0, chunk).ToArray();
                    _model.Forward(part, _batch, _cache, _allRows.AsSpan(0, part.Length), logits.Slice(start * vocabulary, part.Length * vocabulary));
                    break;
                case Wanted.Last when last:
                    _lastRow[0] = part.Length - 1;
                    _model.Forward(part, _batch, _cache, _lastRow, logits);
                    break;
                default:
                    _model.Forward(part, _batch, _cache, ReadOnlySpan<int>.Empty, default);
                    break;
            }
            foreach (int t in part) _tokens.Add(t);
        }
    }

    private void Check(ReadOnlySpan<int> tokens)
    {
        if (tokens.IsEmpty) throw new InvalidArgumentException("input", "must not be empty");
        _model.CheckIds(tokens, "input");
        if ((long)Length + tokens.Length > Capacity)
            throw new InvalidArgumentException("input", $"of {tokens.Length} tokens after {Length} exceeds the sequence's capacity of {Capacity} (context {_model.Config.ContextLength})",
                ArgumentErrorCode.ContextLengthExceeded);
    }

    private void PrepareBatch(int newTokens)
    {
        _batch.Clear();
        _batch.Add(0, Length, newTokens, _model.Config.AlibiScaling?.SlopeMultiplier(Length + newTokens) ?? 1f);
    }

    public void Dispose() => _cache.Dispose();
}
