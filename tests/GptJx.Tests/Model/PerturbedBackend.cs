using GptJx.Backends;
using GptJx.Backends.Cpu;
using GptJx.Checkpoints;
using GptJx.Tensors;

namespace GptJx.Tests.Model;

/// <summary>
/// The CPU backend with one planted fault: every SwiGLU output is scaled by 1 + <paramref name="error"/>,
/// a backend that is slightly wrong in every layer. What `gptjx verify` must catch.
/// </summary>
internal sealed class PerturbedBackend(float error) : IBackend
{
    private readonly CpuBackend _cpu = new();

    public void SwiGlu(ITensor input, ITensor output)
    {
        _cpu.SwiGlu(input, output);
        _cpu.Scale(output, 1f + error);
    }

    public string Name => $"cpu with SwiGLU off by {error:P2}";
    public DType ComputeType => _cpu.ComputeType;
    public DType WeightType => _cpu.WeightType;
    public IEmbedding LoadEmbedding(TensorData table) => _cpu.LoadEmbedding(table);
    public ILinear LoadLinear(IReadOnlyList<TensorData> weights, IReadOnlyList<TensorData>? biases, WeightLayout layout) => _cpu.LoadLinear(weights, biases, layout);
    public INorm LoadNorm(TensorData gain, TensorData? bias) => _cpu.LoadNorm(gain, bias);
    public void EndLoading() => _cpu.EndLoading();
    public ITensor Allocate(int capacityRows, int columns, DType type) => _cpu.Allocate(capacityRows, columns, type);
    public IKvCache CreateKvCache(int layers, int slots, int maxPositions, int heads, int headDim) => _cpu.CreateKvCache(layers, slots, maxPositions, heads, headDim);
    public void Embed(ReadOnlySpan<int> ids, IEmbedding table, float scale, ITensor output) => _cpu.Embed(ids, table, scale, output);
    public void LayerNorm(ITensor input, INorm norm, float epsilon, ITensor output) => _cpu.LayerNorm(input, norm, epsilon, output);
    public void Linear(ITensor input, ILinear weight, ITensor output, bool accumulate = false) => _cpu.Linear(input, weight, output, accumulate);
    public void Attention(ITensor qkv, IKvCache cache, int layer, AttentionBatch batch, float[] slopes, float scoreScale, ITensor output) =>
        _cpu.Attention(qkv, cache, layer, batch, slopes, scoreScale, output);
    public void GatherRows(ITensor input, ReadOnlySpan<int> rows, ITensor output) => _cpu.GatherRows(input, rows, output);
    public void Scale(ITensor tensor, float factor) => _cpu.Scale(tensor, factor);
    public void CopyToHost(ITensor tensor, Span<float> destination) => _cpu.CopyToHost(tensor, destination);
    public void Synchronize() { }
    public void Dispose() => _cpu.Dispose();
}
