using System.Diagnostics;
using GptJx.Backends;
using GptJx.Generation;
using GptJx.Model;

namespace GptJx.Serving;

/// <summary>What one forward step of the engine ran.</summary>
/// <param name="Sequences">Sequences in the step.</param>
/// <param name="DecodeRows">Sequences that generated a token (one row each).</param>
/// <param name="PrefillRows">Prompt tokens prefilled in the step.</param>
public readonly record struct EngineStep(int Sequences, int DecodeRows, int PrefillRows, TimeSpan Duration);

/// <summary>Counters of an engine since it started, and its state now.</summary>
public sealed record EngineStatistics(
    int ActiveSequences, int QueuedRequests, int MaxBatchSize, int MaxQueueLength,
    long SubmittedRequests, long CompletedRequests, long RejectedRequests, long CancelledRequests, long TimedOutRequests, long FailedRequests,
    long PromptTokens, long GeneratedTokens, long Steps);

/// <summary>
/// Serves many concurrent generations from one loaded model. Thread-safe: submit from any
/// thread. One engine thread owns the forward loop: each step runs one decode row of every
/// active sequence plus, within a token budget, a chunk of a prompt being prefilled, as ONE
/// batched forward over a multi-slot KV cache (continuous batching: requests join between
/// steps and leave as soon as they finish). A request's tokens do not depend on what else is
/// in the batch: each has its own sampler, and every row is computed on its own.
/// Disposing the engine ends every request and frees the KV cache (and the model, if owned).
/// </summary>
public sealed class InferenceEngine : IDisposable, IAsyncDisposable
{
    private readonly GptJxModel _model;
    private readonly bool _ownsModel;
    private readonly IKvCache _cache;
    private readonly Transformer _transformer;
    private readonly Scheduler _scheduler;
    private readonly KvSlotPool _slots;
    private readonly float[] _logits;
    private readonly TokenDraw[] _draws;
    private readonly int[] _picked;
    private bool _pickedOnDevice;
    private readonly int _slotPositions;
    private readonly LinkedList<EngineSequence> _queue = new();
    private readonly List<EngineSequence> _active = [];
    private readonly ManualResetEventSlim _wake = new(false);
    private readonly Thread _thread;
    private long _nextId;
    private volatile bool _stopping;
    private int _disposed;
    private volatile int _activeCount;
    private long _submitted, _completed, _rejected, _cancelled, _timedOut, _failed, _promptTokens, _generatedTokens, _steps;

    /// <summary>Serves <paramref name="model"/>; with <paramref name="ownsModel"/>, disposing the engine disposes the model.</summary>
    public InferenceEngine(GptJxModel model, EngineOptions? options = null, bool ownsModel = false)
    {
        ArgumentNullException.ThrowIfNull(model);
        options ??= new EngineOptions();
        options.Validate();
        _model = model;
        _ownsModel = ownsModel;
        Options = options;
        var config = model.Config;
        _slotPositions = Math.Min(options.MaxSequenceLength ?? config.ContextLength, config.ContextLength);
        // A chunk longer than a slot would never be filled.
        _scheduler = new Scheduler(options.MaxBatchSize, Math.Min(options.PrefillChunk, _slotPositions), config.AlibiScaling);
        _slots = new KvSlotPool(options.MaxBatchSize);
        _logits = new float[(long)options.MaxBatchSize * config.VocabularySize];
        _draws = new TokenDraw[options.MaxBatchSize];
        _picked = new int[options.MaxBatchSize];
        _cache = model.CreateKvCache(options.MaxBatchSize, _slotPositions);
        try
        {
            _transformer = model.CreateTransformer(_scheduler.MaxRows, options.MaxBatchSize);
        }
        catch
        {
            _cache.Dispose();
            throw;
        }
        _thread = new Thread(Run) { Name = "gptjx-engine", IsBackground = true };
        _thread.Start();
    }

    /// <summary>Loads the checkpoint folder onto <paramref name="backend"/> and serves it; the engine owns the model.</summary>
    public static InferenceEngine Load(string directory, IBackend backend, EngineOptions? options = null, ModelLoadOptions? loadOptions = null)
    {
        var model = GptJxModel.Load(directory, backend, loadOptions);
        try
        {
            return new InferenceEngine(model, options, ownsModel: true);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    public GptJxModel Model => _model;

    public EngineOptions Options { get; }

    /// <summary>Positions of one KV-cache slot: the longest prompt plus generation a request may have.</summary>
    public int MaxSequenceLength => _slotPositions;

    /// <summary>Raised on the engine thread after every forward step; handlers must be quick.</summary>
    public event Action<EngineStep>? StepCompleted;

    /// <summary>Sequences holding a KV slot now.</summary>
    public int ActiveSequences => _activeCount;

    /// <summary>Requests waiting for a slot now.</summary>
    public int QueuedRequests
    {
        get { lock (_queue) return _queue.Count; }
    }

    public EngineStatistics GetStatistics() => new(
        ActiveSequences, QueuedRequests, Options.MaxBatchSize, Options.MaxQueueLength,
        Interlocked.Read(ref _submitted), Interlocked.Read(ref _completed), Interlocked.Read(ref _rejected),
        Interlocked.Read(ref _cancelled), Interlocked.Read(ref _timedOut), Interlocked.Read(ref _failed),
        Interlocked.Read(ref _promptTokens), Interlocked.Read(ref _generatedTokens), Interlocked.Read(ref _steps));

    /// <summary>
    /// Queues a request and returns its token stream at once. Bad parameters throw
    /// <see cref="InvalidArgumentException"/> (naming the parameter); a full queue throws
    /// <see cref="EngineOverloadedException"/>. <paramref name="cancellationToken"/> cancels the
    /// request whether it is queued or generating, and frees its slot.
    /// </summary>
    public GenerationStream Submit(GenerationRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        ObjectDisposedException.ThrowIf(_stopping, this);
        request.Options.Validate();
        if (request.TopLogprobs is < 0 or > EngineOptions.MaxTopLogprobs)
            throw new InvalidArgumentException(nameof(request.TopLogprobs), $"must be 0..{EngineOptions.MaxTopLogprobs} (got {request.TopLogprobs})");
        if (request.Timeout is { } t) EngineOptions.CheckTimeout(nameof(request.Timeout), t);

        var generation = new GenerationState(_model, request.PromptIds ?? _model.Encode(request.Prompt ?? ""), request.Options, _slotPositions,
            $"a request holds at most {_slotPositions} tokens, prompt and generated");
        TimeSpan? timeout = (request.Timeout, Options.RequestTimeout) switch
        {
            ({ } a, { } b) => a < b ? a : b,
            (var a, var b) => a ?? b,
        };
        var sequence = new EngineSequence(Interlocked.Increment(ref _nextId), generation, request.TopLogprobs, timeout, cancellationToken);
        var stream = new GenerationStream(sequence);

        if (generation.NothingToGenerate)
        {
            // Nothing to generate (as TextGenerator): the prompt is not even run.
            Interlocked.Increment(ref _submitted);
            Interlocked.Add(ref _promptTokens, generation.Prompt.Length);
            sequence.Finish = FinishReason.Length;
            sequence.Complete();
            Interlocked.Increment(ref _completed);
            return stream;
        }

        // Registered before queuing: a token cancelled already calls back at once and the engine drops the request.
        sequence.Abort.Token.Register(static state =>
        {
            var (engine, s) = ((InferenceEngine, EngineSequence))state!;
            engine.OnAbort(s);
        }, (this, sequence));
        lock (_queue)
        {
            if (_stopping)
            {
                sequence.Complete();
                throw new ObjectDisposedException(nameof(InferenceEngine));
            }
            // At most MaxBatchSize + MaxQueueLength requests are in the engine; free slots take waiting requests first.
            long room = (long)Options.MaxQueueLength + Options.MaxBatchSize - _activeCount;
            if (_queue.Count >= room)
            {
                Interlocked.Increment(ref _rejected);
                sequence.Complete();
                throw new EngineOverloadedException(_queue.Count);
            }
            sequence.QueueNode = _queue.AddLast(sequence);
        }
        Interlocked.Increment(ref _submitted);
        Interlocked.Add(ref _promptTokens, generation.Prompt.Length);
        _wake.Set();
        return stream;
    }

    /// <summary>Streams the tokens of <paramref name="request"/> (submits it first: a full queue throws at once).</summary>
    public IAsyncEnumerable<EngineToken> GenerateAsync(GenerationRequest request, CancellationToken cancellationToken = default)
    {
        var stream = Submit(request, cancellationToken);
        return Read(stream, cancellationToken);

        static async IAsyncEnumerable<EngineToken> Read(GenerationStream stream, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
        {
            await foreach (var token in stream.WithCancellation(cancellationToken).ConfigureAwait(false))
                yield return token;
        }
    }

    /// <summary>Generates the whole completion of <paramref name="request"/>.</summary>
    public Task<GenerationResult> CompleteAsync(GenerationRequest request, CancellationToken cancellationToken = default) =>
        Submit(request, cancellationToken).ReadToEndAsync(cancellationToken);

    private void OnAbort(EngineSequence sequence)
    {
        bool removed = false;
        lock (_queue)
        {
            if (sequence.QueueNode is { } node)
            {
                _queue.Remove(node);
                sequence.QueueNode = null;
                removed = true;
            }
        }
        if (removed) End(sequence, sequence.AbortReason());
        else _wake.Set(); // active: the engine frees its slot before the next step
    }

    // ---- the engine thread ------------------------------------------------------

    private void Run()
    {
        var clock = new Stopwatch();
        while (!_stopping)
        {
            _wake.Reset();
            DropAborted();
            Admit();
            if (!_scheduler.Plan(_active))
            {
                _wake.Wait();
                continue;
            }

            clock.Restart();
            try
            {
                bool allowDevice = DrawTokens();
                _pickedOnDevice = _model.ForwardAndPick(_transformer, _scheduler.Tokens, _scheduler.Batch, _cache, _scheduler.LogitRows,
                    _draws.AsSpan(0, _scheduler.LogitCount), allowDevice, _picked, _logits);
            }
            catch (Exception e)
            {
                // The step's sequences cannot go on (their caches are incomplete); the others can.
                for (int i = 0; i < _scheduler.MemberCount; i++) Leave(_scheduler.Member(i), e);
                _scheduler.Reset();
                continue;
            }
            Interlocked.Increment(ref _steps);
            for (int i = 0; i < _scheduler.MemberCount; i++) Advance(i);
            var step = new EngineStep(_scheduler.MemberCount, _scheduler.DecodeRows, _scheduler.PrefillRows, clock.Elapsed);
            _scheduler.Reset();
            try { StepCompleted?.Invoke(step); } catch { /* an observer's failure is not the requests' */ }
        }
        // Disposing: everything still here ends.
        foreach (var s in _active.ToArray()) Leave(s, new ObjectDisposedException(nameof(InferenceEngine), "the engine was disposed"));
    }

    private void DropAborted()
    {
        for (int i = _active.Count - 1; i >= 0; i--)
            if (_active[i].Aborted) Leave(_active[i], _active[i].AbortReason());
    }

    private void Admit()
    {
        while (_slots.InUse < _slots.Capacity)
        {
            EngineSequence? next;
            lock (_queue)
            {
                if (_queue.First is not { } node) return;
                next = node.Value;
                _queue.RemoveFirst();
                next.QueueNode = null;
                _activeCount = _active.Count + 1; // counted as active before it leaves the queue's count
            }
            if (next.Aborted)
            {
                _activeCount = _active.Count;
                End(next, next.AbortReason());
                continue;
            }
            _slots.TryRent(out next.Slot);
            next.AdmittedAt = Stopwatch.GetTimestamp();
            _active.Add(next);
            _activeCount = _active.Count;
        }
    }

    /// <summary>
    /// Draws the random number of every member that gets a token this step (one per token, so a
    /// request's draws do not depend on its batch); says whether the backend may pick them all.
    /// </summary>
    private bool DrawTokens()
    {
        bool allowDevice = true;
        for (int i = 0; i < _scheduler.MemberCount; i++)
        {
            int logitIndex = _scheduler.MemberLogitIndex(i);
            if (logitIndex < 0) continue;
            var s = _scheduler.Member(i);
            _draws[logitIndex] = s.Generation.Sampler.Draw();
            allowDevice &= s.Generation.Sampler.CanPickOnDevice && s.TopLogprobs is null;
        }
        return allowDevice;
    }

    /// <summary>Member i of the finished step: its rows are now cached; sample if it has logits.</summary>
    private void Advance(int i)
    {
        var s = _scheduler.Member(i);
        s.Cached += _scheduler.MemberRows(i);
        int logitIndex = _scheduler.MemberLogitIndex(i);
        if (logitIndex < 0) return;
        s.Decoding = true;
        int vocabulary = _model.VocabularySize;
        var logits = _logits.AsSpan(logitIndex * vocabulary, vocabulary);
        try
        {
            Sample(s, logits, _draws[logitIndex], _picked[logitIndex]);
        }
        catch (Exception e)
        {
            Leave(s, e);
        }
    }

    /// <summary>One token of the generation loop <see cref="TextGenerator.Generate"/> runs (both drive a <see cref="GenerationState"/>).</summary>
    /// <param name="picked">The token the backend picked, when it did; else the host picks from <paramref name="logits"/>.</param>
    private void Sample(EngineSequence s, Span<float> logits, TokenDraw draw, int picked)
    {
        if (s.TopLogprobs is not null)
        {
            s.RawLogits ??= new float[logits.Length];
            logits.CopyTo(s.RawLogits);
        }
        int token = s.Generation.Sampler.Take(_pickedOnDevice ? picked : null, logits, draw);
        var logprobs = s.TopLogprobs is { } top ? Logprobs.Compute(s.RawLogits, token, top) : null;
        Interlocked.Increment(ref _generatedTokens);
        var (text, finish) = s.Generation.Accept(token, s.Cached);
        Emit(s, new EngineToken(token, text, finish, logprobs));
        if (finish == FinishReason.None) s.Pending = token;
    }

    private void Emit(EngineSequence s, EngineToken token)
    {
        if (token.Finish != FinishReason.None) s.Finish = token.Finish;
        s.Output.Writer.TryWrite(token);
        if (token.Finish != FinishReason.None) Leave(s, null);
    }

    /// <summary>Frees the slot of an active sequence at once and ends its stream.</summary>
    private void Leave(EngineSequence s, Exception? error)
    {
        if (s.Slot >= 0)
        {
            _slots.Return(s.Slot);
            s.Slot = -1;
        }
        _active.Remove(s);
        _activeCount = _active.Count;
        End(s, error);
    }

    private void End(EngineSequence s, Exception? error)
    {
        if (!s.Complete(error)) return;
        switch (error)
        {
            case null: Interlocked.Increment(ref _completed); break;
            case TimeoutException: Interlocked.Increment(ref _timedOut); break;
            case OperationCanceledException: Interlocked.Increment(ref _cancelled); break;
            default: Interlocked.Increment(ref _failed); break;
        }
    }

    // ---- disposal ---------------------------------------------------------------

    /// <summary>Ends every queued and active request (their readers see <see cref="ObjectDisposedException"/>), stops the engine thread and frees the KV cache, and the model if owned.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        EngineSequence[] queued;
        lock (_queue)
        {
            _stopping = true;
            queued = [.. _queue];
            _queue.Clear();
            foreach (var s in queued) s.QueueNode = null;
        }
        foreach (var s in queued) End(s, new ObjectDisposedException(nameof(InferenceEngine), "the engine was disposed"));
        _wake.Set();
        if (Thread.CurrentThread != _thread) _thread.Join();
        _transformer.Dispose();
        _cache.Dispose();
        if (_ownsModel) _model.Dispose();
        _wake.Dispose();
    }

    public ValueTask DisposeAsync()
    {
        Dispose();
        return ValueTask.CompletedTask;
    }
}
