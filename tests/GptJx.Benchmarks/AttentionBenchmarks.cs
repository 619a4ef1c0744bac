using BenchmarkDotNet.Attributes;
using GptJx.Backends;
using GptJx.Backends.Cpu;
using GptJx.Tensors;

namespace GptJx.Benchmarks;

/// <summary>One layer's attention at the full-size shape (32 heads x 80): a decode row, and a 256-row prefill chunk, over a cached context.</summary>
[MemoryDiagnoser]
public class AttentionBenchmarks
{
    private CpuBackend _backend = null!;
    private IKvCache _cache = null!;
    private ITensor _qkv = null!, _out = null!;
    private readonly AttentionBatch _batch = new(1);
    private float[] _slopes = null!;

    [Params(128, 2048)]
    public int Context { get; set; }

    [Params(1, 256)]
    public int Rows { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _backend = new CpuBackend();
        _cache = _backend.CreateKvCache(1, 1, Context + Rows, 32, 80);
        _qkv = _backend.Allocate(Math.Max(Rows, Context), 3 * 2560, DType.F32);
        _out = _backend.Allocate(Math.Max(Rows, Context), 2560, DType.F32);
        var data = ((CpuTensor)_qkv).Data;
        var random = new Random(1);
        for (int i = 0; i < data.Length; i++) data[i] = (float)(random.NextDouble() - 0.5);
        _slopes = Enumerable.Range(0, 32).Select(h => MathF.Pow(2, -8f * (h + 1) / 32)).ToArray();
        // Fill the context.
        _batch.Clear();
        _batch.Add(0, 0, Context);
        _qkv.SetRows(Context);
        _out.SetRows(Context);
        _backend.Attention(_qkv, _cache, 0, _batch, _slopes, 0.0125f, _out);
        _qkv.SetRows(Rows);
        _out.SetRows(Rows);
        _batch.Clear();
        _batch.Add(0, Context, Rows);
    }

    [Benchmark]
    public void Attention() => _backend.Attention(_qkv, _cache, 0, _batch, _slopes, 0.0125f, _out);

    [GlobalCleanup]
    public void Cleanup()
    {
        _cache.Dispose();
        _backend.Dispose();
    }
}
