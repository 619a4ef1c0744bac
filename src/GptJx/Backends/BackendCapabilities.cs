namespace GptJx.Backends;

/// <summary>
/// Optional capability: the backend refuses NaN and infinite weights itself while it packs or
/// streams them (with <see cref="Checkpoints.FiniteWeights"/>' errors), so the loader does not
/// read every weight a second time to check them.
/// </summary>
public interface IFiniteWeightCheck;

/// <summary>
/// Optional capability: record the ops of one forward call once and replay them with new
/// token ids and sequence positions (CUDA graphs), which removes per-op launch costs from decoding.
/// A recording stays bound to the tensors and KV cache it was recorded with.
/// </summary>
public interface IForwardRecording
{
    /// <summary>Starts recording: ops are recorded, not run, until <see cref="EndRecording"/>.</summary>
    void BeginRecording();

    /// <summary>Ends recording and returns the replayable recording.</summary>
    IDisposable EndRecording();

    /// <summary>Abandons a recording after a failure.</summary>
    void AbortRecording();

    /// <summary>Runs a recording with new inputs of the same shape (rows, sequences, logit rows).</summary>
    void Replay(IDisposable recording, ReadOnlySpan<int> ids, AttentionBatch batch, ReadOnlySpan<int> logitRows);
}

/// <summary>
/// Optional capability: choose next tokens where the logits are, so that only token ids,
/// not V logits per row, are copied back to the host.
/// </summary>
public interface IDeviceTokenPicker
{
    /// <summary>
    /// One token per row of <paramref name="logits"/>, following <paramref name="draws"/> (one per row).
    /// A row with a NaN or infinite logit gets an id outside the vocabulary (callers raise
    /// <see cref="Generation.NonFiniteLogitsException"/>), as the host sampler refuses such rows.
    /// </summary>
    void PickTokens(ITensor logits, ReadOnlySpan<TokenDraw> draws, Span<int> tokens);
}

/// <summary>
/// How to pick one token: argmax when <paramref name="Temperature"/> is 0; otherwise sampling
/// at that temperature among the top-k / top-p candidates, using <paramref name="Uniform"/>
/// (drawn by the host's seeded generator) as the random number.
/// </summary>
public readonly record struct TokenDraw(float Temperature, int TopK, float TopP, float Uniform)
{
    public static TokenDraw Greedy => new(0f, 0, 1f, 0f);
}

/// <summary>
/// Optional capability: counts the kernels the backend runs on its device (eager launches and
/// library calls, and every kernel of a replayed recording), so `gptjx bench` can report the
/// launches one decode step costs.
/// </summary>
public interface IKernelLaunchCounter
{
    /// <summary>Kernels run since the backend was created.</summary>
    long KernelLaunches { get; }
}
