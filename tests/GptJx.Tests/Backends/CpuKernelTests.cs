using System.Runtime.InteropServices;
using GptJx.Backends;
using GptJx.Backends.Cpu;
using GptJx.Checkpoints;
using GptJx.Tensors;

namespace GptJx.Tests.Backends;

/// <summary>The CPU matrix kernels and weight packing against plain scalar arithmetic, at every kernel level this CPU runs.</summary>
public unsafe class CpuKernelTests
{
    private static WorkerPool _pool = null!;

    [OneTimeSetUp]
    public void Start() => _pool = new WorkerPool(Math.Max(2, Environment.ProcessorCount));

    [OneTimeTearDown]
    public void Stop() => _pool.Dispose();

    public static IEnumerable<KernelLevel> Levels() => Enum.GetValues<KernelLevel>().Where(l => l <= Gemm.Best);

    private static float Round(float v, DType type) => HalfConvert.Round(v, type);

    private static float[] Random(int count, int seed, float scale = 1f)
    {
        var r = new Random(seed);
        var a = new float[count];
        for (int i = 0; i < count; i++) a[i] = (float)(r.NextDouble() * 2 - 1) * scale;
        return a;
    }

    /// <summary>y = x W^T + b in double over the weights rounded to their storage type.</summary>
    private static double[] Reference(float[] x, float[] w, float[]? bias, int rows, int k, int n, DType type, float[]? accumulateInto)
    {
        var y = new double[rows * n];
        for (int r = 0; r < rows; r++)
            for (int o = 0; o < n; o++)
            {
                double sum = bias?[o] ?? 0;
                for (int i = 0; i < k; i++) sum += (double)x[r * k + i] * Round(w[o * k + i], type);
                y[r * n + o] = sum + (accumulateInto?[r * n + o] ?? 0);
            }
        return y;
    }

    private static void Run(KernelLevel level, PackedMatrix m, float[] x, int rows, float[] y, bool accumulate)
    {
        var job = new LinearJob { Level = level };
        fixed (float* xp = x, yp = y)
        {
            job.Set(xp, rows, m.Inputs, m, yp, m.Outputs, accumulate);
            _pool.Run(job);
        }
    }

    private static void AssertClose(double[] expected, float[] actual, string what)
    {
        for (int i = 0; i < expected.Length; i++)
        {
            double tolerance = 1e-5 * (1 + Math.Abs(expected[i])) * 8;
            if (Math.Abs(expected[i] - actual[i]) > tolerance)
                Assert.Fail($"{what}: element {i}: expected {expected[i]}, got {actual[i]}");
        }
    }

    [Test, Combinatorial]
    public void LinearMatchesScalarArithmetic(
        [ValueSource(nameof(Levels))] KernelLevel level,
        [Values(DType.BF16, DType.F16, DType.F32)] DType type,
        [Values(1, 2, 3, 8, 9, 17)] int rows,
        [Values(1, 31, 33, 70)] int n)
    {
        foreach (int k in new[] { 1, 5, 96 })
        {
            var w = Random(n * k, 1 + n + k);
            var x = Random(rows * k, 2 + rows);
            var bias = Random(n, 3);
            using var m = PackedMatrix.FromRows(w, n, k, type, bias, _pool);
            var y = new float[rows * n];
            Run(level, m, x, rows, y, accumulate: false);
            AssertClose(Reference(x, w, bias, rows, k, n, type, null), y, $"{level} {type} {rows}x{k}x{n}");

            var start = Random(rows * n, 4);
            var acc = (float[])start.Clone();
            Run(level, m, x, rows, acc, accumulate: true);
            AssertClose(Reference(x, w, bias, rows, k, n, type, start), acc, $"{level} {type} {rows}x{k}x{n} accumulate");
        }
    }

    [Test]
    public void OneRowOfAFullSizeLayerMatches([ValueSource(nameof(Levels))] KernelLevel level)
    {
        const int k = 2560, n = 97;
        var w = Random(n * k, 7, 0.02f);
        var x = Random(k, 8);
        using var m = PackedMatrix.FromRows(w, n, k, DType.BF16, null, _pool);
        var y = new float[n];
        Run(level, m, x, 1, y, accumulate: false);
        AssertClose(Reference(x, w, null, 1, k, n, DType.BF16, null), y, "decode row");
    }

    [Test]
    public void ARowGivesBitIdenticalResultsWhateverTheBatch([ValueSource(nameof(Levels))] KernelLevel level)
    {
        // Batching must never change a sequence's results: every row count sums in the same order.
        const int k = 300, n = 70;
        var w = Random(n * k, 11, 0.05f);
        var bias = Random(n, 12);
        using var m = PackedMatrix.FromRows(w, n, k, DType.BF16, bias, _pool);
        var x = Random(17 * k, 13);
        var alone = new float[17 * n];
        for (int r = 0; r < 17; r++)
        {
            var row = new float[n];
            Run(level, m, x[(r * k)..((r + 1) * k)], 1, row, accumulate: false);
            row.CopyTo(alone, r * n);
        }
        foreach (int rows in new[] { 2, 3, 5, 8, 9, 16, 17 })
        {
            var y = new float[rows * n];
            Run(level, m, x[..(rows * k)], rows, y, accumulate: false);
            Assert.That(y, Is.EqualTo(alone[..(rows * n)]), $"{level}: {rows} rows together vs one at a time");
        }
    }

    [TestCase(0x0000), TestCase(0x8000), TestCase(0x0001), TestCase(0x03FF), TestCase(0x0400), TestCase(0x3C00),
     TestCase(0xBC00), TestCase(0x7BFF), TestCase(0x7C00), TestCase(0xFC00), TestCase(0x7E00), TestCase(0x8001)]
    public void HalfWeightsWidenExactly(int bits)
    {
        float value = HalfConvert.F16ToSingle((ushort)bits);
        foreach (var level in Levels())
        {
            using var m = PackedMatrix.FromRows(Enumerable.Repeat(value, 40).ToArray(), 40, 1, DType.F16, null, _pool);
            var y = new float[40];
            Run(level, m, [1f], 1, y, accumulate: false);
            foreach (float v in y)
                if (float.IsNaN(value)) Assert.That(float.IsNaN(v), $"{level}: {bits:X4} gave {v}");
                else if (value == 0) Assert.That(v, Is.Zero, $"{level}: {bits:X4}");     // -0 * 1 added to a +0 accumulator is +0
                else Assert.That(BitConverter.SingleToInt32Bits(v), Is.EqualTo(BitConverter.SingleToInt32Bits(value)), $"{level}: {bits:X4}");
        }
    }

    /// <summary>Checkpoint [in, out] parts with a boundary inside a panel, converted to another type, against [out, in] packing.</summary>
    [TestCase(DType.BF16, DType.BF16), TestCase(DType.F32, DType.BF16), TestCase(DType.BF16, DType.F32), TestCase(DType.F16, DType.F16)]
    public void PackingConcatenatesInOutParts(DType stored, DType kept)
    {
        const int k = 37;
        int[] widths = [45, 70, 32];
        int n = widths.Sum();
        var w = Random(n * k, 11);                              // [out, in]
        var handles = new List<GCHandle>();
        try
        {
            var parts = new List<TensorData>();
            int first = 0;
            foreach (int width in widths)
            {
                var bytes = new byte[k * width * stored.Size()];
                for (int i = 0; i < k; i++)
                    for (int o = 0; o < width; o++)
                        Write(bytes, stored, i * width + o, w[(first + o) * k + i]);
                var h = GCHandle.Alloc(bytes, GCHandleType.Pinned);
                handles.Add(h);
                parts.Add(new TensorData(new TensorInfo("part", stored, [k, width], "memory"), (byte*)h.AddrOfPinnedObject()));
                first += width;
            }
            using var packed = PackedMatrix.Pack(parts, null, WeightLayout.InOut, kept, _pool);
            Assert.That(packed.Outputs, Is.EqualTo(n));
            var row = new float[k];
            for (int o = 0; o < n; o++)
            {
                packed.ReadRow(o, row);
                for (int i = 0; i < k; i++)
                    Assert.That(row[i], Is.EqualTo(Round(Round(w[o * k + i], stored), kept)), $"output {o}, input {i}");
            }
        }
        finally
        {
            foreach (var h in handles) h.Free();
        }
    }

    private static void Write(byte[] bytes, DType type, int index, float value)
    {
        switch (type)
        {
            case DType.F32: MemoryMarshal.Cast<byte, float>(bytes.AsSpan())[index] = value; break;
            case DType.F16: MemoryMarshal.Cast<byte, ushort>(bytes.AsSpan())[index] = HalfConvert.SingleToF16(value); break;
            default: MemoryMarshal.Cast<byte, ushort>(bytes.AsSpan())[index] = HalfConvert.SingleToBF16(value); break;
        }
    }

    [Test]
    public void PoolRunsEveryChunkOnceAndRethrows()
    {
        var job = new CountingJob();
        for (int i = 0; i < 100; i++) _pool.Run(job);
        Assert.That(job.Calls, Is.EqualTo(100 * 2 * _pool.Workers));
        var failing = new FailingJob();
        Assert.That(() => _pool.Run(failing), Throws.InvalidOperationException.With.Message.EqualTo("chunk 3"));
        _pool.Run(job);                                          // still usable
        Assert.That(job.Calls, Is.EqualTo(101 * 2 * _pool.Workers));
    }

    [Test]
    public void SharesCoverEveryItemOnce([Values(0, 1, 7, 240)] int count, [Values(1, 2, 3)] int workers, [Values(1, 8)] int grain)
    {
        var seen = new int[count];
        for (int w = 0; w < workers; w++)
        {
            var (s, e) = PoolJob.Share(count, w, workers, grain);
            for (int i = s; i < e; i++) seen[i]++;
        }
        Assert.That(seen, Is.All.EqualTo(1));
    }

    private sealed class CountingJob : PoolJob
    {
        public int Calls;
        public override int BeginRun(int workers) => 2 * workers;
        public override void RunChunk(int chunk, int worker) => Interlocked.Increment(ref Calls);
    }

    private sealed class FailingJob : PoolJob
    {
        public override int BeginRun(int workers) => 5;

        public override void RunChunk(int chunk, int worker)
        {
            if (chunk == 3) throw new InvalidOperationException("chunk 3");
        }
    }
}
