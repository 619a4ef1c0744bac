using GptJx.Backends;
using GptJx.Checkpoints;
using GptJx.Generation;
using GptJx.Model;
using GptJx.Tokenization;

namespace GptJx;

public sealed record ModelLoadOptions
{
    /// <summary>Most tokens one forward call processes; longer prompts are prefilled in chunks of this size.</summary>
    public int PrefillChunk { get; init; } = 256;

    /// <summary>Reports load progress from 0 to 1.</summary>
    public IProgress<double>? Progress { get; init; }

    /// <summary>Receives warnings (unknown config keys, unused tensors).</summary>
    public Action<string>? Warning { get; init; }
}

/// <summary>
/// A loaded GPT-JX model: config, tokenizer and weights bound on a backend. Thread-safe:
/// forward calls are serialized; each <see cref="Sequence"/> has its own KV cache.
/// Disposing the model releases the backend and everything on it.
/// </summary>
public sealed class GptJxModel : IDisposable
{
    private readonly object _forwardLock = new();
    private readonly Transformer _transformer;
    private bool _disposed;

    private GptJxModel(string location, ModelConfig config, Gpt2Tokenizer tokenizer, IBackend backend, ModelWeights weights, int prefillChunk)
    {
        Location = location;
        Config = config;
        Tokenizer = tokenizer;
        Backend = backend;
        Weights = weights;
        _transformer = new Transformer(config, weights, backend, prefillChunk, maxLogitRows: 1);
    }

    public string Location { get; }
    public ModelConfig Config { get; }
    public Gpt2Tokenizer Tokenizer { get; }
    public IBackend Backend { get; }
    internal ModelWeights Weights { get; }
    public int VocabularySize => Config.VocabularySize;

    /// <summary>Loads the checkpoint folder <paramref name="directory"/> onto <paramref name="backend"/>, which the model then owns.</summary>
    public static GptJxModel Load(string directory, IBackend backend, ModelLoadOptions? options = null)
    {
        options ??= new ModelLoadOptions();
        try
        {
            var config = ModelConfig.Load(directory);
            foreach (var key in config.UnknownKeys) options.Warning?.Invoke($"config.json: unknown key '{key}' ignored");
            var tokenizer = Gpt2Tokenizer.Load(directory);
            using var source = CheckpointLoader.Open(directory);
            var weights = ModelWeights.Bind(config, source, backend, options.Progress);
            foreach (var name in weights.UnusedTensors) options.Warning?.Invoke($"{source.Location}: tensor '{name}' is not used by GPT-JX and was ignored");
            return new GptJxModel(Path.GetFullPath(directory), config, tokenizer, backend, weights, options.PrefillChunk);
        }
        catch
        {
            backend.Dispose();
            throw;
        }
    }

    /// <summary>A new sequence with room for <paramref name="capacity"/> tokens (default: the full context).</summary>
    public Sequence CreateSequence(int? capacity = null)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        int size = capacity ?? Config.ContextLength;
        if (size < 1 || size > Config.ContextLength)
            throw new ArgumentOutOfRangeException(nameof(capacity), size, $"sequence capacity must be 1..{Config.ContextLength} (the model's context)");
        return new Sequence(this, Backend.CreateKvCache(Config.Layers, 1, size, Config.Heads, Config.HeadDim));
    }

    /// <summary>Tokenizes <paramref name="text"/> and checks every id fits the model's vocabulary.</summary>
    public int[] Encode(string text, bool parseSpecialTokens = false)
    {
        var ids = Tokenizer.Encode(text, parseSpecialTokens);
        CheckIds(ids, "prompt");
        return ids;
    }

    internal void CheckIds(ReadOnlySpan<int> ids, string what)
    {
        foreach (int id in ids)
            if ((uint)id >= (uint)Config.VocabularySize)
                throw new ArgumentOutOfRangeException(what, id, $"{what} token id {id} is outside the model's vocabulary of {Config.VocabularySize}");
    }

    /// <summary>One forward call under the model's lock.</summary>
    internal void Forward(ReadOnlySpan<int> tokens, AttentionBatch batch, IKvCache cache, ReadOnlySpan<int> logitRows, Span<float> logits, Action<int, ITensor>? observeLayer = null)
    {
        lock (_forwardLock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _transformer.Forward(tokens, batch, cache, logitRows, logits, observeLayer);
        }
    }

    /// <summary>
    /// One forward call that ends by picking a token for each logit row with that row's sampler
    /// and draw: on the backend when it can and every sampler allows it (only ids come back),
    /// else on the host, with <paramref name="hostLogits"/> as scratch.
    /// </summary>
    internal void ForwardAndPick(ReadOnlySpan<int> tokens, AttentionBatch batch, IKvCache cache, ReadOnlySpan<int> logitRows,
        ReadOnlySpan<Sampler> samplers, ReadOnlySpan<TokenDraw> draws, Span<float> hostLogits, Span<int> picked)
    {
        bool onDevice = true;
        foreach (var s in samplers) onDevice &= s.CanPickOnDevice;
        lock (_forwardLock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var logits = _transformer.Enqueue(tokens, batch, cache, logitRows);
            if (onDevice && Backend is IDeviceTokenPicker picker)
            {
                picker.PickTokens(logits, draws, picked);
                return;
            }
            int v = Config.VocabularySize;
            Backend.CopyToHost(logits, hostLogits[..(logitRows.Length * v)]);
            for (int i = 0; i < logitRows.Length; i++) picked[i] = samplers[i].Next(hostLogits.Slice(i * v, v), draws[i]);
        }
    }

    /// <summary>Most tokens one forward call takes (the prefill chunk).</summary>
    public int MaxRowsPerForward => _transformer.MaxRows;

    /// <summary>
    /// A forward pass with its own scratch for up to <paramref name="maxRows"/> rows per call
    /// (a serving engine's per-step token budget), over this model's weights. The caller owns it
    /// and runs it through <see cref="Forward(Transformer, ReadOnlySpan{int}, AttentionBatch, IKvCache, ReadOnlySpan{int}, Span{float})"/>.
    /// </summary>
    internal Transformer CreateTransformer(int maxRows, int maxLogitRows)
    {
        lock (_forwardLock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return new Transformer(Config, Weights, Backend, maxRows, maxLogitRows);
        }
    }

    /// <summary>One forward call of <paramref name="transformer"/> under the model's lock (the backend serves one caller at a time).</summary>
    internal void Forward(Transformer transformer, ReadOnlySpan<int> tokens, AttentionBatch batch, IKvCache cache, ReadOnlySpan<int> logitRows, Span<float> logits)
    {
        lock (_forwardLock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            transformer.Forward(tokens, batch, cache, logitRows, logits);
        }
    }

    /// <summary>A key/value cache of <paramref name="slots"/> sequences of up to <paramref name="maxPositions"/> positions each.</summary>
    internal IKvCache CreateKvCache(int slots, int maxPositions)
    {
        lock (_forwardLock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return Backend.CreateKvCache(Config.Layers, slots, maxPositions, Config.Heads, Config.HeadDim);
        }
    }

    /// <summary>
    /// Streams generated text for <paramref name="prompt"/>. Runs on a worker thread;
    /// cancellation stops after the current step and frees the sequence.
    /// </summary>
    public IAsyncEnumerable<GeneratedToken> GenerateAsync(string prompt, GenerationOptions options, CancellationToken cancellationToken = default) =>
        TextGenerator.GenerateAsync(this, prompt, options, cancellationToken);

    public void Dispose()
    {
        lock (_forwardLock)
        {
            if (_disposed) return;
            _disposed = true;
            _transformer.Dispose();
            Weights.Dispose();
            Backend.Dispose();
        }
    }
}
