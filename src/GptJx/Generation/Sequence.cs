using GptJx.Backends;

namespace GptJx.Generation;

/// <summary>
/// One token sequence and its KV cache: appending tokens runs them through the model
/// (prompts in chunks, one matrix-matrix pass per chunk) and yields logits.
/// </summary>
public sealed class Sequence : IDisposable
{
    private readonly GptJxModel _model;
    private readonly IKvCache _cache;
    private readonly AttentionBatch _batch = new(1);
    private readonly List<int> _tokens;
    private readonly int[] _lastRow = new int[1];

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
    public void Append(ReadOnlySpan<int> tokens, Span<float> logits) => Run(tokens, logits, allPositions: false);

    /// <summary>Runs <paramref name="tokens"/> and writes the logits after each of them ([tokens, V] row-major).</summary>
    public void AppendAll(ReadOnlySpan<int> tokens, Span<float> logits) => Run(tokens, logits, allPositions: true);

    private void Run(ReadOnlySpan<int> tokens, Span<float> logits, bool allPositions)
    {
        if (tokens.IsEmpty) throw new ArgumentException("no tokens to append", nameof(tokens));
        _model.CheckIds(tokens, "input");
        if (Length + tokens.Length > Capacity)
            throw new ArgumentException($"{Length} + {tokens.Length} tokens exceed the sequence's capacity of {Capacity} (context {_model.Config.ContextLength})", nameof(tokens));
        int vocabulary = _model.VocabularySize;
        int chunk = _model.MaxRowsPerForward;
        Span<int> rows = allPositions ? new int[Math.Min(chunk, tokens.Length)] : default;
        for (int start = 0; start < tokens.Length; start += chunk)
        {
            var part = tokens.Slice(start, Math.Min(chunk, tokens.Length - start));
            bool last = start + part.Length == tokens.Length;
            _batch.Clear();
            int keyLength = Length + part.Length;
            _batch.Add(0, Length, part.Length, _model.Config.AlibiScaling?.SlopeMultiplier(keyLength) ?? 1f);
            if (allPositions)
            {
                for (int i = 0; i < part.Length; i++) rows[i] = i;
                _model.Forward(part, _batch, _cache, rows[..part.Length], logits.Slice(start * vocabulary, part.Length * vocabulary));
            }
            else
            {
                _lastRow[0] = part.Length - 1;
                _model.Forward(part, _batch, _cache, last ? _lastRow : ReadOnlySpan<int>.Empty, logits);
            }
            foreach (int t in part) _tokens.Add(t);
        }
    }

    public void Dispose() => _cache.Dispose();
}
