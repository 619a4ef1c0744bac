using GptJx.Backends;
using GptJx.Backends.Cpu;
using GptJx.Checkpoints;
using GptJx.Generation;
using GptJx.Tensors;

namespace GptJx.Tests.Model;

/// <summary>
/// A CPU backend that records ops as closures over the same tensors, reading the ids,
/// batch and gathered rows from fields that a replay rewrites: what a CUDA graph does.
/// </summary>
internal sealed class EmulatedGraphBackend : IBackend, IForwardRecording, IDeviceTokenPicker
{
    private readonly CpuBackend _cpu = new();
    private List<Action>? _recording;
    private int[] _ids = [];
    private int[] _rows = [];
    private readonly AttentionBatch _batch = new(16);

    public int Recordings { get; private set; }
    public int Replays { get; private set; }
    public int Picks { get; private set; }

    private void Run(Action op)
    {
        if (_recording is null) op();
        else _recording.Add(op);
    }

    public void BeginRecording() => _recording = [];
    public IDisposable EndRecording()
    {
        Recordings++;
        var ops = _recording!;
        _recording = null;
        return new Recorded(ops);
    }
    public void AbortRecording() => _recording = null;
    public void Replay(IDisposable recording, ReadOnlySpan<int> ids, AttentionBatch batch, ReadOnlySpan<int> logitRows)
    {
        Replays++;
        _ids = ids.ToArray();
        _rows = logitRows.ToArray();
        CopyBatch(batch);
        foreach (var op in ((Recorded)recording).Ops) op();
    }

    private void CopyBatch(AttentionBatch batch)
    {
        _batch.Clear();
        foreach (var s in batch.Active) _batch.Add(s.Slot, s.StartPosition, s.Length, s.AlibiScale);
    }

    public void PickTokens(ITensor logits, ReadOnlySpan<TokenDraw> draws, Span<int> tokens)
    {
        Picks++;
        var host = new float[logits.Rows * logits.Columns];
        _cpu.CopyToHost(logits, host);
        for (int r = 0; r < logits.Rows; r++)
        {
            var d = draws[r];
            var sampler = new Sampler(new GenerationOptions { Temperature = d.Temperature, TopK = d.TopK, TopP = d.TopP }, logits.Columns);
            var row = host.AsSpan(r * logits.Columns, logits.Columns);
            // As IDeviceTokenPicker asks: a row that is not all finite gets an id outside the vocabulary.
            tokens[r] = FiniteScan.FirstNonFinite(System.Runtime.InteropServices.MemoryMarshal.AsBytes(row), DType.F32) >= 0 ? -1 : sampler.Next(row, d);
        }
    }

    private sealed record Recorded(List<Action> Ops) : IDisposable { public void Dispose() { } }

    public string Name => "emulated-graphs";
    public DType ComputeType => _cpu.ComputeType;
    public DType WeightType => _cpu.WeightType;
    public IEmbedding LoadEmbedding(TensorData table) => _cpu.LoadEmbedding(table);
    public ILinear LoadLinear(IReadOnlyList<TensorData> weights, IReadOnlyList<TensorData>? biases, WeightLayout layout) => _cpu.LoadLinear(weights, biases, layout);
    public INorm LoadNorm(TensorData gain, TensorData? bias) => _cpu.LoadNorm(gain, bias);
    public void EndLoading() => _cpu.EndLoading();
    public ITensor Allocate(int capacityRows, int columns, DType type) => _cpu.Allocate(capacityRows, columns, type);
    public IKvCache CreateKvCache(int layers, int slots, int maxPositions, int heads, int headDim) => _cpu.CreateKvCache(layers, slots, maxPositions, heads, headDim);

    public void Embed(ReadOnlySpan<int> ids, IEmbedding table, float scale, ITensor output)
    {
        _ids = ids.ToArray();
        Run(() => _cpu.Embed(_ids, table, scale, output));
    }
    public void LayerNorm(ITensor input, INorm norm, float epsilon, ITensor output) => Run(() => _cpu.LayerNorm(input, norm, epsilon, output));
    public void Linear(ITensor input, ILinear weight, ITensor output, bool accumulate = false) => Run(() => _cpu.Linear(input, weight, output, accumulate));
    public void Attention(ITensor qkv, IKvCache cache, int layer, AttentionBatch batch, float[] slopes, float scoreScale, ITensor output)
    {
        CopyBatch(batch);
        Run(() => _cpu.Attention(qkv, cache, layer, _batch, slopes, scoreScale, output));
    }
    public void SwiGlu(ITensor input, ITensor output) => Run(() => _cpu.SwiGlu(input, output));
    public void GatherRows(ITensor input, ReadOnlySpan<int> rows, ITensor output)
    {
        _rows = rows.ToArray();
        Run(() => _cpu.GatherRows(input, _rows, output));
    }
    public void Scale(ITensor tensor, float factor) => Run(() => _cpu.Scale(tensor, factor));
    public void CopyToHost(ITensor tensor, Span<float> destination)
    {
        if (_recording is not null) throw new InvalidOperationException("CopyToHost while recording");
        _cpu.CopyToHost(tensor, destination);
    }
    public void Synchronize() { }
    public void Dispose() => _cpu.Dispose();
}
