using System.Numerics.Tensors;
using GptJx.Checkpoints;
using GptJx.Tensors;

namespace GptJx.Backends.Cpu;

/// <summary>
/// The reference backend: fp32 arithmetic on every core, weights kept in their
/// 16-bit (or fp32) type as packed [out, in] rows.
/// </summary>
public sealed unsafe class CpuBackend : IBackend
{
    private readonly List<IDisposable> _owned = [];
    private readonly Dictionary<nint, CpuMatrix> _embeddings = [];

    /// <param name="weightType">Type weights are kept in; null keeps each tensor's checkpoint type.</param>
    public CpuBackend(DType? weightType = null)
    {
        RequestedWeightType = weightType;
    }

    public string Name => $"cpu ({Environment.ProcessorCount} threads)";
    public DType ComputeType => DType.F32;
    public DType WeightType => RequestedWeightType ?? LoadedWeightType ?? DType.F32;
    private DType? RequestedWeightType { get; }
    private DType? LoadedWeightType { get; set; }

    private T Own<T>(T item) where T : IDisposable
    {
        _owned.Add(item);
        return item;
    }

    private DType TypeFor(TensorData tensor)
    {
        var type = RequestedWeightType ?? tensor.Info.DType;
        LoadedWeightType ??= type;
        return type;
    }

    public IEmbedding LoadEmbedding(TensorData table)
    {
        var matrix = Own(CpuMatrix.Pack([table], null, WeightLayout.OutIn, TypeFor(table)));
        _embeddings[(nint)table.Pointer] = matrix;
        return matrix;
    }

    public ILinear LoadLinear(IReadOnlyList<TensorData> weights, IReadOnlyList<TensorData>? biases, WeightLayout layout)
    {
        // A tied head reads the embedding table already packed as [V, D] rows: share it.
        if (layout == WeightLayout.OutIn && weights.Count == 1 && biases is null &&
            _embeddings.TryGetValue((nint)weights[0].Pointer, out var shared))
            return shared;
        return Own(CpuMatrix.Pack(weights, biases, layout, TypeFor(weights[0])));
    }

    public INorm LoadNorm(TensorData gain, TensorData? bias) => new CpuNorm(gain, bias);

    public ITensor Allocate(int capacityRows, int columns, DType type) => new CpuTensor(capacityRows, columns);

    public IKvCache CreateKvCache(int layers, int slots, int maxPositions, int heads, int headDim) =>
        new CpuKvCache(layers, slots, maxPositions, heads, headDim);

    public void Embed(ReadOnlySpan<int> ids, IEmbedding table, float scale, ITensor output)
    {
        var matrix = (CpuMatrix)table;
        var o = (CpuTensor)output;
        for (int t = 0; t < ids.Length; t++)
        {
            int id = ids[t];
            if ((uint)id >= (uint)matrix.Rows) throw new ArgumentOutOfRangeException(nameof(ids), $"token id {id} is outside the vocabulary of {matrix.Rows}");
            var row = o.Row(t);
            WeightConvert.ToSingle(matrix.RowPointer(id), matrix.Type, row);
            TensorPrimitives.Multiply(row, scale, row);
        }
    }

    public void LayerNorm(ITensor input, INorm norm, float epsilon, ITensor output)
    {
        var (x, y, n) = ((CpuTensor)input, (CpuTensor)output, (CpuNorm)norm);
        Parallel.For(0, x.Rows, r =>
        {
            var src = x.Row(r);
            var dst = y.Row(r);
            float mean = TensorPrimitives.Sum(src) / src.Length;
            TensorPrimitives.Subtract(src, mean, dst);
            float variance = TensorPrimitives.SumOfSquares(dst) / src.Length;
            float inv = 1f / MathF.Sqrt(variance + epsilon);
            TensorPrimitives.Multiply(dst, inv, dst);
            TensorPrimitives.FusedMultiplyAdd(dst, n.Gain, n.Bias, dst);
        });
    }

    public void Linear(ITensor input, ILinear weight, ITensor output, bool accumulate = false) =>
        MatMul.Linear((CpuTensor)input, (CpuMatrix)weight, (CpuTensor)output, accumulate);

    public void Attention(ITensor qkv, IKvCache cache, int layer, AttentionBatch batch, float[] slopes, float scoreScale, ITensor output) =>
        AttentionKernel.Run((CpuTensor)qkv, (CpuKvCache)cache, layer, batch, slopes, scoreScale, (CpuTensor)output);

    public void SwiGlu(ITensor input, ITensor output)
    {
        var (x, y) = ((CpuTensor)input, (CpuTensor)output);
        int f = y.Columns;
        Parallel.For(0, x.Rows, r =>
        {
            var u = x.Row(r)[..f];
            var g = x.Row(r)[f..];
            var o = y.Row(r);
            for (int i = 0; i < f; i++) o[i] = u[i] * g[i] / (1f + MathF.Exp(-g[i]));
        });
    }

    public void GatherRows(ITensor input, ReadOnlySpan<int> rows, ITensor output)
    {
        var (x, y) = ((CpuTensor)input, (CpuTensor)output);
        for (int i = 0; i < rows.Length; i++) x.Row(rows[i]).CopyTo(y.Row(i));
    }

    public void Scale(ITensor tensor, float factor)
    {
        var t = (CpuTensor)tensor;
        TensorPrimitives.Multiply(t.Active, factor, t.Active);
    }

    public void CopyToHost(ITensor tensor, Span<float> destination) => ((CpuTensor)tensor).Active.CopyTo(destination);

    public void Synchronize() { }

    public void Dispose()
    {
        foreach (var o in _owned) o.Dispose();
        _owned.Clear();
        _embeddings.Clear();
    }
}
