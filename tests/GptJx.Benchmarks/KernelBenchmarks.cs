using BenchmarkDotNet.Attributes;
using GptJx.Backends.Cpu;
using GptJx.Tensors;

namespace GptJx.Benchmarks;

/// <summary>
/// The CPU matrix kernels on one full-size layer's shapes (D = 2560, 2F = 13652) with bf16 weights:
/// decode (1 row), a decode batch (8 rows) and a prefill chunk (128 rows).
/// </summary>
[MemoryDiagnoser]
public unsafe class KernelBenchmarks
{
    private WorkerPool _pool = null!;
    private PackedMatrix _matrix = null!;
    private float[] _x = null!, _y = null!;
    private readonly LinearJob _job = new();

    [Params(2560, 13652)]
    public int Outputs { get; set; }

    [Params(1, 8, 128)]
    public int Rows { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _pool = new WorkerPool(Environment.ProcessorCount);
        const int k = 2560;
        var random = new Random(1);
        var w = new float[Outputs * k];
        for (int i = 0; i < w.Length; i++) w[i] = (float)(random.NextDouble() - 0.5) * 0.04f;
        _matrix = PackedMatrix.FromRows(w, Outputs, k, DType.BF16, null, _pool);
        _x = GC.AllocateArray<float>(Rows * k, pinned: true);
        _y = GC.AllocateArray<float>(Rows * Outputs, pinned: true);
        for (int i = 0; i < _x.Length; i++) _x[i] = (float)random.NextDouble();
    }

    [Benchmark]
    public void Linear()
    {
        fixed (float* x = _x, y = _y)
        {
            _job.Set(x, Rows, _matrix.Inputs, _matrix, y, Outputs, accumulate: false);
            _pool.Run(_job);
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _matrix.Dispose();
        _pool.Dispose();
    }
}
