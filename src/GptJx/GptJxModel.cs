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

    /// <summary>Largest <see cref="PrefillChunk"/> (scratch memory grows with it; a chunk beyond the context is never used).</summary>
    public const int MaxPrefillChunk = 65536;

    /// <summary>Reports load progress from 0 to 1.</summary>
    public IProgress<double>? Progress { get; init; }

    /// <summary>Receives warnings (unknown config keys, unused tensors).</summary>
    public Action<string>? Warning { get; init; }

    public void Validate()
    {
        if (PrefillChunk is < 1 or > MaxPrefillChunk)
            throw new InvalidArgumentException(nameof(PrefillChunk), $"must be 1..{MaxPrefillChunk} tokens (got {PrefillChunk})");
    }
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
            options.Validate();
            var config = ModelConfig.Load(directory);
            foreach (var key in config.UnknownKeys) options.Warning?.Invoke($"config.json: unknown key '{key}' ignored");
            var tokenizer = Gpt2Tokenizer.Load(directory);
            // The model may pick any id of its vocabulary; each must decode.
            if (tokenizer.VocabularySize < config.VocabularySize)
                throw new ModelConfigException(Path.Combine(directory, "config.json"), "vocab_size",
                    $"{config.VocabularySize} is larger than the tokenizer's vocabulary of {tokenizer.VocabularySize} ({tokenizer.Source}): ids it cannot decode could be generated");
            using var source = CheckpointLoader.Open(directory);
            var weights = ModelWeights.Bind(config, source, backend, options.Progress);
            backend.EndLoading();
            foreach (var name in weights.UnusedTensors) options.Warning?.Invoke($"{source.Location}: tensor '{name}' is not used by GPT-JX and was ignored");
            // A chunk longer than the context would never be filled.
            return new GptJxModel(Path.GetFullPath(directory), config, tokenizer, backend, weights, Math.Min(options.PrefillChunk, config.ContextLength));
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
            throw new InvalidArgumentException(nameof(capacity), $"must be 1..{Config.ContextLength}, the model's context (got {size})");
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
                throw new InvalidArgumentException(what, $"token id {id} is outside the model's vocabulary of {Config.VocabularySize}");
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
    /// One forward call of <paramref name="transformer"/> (null: the model's own) that ends in one
    /// token per logit row: picked by the backend, following <paramref name="draws"/>, when it can
    /// and <paramref name="allowDevice"/> (returns true; only the ids crossed to the host), else
    /// the logits are copied to <paramref name="hostLogits"/> for the caller to pick (returns false).
    /// </summary>
    internal bool ForwardAndPick(Transformer? transformer, ReadOnlySpan<int> tokens, AttentionBatch batch, IKvCache cache,
        ReadOnlySpan<int> logitRows, ReadOnlySpan<TokenDraw> draws, bool allowDevice, Span<int> picked, Span<float> hostLogits)
    {
        lock (_forwardLock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var logits = (transformer ?? _transformer).Enqueue(tokens, batch, cache, logitRows);
            if (allowDevice && Backend is IDeviceTokenPicker picker)
            {
                picker.PickTokens(logits, draws, picked);
                return true;
            }
            Backend.CopyToHost(logits, hostLogits[..(logitRows.Length * Config.VocabularySize)]);
            return false;
        }
    }

    /// <summary>Most tokens one forward call takes (the prefill chunk).</summary>
    public int MaxRowsPerForward => _transformer.MaxRows;

    /// <summary>
    /// A forward pass with its own scratch for up to <paramref name="maxRows"/> rows per call
    /// (a serving engine's per-step token budget), over this model's weights. The caller owns it
    /// and runs it through <see cref="ForwardAndPick"/>.
    /// </summary>
    internal Transformer CreateTransformer(int maxRows, int maxLogitRows)
    {
        lock (_forwardLock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return new Transformer(Config, Weights, Backend, maxRows, maxLogitRows);
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
