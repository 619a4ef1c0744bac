using GptJx.Model;
using GptJx.Tensors;

namespace GptJx.Cuda;

/// <summary>
/// Device memory needed to run a model: weights + KV cache + activations + cuBLAS workspace +
/// load staging + a safety margin, computed before anything is loaded so the backend can refuse early.
/// A pure function of its inputs.
/// </summary>
public sealed record CudaMemoryPlan(
    long WeightBytes, long KvCacheBytes, long ActivationBytes, long WorkspaceBytes, long StagingBytes, long MarginBytes,
    int Slots, int Context, int MaxRows)
{
    public const long DefaultWorkspaceBytes = 32L << 20;
    public const long DefaultStagingChunkBytes = 64L << 20;
    public const long MinimumMarginBytes = 256L << 20;
    public const int DecodeChunk = 256;

    public long TotalBytes => WeightBytes + KvCacheBytes + ActivationBytes + WorkspaceBytes + StagingBytes + MarginBytes;

    /// <param name="config">The model (its checkpoint layout sizes the weights).</param>
    /// <param name="weightType">Device weight (and KV-cache) type: fp16 or bf16.</param>
    /// <param name="slots">Sequences decoded together (KV-cache slots).</param>
    /// <param name="context">Positions per slot.</param>
    /// <param name="maxRows">Most token rows in one forward call (prefill chunk); at least <paramref name="slots"/>.</param>
    /// <param name="logitRows">Rows that get logits per call (default: one per slot).</param>
    public static CudaMemoryPlan Compute(ModelConfig config, DType weightType, int slots, int context, int maxRows,
        int? logitRows = null, long workspaceBytes = DefaultWorkspaceBytes, long stagingChunkBytes = DefaultStagingChunkBytes)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (weightType == DType.F32) throw new ArgumentException("the CUDA backend keeps weights in fp16 or bf16", nameof(weightType));
        if (slots < 1) throw new ArgumentOutOfRangeException(nameof(slots), slots, "at least one slot");
        if (context < 1) throw new ArgumentOutOfRangeException(nameof(context), context, "at least one position");
        if (maxRows < 1) throw new ArgumentOutOfRangeException(nameof(maxRows), maxRows, "at least one row");
        long w = weightType.Size();
        long d = config.Width, f = config.FeedForwardWidth, v = config.VocabularySize, l = config.Layers;
        long weights = config.Layout.Sum(t => DeviceBytes(t, w));

        long kv = 2L * l * slots * context * d * w;

        long rows = Math.Max(maxRows, slots);
        long logits = logitRows ?? slots;
        long splits = (context + DecodeChunk - 1) / DecodeChunk;
        long activations =
            rows * d * 4               // fp32 residual stream
            + rows * d * w             // norm output
            + rows * 3 * d * w         // fused qkv
            + rows * d * w             // attention output
            + rows * 2 * f * w         // [u | g]
            + rows * f * w             // SwiGLU output
            + logits * d * (4 + w)     // gathered rows (fp32 and GEMM input)
            + logits * v * 4           // fp32 logits
            + slots * (long)config.Heads * splits * (config.HeadDim + 2) * 4  // flash-decoding partials
            + rows * 4 * 3 + 64 * 1024;  // ids, gather rows, tokens, descriptors

        long staging = 2 * stagingChunkBytes;
        long subtotal = weights + kv + activations + workspaceBytes + staging;
        long margin = Math.Max(MinimumMarginBytes, subtotal / 50);
        return new CudaMemoryPlan(weights, kv, activations, workspaceBytes, staging, margin, slots, context, (int)rows);
    }

    /// <summary>
    /// How the backend stores a checkpoint tensor: matrices in the weight type as [out, in] rows padded to a
    /// multiple of 8 inputs (an untied head too), the embedding table as it is, biases, norms and slopes in fp32.
    /// </summary>
    private static long DeviceBytes(LayoutTensor tensor, long weightSize) => tensor.Kind switch
    {
        WeightKind.Embedding => tensor.ElementCount * weightSize,
        WeightKind.Matrix => tensor.Shape[1] * WeightRows.LeadingDimension((int)tensor.Shape[0]) * weightSize,
        WeightKind.Head => tensor.Shape[0] * WeightRows.LeadingDimension((int)tensor.Shape[1]) * weightSize,
        _ => tensor.ElementCount * 4,
    };

    public bool Fits(long freeBytes) => TotalBytes <= freeBytes;

    /// <summary>Throws <see cref="CudaOutOfMemoryException"/>, with the numbers, when the plan needs more than <paramref name="freeBytes"/>.</summary>
    public void EnsureFits(long freeBytes, long totalBytes, string device)
    {
        if (!Fits(freeBytes)) throw new CudaOutOfMemoryException(RefusalMessage(freeBytes, totalBytes, device), this, freeBytes);
    }

    public string RefusalMessage(long freeBytes, long totalBytes, string device) =>
        $"{device} cannot hold the model: it needs {Describe()}, but only {GiB(freeBytes)} of {GiB(totalBytes)} is free " +
        $"(short by {GiB(TotalBytes - freeBytes)}); lower the context, the batch or the prefill chunk, or free the device";

    /// <summary>"9.53 GiB (weights 4.93 GiB, KV cache 2.50 GiB for 1 x 8192 positions, ...)".</summary>
    public string Describe() =>
        $"{GiB(TotalBytes)} (weights {GiB(WeightBytes)}, KV cache {GiB(KvCacheBytes)} for {Slots} x {Context} positions, " +
        $"activations {GiB(ActivationBytes)} for {MaxRows} rows, cuBLAS workspace {MiB(WorkspaceBytes)}, " +
        $"load staging {MiB(StagingBytes)}, margin {MiB(MarginBytes)})";

    public static string GiB(long bytes) => $"{bytes / (double)(1L << 30):0.00} GiB";
    public static string MiB(long bytes) => $"{bytes / (double)(1L << 20):0} MiB";
}

/// <summary>The device cannot hold what was asked; the message carries the numbers.</summary>
public sealed class CudaOutOfMemoryException : InvalidOperationException
{
    public CudaOutOfMemoryException(string message, CudaMemoryPlan plan, long freeBytes) : base(message)
    {
        Plan = plan;
        FreeBytes = freeBytes;
    }

    public CudaMemoryPlan Plan { get; }
    public long FreeBytes { get; }
}
