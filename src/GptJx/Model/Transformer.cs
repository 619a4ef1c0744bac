using GptJx.Backends;
using GptJx.Tensors;

namespace GptJx.Model;

/// <summary>
/// The GPT-JX forward pass, written once against <see cref="IBackend"/>, line by line
/// as in the model spec. Scratch activations are allocated up front for at most
/// <see cref="MaxRows"/> new tokens per call, so steady decoding allocates nothing.
/// (The logits tensor grows once if a call asks for more logit rows than it holds.)
/// </summary>
public sealed class Transformer : IDisposable
{
    private readonly ModelConfig _c;
    private readonly ModelWeights _w;
    private readonly IBackend _b;
    private readonly ITensor _hidden, _normed, _qkv, _attention, _upGate, _activation;
    private readonly ITensor _selected, _selectedNormed;
    private readonly ITensor[] _tokenRows;
    private readonly ForwardRecordings? _recordings;
    private ITensor _logits;

    public Transformer(ModelConfig config, ModelWeights weights, IBackend backend, int maxRows, int maxLogitRows)
    {
        _c = config;
        _w = weights;
        _b = backend;
        MaxRows = maxRows;
        int d = config.Width;
        var compute = backend.ComputeType;
        _hidden = backend.Allocate(maxRows, d, DType.F32);          // the residual stream stays fp32
        _normed = backend.Allocate(maxRows, d, compute);
        _qkv = backend.Allocate(maxRows, 3 * d, compute);
        _attention = backend.Allocate(maxRows, d, compute);
        _upGate = backend.Allocate(maxRows, 2 * config.FeedForwardWidth, compute);
        _activation = backend.Allocate(maxRows, config.FeedForwardWidth, compute);
        _selected = backend.Allocate(maxRows, d, DType.F32);
        _selectedNormed = backend.Allocate(maxRows, d, compute);
        _logits = backend.Allocate(Math.Min(maxLogitRows, maxRows), config.VocabularySize, DType.F32);
        _tokenRows = [_hidden, _normed, _qkv, _attention, _upGate, _activation];
        if (backend is IForwardRecording recorder) _recordings = new ForwardRecordings(recorder);
    }

    public int MaxRows { get; }

    /// <summary>
    /// Runs the new tokens of every sequence in <paramref name="batch"/> (rows in batch order),
    /// appending their keys and values to <paramref name="cache"/>, and writes the logits of
    /// the rows listed in <paramref name="logitRows"/> to <paramref name="logits"/> (row-major, V per row).
    /// <paramref name="observeLayer"/>, if given, sees the residual stream after each layer (for verification).
    /// </summary>
    public void Forward(ReadOnlySpan<int> tokens, AttentionBatch batch, IKvCache cache,
        ReadOnlySpan<int> logitRows, Span<float> logits, Action<int, ITensor>? observeLayer = null)
    {
        var result = Enqueue(tokens, batch, cache, logitRows, observeLayer);
        if (logitRows.Length > 0) _b.CopyToHost(result, logits[..(logitRows.Length * _c.VocabularySize)]);
    }

    /// <summary>
    /// As <see cref="Forward"/>, but leaves the logits on the backend and returns them
    /// (valid until the next call), so tokens can be picked where the logits are.
    /// Decode steps are recorded once and replayed on backends that can record.
    /// </summary>
    public ITensor Enqueue(ReadOnlySpan<int> tokens, AttentionBatch batch, IKvCache cache,
        ReadOnlySpan<int> logitRows, Action<int, ITensor>? observeLayer = null)
    {
        if (tokens.Length != batch.TotalRows) throw new ArgumentException($"{tokens.Length} tokens for a batch of {batch.TotalRows} rows", nameof(tokens));
        if (logitRows.Length > tokens.Length) throw new ArgumentException($"{logitRows.Length} logit rows for {tokens.Length} tokens", nameof(logitRows));
        if (tokens.Length > MaxRows) throw new ArgumentException($"{tokens.Length} tokens exceed the {MaxRows} rows of one forward call", nameof(tokens));
        SetRows(tokens.Length, logitRows.Length);

        var mode = observeLayer is null && _recordings is not null ? _recordings.Decide(batch, cache, logitRows.Length) : ForwardMode.Eager;
        if (mode == ForwardMode.Record) _recordings!.Recorder.BeginRecording();
        if (mode != ForwardMode.Replay)
        {
            try
            {
                Layers(tokens, batch, cache, observeLayer);
                Logits(logitRows);
            }
            catch
            {
                if (mode == ForwardMode.Record) _recordings!.Recorder.AbortRecording();
                throw;
            }
        }
        if (mode == ForwardMode.Record) _recordings!.Store(_recordings.Recorder.EndRecording());
        if (mode != ForwardMode.Eager) _recordings!.Replay(tokens, batch, logitRows);
        return _logits;
    }

    private void Layers(ReadOnlySpan<int> tokens, AttentionBatch batch, IKvCache cache, Action<int, ITensor>? observeLayer)
    {
        float eps = _c.LayerNormEpsilon;
        _b.Embed(tokens, _w.TokenEmbedding, _c.EmbeddingScale, _hidden);          // h = wte[ids] * mup_embeddings_scale
        for (int l = 0; l < _c.Layers; l++)
        {
            var layer = _w.Layers[l];
            _b.LayerNorm(_hidden, layer.AttentionNorm, eps, _normed);             // a = LayerNorm(h; ln_1)
            _b.Linear(_normed, layer.QkvProjection, _qkv);                         // q,k,v = a @ c_attn
            _b.Attention(_qkv, cache, l, batch, _w.AlibiSlopes, _c.ScoreScale(l), _attention); // causal ALiBi softmax(s) @ v
            _b.Linear(_attention, layer.AttentionOutput, _hidden, accumulate: true); // h += o @ c_proj
            _b.LayerNorm(_hidden, layer.MlpNorm, eps, _normed);                   // m = LayerNorm(h; ln_2)
            _b.Linear(_normed, layer.MlpUpAndGate, _upGate);                       // [u | g] = m @ [c_fc | c_fc2]
            _b.SwiGlu(_upGate, _activation);                                       // u * silu(g)
            _b.Linear(_activation, layer.MlpDown, _hidden, accumulate: true);     // h += ... @ mlp.c_proj
            observeLayer?.Invoke(l, _hidden);
        }
    }

    private void Logits(ReadOnlySpan<int> logitRows)
    {
        if (logitRows.Length == 0) return;
        _b.GatherRows(_hidden, logitRows, _selected);                              // only the rows that need logits
        _b.LayerNorm(_selected, _w.FinalNorm, _c.LayerNormEpsilon, _selectedNormed); // LayerNorm(h; ln_f)
        _b.Linear(_selectedNormed, _w.LanguageModelHead, _logits);                 // h @ lm_head^T
        _b.Scale(_logits, _c.LogitScale);                                          // * mup_output_alpha * mup_width_scale
    }

    private void SetRows(int rows, int logitRows)
    {
        foreach (var t in _tokenRows) t.SetRows(rows);
        if (logitRows > _logits.CapacityRows)
        {
            // Rare (all-position logits over a long chunk): grow once, outside steady decoding.
            // Recordings point at the old tensor, so they go too.
            _recordings?.Dispose();
            _logits.Dispose();
            _logits = _b.Allocate(logitRows, _c.VocabularySize, DType.F32);
        }
        _selected.SetRows(logitRows);
        _selectedNormed.SetRows(logitRows);
        _logits.SetRows(logitRows);
    }

    public void Dispose()
    {
        foreach (var t in _tokenRows) t.Dispose();
        _selected.Dispose();
        _selectedNormed.Dispose();
        _logits.Dispose();
        _recordings?.Dispose();
    }
}
