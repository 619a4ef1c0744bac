using System.Numerics.Tensors;
using GptJx.Checkpoints;
using GptJx.Tensors;

namespace GptJx.Backends.Cpu;

/// <summary>
/// The CPU backend: fp32 arithmetic on one persistent pool of worker threads (one per core),
/// weights kept in their 16-bit (or fp32) type, repacked at load into panels that the
/// matrix kernels stream contiguously (see <see cref="Gemm"/>). AVX-512, AVX2 or portable
/// kernels are chosen at run time. Weights are checked to be finite as they are packed.
/// </summary>
public sealed unsafe class CpuBackend : IBackend, IFiniteWeightCheck
{
    private readonly List<IDisposable> _owned = [];
    private readonly Dictionary<nint, PackedMatrix> _embeddings = [];
    private readonly WorkerPool _pool;
    private readonly LinearJob _linear = new();
    private readonly AttentionJob _attention;
    private readonly RowsJob _layerNorm, _swiGlu;
    private CpuTensor? _in, _out;
    private CpuNorm? _norm;
    private float _epsilon;

    /// <param name="weightType">Type weights are kept in; null keeps each tensor's checkpoint type.</param>
    /// <param name="threads">Worker threads (default: GPTJX_CPU_THREADS if set, else one per processor).</param>
    public CpuBackend(DType? weightType = null, int? threads = null)
    {
        RequestedWeightType = weightType;
        _pool = new WorkerPool(threads ?? DefaultThreads());
        _attention = new AttentionJob(_pool.Workers);
        _layerNorm = new RowsJob(LayerNormRows);
        _swiGlu = new RowsJob(SwiGluRows);
    }

    private static int DefaultThreads() =>
        int.TryParse(Environment.GetEnvironmentVariable("GPTJX_CPU_THREADS"), out int n) && n > 0 ? n : Environment.ProcessorCount;

    public string Name => $"cpu ({_pool.Workers} threads, {Level})";
    public DType ComputeType => DType.F32;
    public DType WeightType => RequestedWeightType ?? LoadedWeightType ?? DType.F32;
    public int Threads => _pool.Workers;

    /// <summary>The instruction set of the matrix kernels (tests may lower it).</summary>
    public KernelLevel Level
    {
        get => _linear.Level;
        set => _linear.Level = value <= Gemm.Best ? value : throw new NotSupportedException($"this CPU does not support {value} kernels");
    }

    private DType? RequestedWeightType { get; }
    private DType? LoadedWeightType { get; set; }
    internal WorkerPool Pool => _pool;

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
        var matrix = Own(PackedMatrix.Pack([table], null, WeightLayout.OutIn, TypeFor(table), _pool));
        _embeddings[(nint)table.Pointer] = matrix;
        return matrix;
    }

    public ILinear LoadLinear(IReadOnlyList<TensorData> weights, IReadOnlyList<TensorData>? biases, WeightLayout layout)
    {
        // A tied head reads the embedding table already packed as [V, D]: share it.
        if (layout == WeightLayout.OutIn && weights.Count == 1 && biases is null &&
            _embeddings.TryGetValue((nint)weights[0].Pointer, out var shared))
            return shared;
        return Own(PackedMatrix.Pack(weights, biases, layout, TypeFor(weights[0]), _pool));
    }

    public INorm LoadNorm(TensorData gain, TensorData? bias) => new CpuNorm(gain, bias);

    public void EndLoading() { }

    public ITensor Allocate(int capacityRows, int columns, DType type) => new CpuTensor(capacityRows, columns);

    public IKvCache CreateKvCache(int layers, int slots, int maxPositions, int heads, int headDim) =>
        new CpuKvCache(layers, slots, maxPositions, heads, headDim);

    public void Embed(ReadOnlySpan<int> ids, IEmbedding table, float scale, ITensor output)
    {
        var matrix = (PackedMatrix)table;
        var o = (CpuTensor)output;
        for (int t = 0; t < ids.Length; t++)
        {
            int id = ids[t];
            if ((uint)id >= (uint)matrix.Outputs) throw new ArgumentOutOfRangeException(nameof(ids), $"token id {id} is outside the vocabulary of {matrix.Outputs}");
            var row = o.Row(t);
            matrix.ReadRow(id, row);
            TensorPrimitives.Multiply(row, scale, row);
        }
    }

    public void LayerNorm(ITensor input, INorm norm, float epsilon, ITensor output)
    {
        (_in, _out, _norm, _epsilon) = ((CpuTensor)input, (CpuTensor)output, (CpuNorm)norm, epsilon);
        _layerNorm.Run(_pool, _in.Rows);
    }

    private void LayerNormRows(int start, int end)
    {
        var (x, y, n) = (_in!, _out!, _norm!);
        for (int r = start; r < end; r++)
        {
            var src = x.Row(r);
            var dst = y.Row(r);
            float mean = TensorPrimitives.Sum(src) / src.Length;
            TensorPrimitives.Subtract(src, mean, dst);
            float variance = TensorPrimitives.SumOfSquares(dst) / src.Length;
            float inv = 1f / MathF.Sqrt(variance + _epsilon);
            TensorPrimitives.Multiply(dst, inv, dst);
            TensorPrimitives.FusedMultiplyAdd(dst, n.Gain, n.Bias, dst);
        }
    }

    public void Linear(ITensor input, ILinear weight, ITensor output, bool accumulate = false)
    {
        var (x, w, y) = ((CpuTensor)input, (PackedMatrix)weight, (CpuTensor)output);
        if (x.Columns != w.Inputs) throw new ArgumentException($"input has {x.Columns} columns, the weight expects {w.Inputs}");
        if (y.Columns != w.Outputs) throw new ArgumentException($"output has {y.Columns} columns, the weight gives {w.Outputs}");
        if (y.Rows < x.Rows) throw new ArgumentException($"output has {y.Rows} rows for {x.Rows} input rows");
        if (x.Rows == 0) return;
        fixed (float* xp = x.Data, yp = y.Data)
        {
            _linear.Set(xp, x.Rows, x.Columns, w, yp, y.Columns, accumulate);
            _pool.Run(_linear);
        }
    }

    public void Attention(ITensor qkv, IKvCache cache, int layer, AttentionBatch batch, float[] slopes, float scoreScale, ITensor output) =>
        _attention.Run(_pool, (CpuTensor)qkv, (CpuKvCache)cache, layer, batch, slopes, scoreScale, (CpuTensor)output);

    public void SwiGlu(ITensor input, ITensor output)
    {
        (_in, _out) = ((CpuTensor)input, (CpuTensor)output);
        _swiGlu.Run(_pool, _in.Rows);
    }

    private void SwiGluRows(int start, int end)
    {
        var (x, y) = (_in!, _out!);
        int f = y.Columns;
        for (int r = start; r < end; r++)
        {
            var u = x.Row(r)[..f];
            var g = x.Row(r)[f..];
            var o = y.Row(r);
            // silu(g) = g * sigmoid(g)
            TensorPrimitives.Sigmoid(g, o);
            TensorPrimitives.Multiply(o, g, o);
            TensorPrimitives.Multiply(o, u, o);
        }
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

    /// <summary>
    /// Reads every packed weight once per pass on the workers (a sum, nothing written) and returns
    /// the median rate in GB/s: the bandwidth a decode step can get for these very bytes, measured
    /// in the same conditions (benchmarks run it next to their decode measurements).
    /// </summary>
    public double MeasureWeightReadBandwidth(int passes)
    {
        var matrices = _owned.OfType<PackedMatrix>().ToArray();
        if (matrices.Length == 0) return double.NaN;
        var job = new WeightReadJob(matrices);
        long bytes = matrices.Sum(m => m.ByteLength);
        var rates = new List<double>();
        for (int i = 0; i < passes; i++)
        {
            long start = System.Diagnostics.Stopwatch.GetTimestamp();
            _pool.Run(job);
            rates.Add(bytes / System.Diagnostics.Stopwatch.GetElapsedTime(start).TotalSeconds / 1e9);
        }
        rates.Sort();
        return rates[rates.Count / 2];
    }

    private sealed class WeightReadJob(PackedMatrix[] matrices) : PoolJob
    {
        private const int PanelsPerChunk = 8;
        private readonly int[] _first = PrefixChunks(matrices);
        public float Sink;

        private static int[] PrefixChunks(PackedMatrix[] ms)
        {
            var first = new int[ms.Length + 1];
            for (int i = 0; i < ms.Length; i++) first[i + 1] = first[i] + (ms[i].Panels + PanelsPerChunk - 1) / PanelsPerChunk;
            return first;
        }

        public override int BeginRun(int workers) => _first[^1];

        public override void RunChunk(int chunk, int worker)
        {
            int m = Array.BinarySearch(_first, chunk);
            if (m < 0) m = ~m - 1;
            while (_first[m + 1] <= chunk) m++;
            var matrix = matrices[m];
            int p0 = (chunk - _first[m]) * PanelsPerChunk, p1 = Math.Min(matrix.Panels, p0 + PanelsPerChunk);
            float* p = (float*)matrix.Panel(p0);
            long count = (p1 - p0) * matrix.PanelBytes / sizeof(float);
            Sink += TensorPrimitives.Sum(new ReadOnlySpan<float>(p, (int)count));
        }
    }

    public void Dispose()
    {
        foreach (var o in _owned) o.Dispose();
        _owned.Clear();
        _embeddings.Clear();
        _pool.Dispose();
    }

    /// <summary>A per-row operation split across the workers (on the caller alone for a single row).</summary>
    private sealed class RowsJob(Action<int, int> body) : PoolJob
    {
        private int _rows, _chunks;

        public void Run(WorkerPool pool, int rows)
        {
            _rows = rows;
            if (rows <= 1) body(0, rows);
            else pool.Run(this);
        }

        public override int BeginRun(int workers) => _chunks = Math.Min(_rows, 4 * workers);

        public override void RunChunk(int chunk, int worker)
        {
            var (start, end) = Share(_rows, chunk, _chunks);
            if (start < end) body(start, end);
        }
    }
}
