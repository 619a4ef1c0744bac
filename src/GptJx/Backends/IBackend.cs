using GptJx.Checkpoints;
using GptJx.Tensors;

namespace GptJx.Backends;

/// <summary>
/// The narrow set of fused operations the forward pass is written against
/// (see Model/Transformer.cs). Backends implement ops, not models.
/// All matrices are row-major; activations are [rows, columns] with one row
/// per token. Calls are made from one thread at a time per backend.
/// </summary>
public interface IBackend : IDisposable
{
    /// <summary>Short name for messages and benchmarks, e.g. "cpu" or "cuda:0 (NVIDIA H200)".</summary>
    string Name { get; }

    /// <summary>Type of the activations that feed matrix products (fp32 on the CPU, fp16/bf16 on a GPU).</summary>
    DType ComputeType { get; }

    /// <summary>Type the weights are kept in on this backend.</summary>
    DType WeightType { get; }

    // ---- weights --------------------------------------------------------

    /// <summary>Token embedding table [V, D].</summary>
    IEmbedding LoadEmbedding(TensorData table);

    /// <summary>
    /// A linear layer y = x W + b. The weight is the concatenation, along the
    /// output dimension, of <paramref name="weights"/> (each stored [in, out] when
    /// <paramref name="layout"/> is InOut, GPT-2 Conv1D; [out, in] when OutIn,
    /// nn.Linear / tied embeddings). Biases are concatenated the same way; null means no bias.
    /// </summary>
    ILinear LoadLinear(IReadOnlyList<TensorData> weights, IReadOnlyList<TensorData>? biases, WeightLayout layout);

    /// <summary>LayerNorm gain and bias, [D] each.</summary>
    INorm LoadNorm(TensorData gain, TensorData? bias);

    /// <summary>
    /// Called once the weights are loaded: waits for any copies still in flight (the checkpoint
    /// may be unmapped next) and frees load-time buffers.
    /// </summary>
    void EndLoading();

    // ---- activations and cache -----------------------------------------

    /// <summary>An activation buffer of up to <paramref name="capacityRows"/> rows.</summary>
    ITensor Allocate(int capacityRows, int columns, DType type);

    /// <summary>Key/value cache: <paramref name="slots"/> sequences of up to <paramref name="maxPositions"/> positions.</summary>
    IKvCache CreateKvCache(int layers, int slots, int maxPositions, int heads, int headDim);

    // ---- fused operations ----------------------------------------------

    /// <summary>output[t] = table[ids[t]] * scale (fp32 residual stream).</summary>
    void Embed(ReadOnlySpan<int> ids, IEmbedding table, float scale, ITensor output);

    /// <summary>output = LayerNorm(input) with fp32 statistics, written in output's type.</summary>
    void LayerNorm(ITensor input, INorm norm, float epsilon, ITensor output);

    /// <summary>output = input W + b, or output += input W + b when <paramref name="accumulate"/> (the residual add).</summary>
    void Linear(ITensor input, ILinear weight, ITensor output, bool accumulate = false);

    /// <summary>
    /// Causal ALiBi attention. <paramref name="qkv"/> holds [q | k | v] per row (3 D columns).
    /// For each sequence of <paramref name="batch"/>, its k and v rows are first written into
    /// the cache slot at positions StartPosition.., then each query at absolute position i
    /// attends to cache positions j in 0..i with score (q.k) * scoreScale - slope[h] * AlibiScale * (i - j).
    /// The merged heads [rows, D] go to <paramref name="output"/>.
    /// </summary>
    void Attention(ITensor qkv, IKvCache cache, int layer, AttentionBatch batch, float[] slopes, float scoreScale, ITensor output);

    /// <summary>input holds [u | g] ([rows, 2F]); output[rows, F] = u * silu(g).</summary>
    void SwiGlu(ITensor input, ITensor output);

    /// <summary>output[i] = input[rows[i]] (selects the positions that need logits).</summary>
    void GatherRows(ITensor input, ReadOnlySpan<int> rows, ITensor output);

    /// <summary>tensor *= factor.</summary>
    void Scale(ITensor tensor, float factor);

    /// <summary>Copies an fp32 tensor's active rows to the host, row-major.</summary>
    void CopyToHost(ITensor tensor, Span<float> destination);

    /// <summary>Blocks until queued work is done (a no-op on synchronous backends).</summary>
    void Synchronize();
}

public enum WeightLayout
{
    /// <summary>Stored [in, out]: GPT-2 Conv1D, y = x W.</summary>
    InOut,
    /// <summary>Stored [out, in]: nn.Linear and the (tied) embedding, y = x W^T.</summary>
    OutIn,
}

/// <summary>An activation buffer. <see cref="Rows"/> is the active row count (at most <see cref="CapacityRows"/>).</summary>
public interface ITensor : IDisposable
{
    int Rows { get; }
    int Columns { get; }
    int CapacityRows { get; }
    DType Type { get; }

    /// <summary>Sets the active row count for the next operations; allocates nothing.</summary>
    void SetRows(int rows);
}

public interface IEmbedding : IDisposable
{
    int Rows { get; }
    int Columns { get; }
}

public interface ILinear : IDisposable
{
    int InFeatures { get; }
    int OutFeatures { get; }
}

public interface INorm : IDisposable
{
    int Width { get; }
}

public interface IKvCache : IDisposable
{
    int Layers { get; }
    int Slots { get; }
    int MaxPositions { get; }
}

/// <summary>
/// The sequences of one forward call. Rows of the activations are the sequences'
/// new tokens, one sequence after another.
/// </summary>
public sealed class AttentionBatch
{
    public AttentionBatch(int capacity)
    {
        Sequences = new SequenceSpan[capacity];
    }

    /// <summary>Storage for up to capacity sequences; the first <see cref="Count"/> are active.</summary>
    public SequenceSpan[] Sequences { get; }

    public int Count { get; private set; }

    public int TotalRows { get; private set; }

    public void Clear()
    {
        Count = 0;
        TotalRows = 0;
    }

    /// <summary>
    /// Appends a sequence whose <paramref name="tokens"/> new tokens start at <paramref name="startPosition"/>
    /// in cache slot <paramref name="slot"/>. <paramref name="alibiScale"/> multiplies the ALiBi slopes
    /// for this sequence (1 unless the config's alibi_scaling stretches them).
    /// </summary>
    public void Add(int slot, int startPosition, int tokens, float alibiScale = 1f)
    {
        if (Count == Sequences.Length) throw new InvalidOperationException($"batch holds at most {Sequences.Length} sequences");
        Sequences[Count++] = new SequenceSpan(slot, startPosition, TotalRows, tokens, alibiScale);
        TotalRows += tokens;
    }

    public ReadOnlySpan<SequenceSpan> Active => Sequences.AsSpan(0, Count);
}

/// <param name="Slot">KV-cache slot of the sequence.</param>
/// <param name="StartPosition">Absolute position of its first new token (= tokens already cached).</param>
/// <param name="FirstRow">Row of its first new token in the activations.</param>
/// <param name="Length">Number of new tokens.</param>
/// <param name="AlibiScale">Factor applied to every head's slope for this sequence.</param>
public readonly record struct SequenceSpan(int Slot, int StartPosition, int FirstRow, int Length, float AlibiScale);
