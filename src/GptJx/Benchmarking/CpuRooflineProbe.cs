using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using GptJx.Backends.Cpu;
using GptJx.Tensors;

namespace GptJx.Benchmarking;

/// <summary>
/// CPU ceilings measured on the backend's own worker threads: STREAM-style copy, triad and
/// read bandwidth over arrays far larger than the caches, the fp32 FMA peak (independent
/// chains held in registers), and the rate of the backend's GEMM on a prefill-sized problem.
/// </summary>
public sealed unsafe class CpuRooflineProbe : IRooflineProbe
{
    private readonly CpuBackend _backend;
    private readonly long _bufferBytes;

    public CpuRooflineProbe(CpuBackend backend, long bufferBytes = 128L << 20)
    {
        _backend = backend;
        _bufferBytes = bufferBytes;
    }

    public string Device => MachineInfo.CpuModel();

    public IReadOnlyDictionary<string, string> Describe() => new Dictionary<string, string>
    {
        ["cpu"] = MachineInfo.CpuModel(),
        ["cores"] = Environment.ProcessorCount.ToString(),
        ["threads"] = _backend.Threads.ToString(),
        ["simd"] = MachineInfo.SimdLevel(),
        ["kernels"] = _backend.Level.ToString(),
    };

    public BandwidthCeiling MeasureBandwidth(int repeats)
    {
        long n = _bufferBytes / sizeof(float);
        float* a = (float*)NativeMemory.AlignedAlloc((nuint)_bufferBytes, 4096);
        float* b = (float*)NativeMemory.AlignedAlloc((nuint)_bufferBytes, 4096);
        float* c = (float*)NativeMemory.AlignedAlloc((nuint)_bufferBytes, 4096);
        try
        {
            var job = new StreamJob(a, b, c, n);
            job.Kind = StreamKind.Fill;
            _backend.Pool.Run(job);                          // touch every page before timing
            double Best(StreamKind kind, int arrays)
            {
                job.Kind = kind;
                double best = 0;
                for (int i = 0; i < repeats; i++)
                {
                    long start = Stopwatch.GetTimestamp();
                    _backend.Pool.Run(job);
                    double seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
                    best = Math.Max(best, arrays * _bufferBytes / seconds / 1e9);
                }
                return best;
            }
            repeats = Math.Max(repeats, 15);                 // best of many: other work on the machine only slows a pass down
            double copy = Best(StreamKind.Copy, 2);
            double triad = Best(StreamKind.Triad, 3);
            double read = Best(StreamKind.Read, 1);
            return new BandwidthCeiling(copy, triad, read, _bufferBytes, _backend.Threads);
        }
        finally
        {
            NativeMemory.AlignedFree(a);
            NativeMemory.AlignedFree(b);
            NativeMemory.AlignedFree(c);
        }
    }

    public ComputeCeiling MeasureCompute(int repeats)
    {
        var fma = new FmaJob { Iterations = 40_000_000 };
        _backend.Pool.Run(fma);                              // warm up (JIT, clocks)
        double peak = 0;
        repeats = Math.Max(repeats, 15);
        for (int i = 0; i < repeats; i++)
        {
            long start = Stopwatch.GetTimestamp();
            _backend.Pool.Run(fma);
            double seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
            peak = Math.Max(peak, fma.FlopsPerWorker * _backend.Threads / seconds / 1e9);
        }

        const int Rows = 128, K = 2560, N = 2560;
        var weights = new float[N * K];
        var random = new Random(1);
        for (int i = 0; i < weights.Length; i++) weights[i] = (float)(random.NextDouble() - 0.5) * 0.04f;
        using var matrix = PackedMatrix.FromRows(weights, N, K, DType.BF16, null, _backend.Pool);
        var x = GC.AllocateUninitializedArray<float>(Rows * K, pinned: true);
        var y = GC.AllocateUninitializedArray<float>(Rows * N, pinned: true);
        for (int i = 0; i < x.Length; i++) x[i] = (float)random.NextDouble();
        var linear = new LinearJob { Level = _backend.Level };
        double gemm = 0;
        fixed (float* xp = x, yp = y)
        {
            linear.Set(xp, Rows, K, matrix, yp, N, accumulate: false);
            _backend.Pool.Run(linear);
            for (int i = 0; i < repeats; i++)
            {
                long start = Stopwatch.GetTimestamp();
                for (int r = 0; r < 4; r++) _backend.Pool.Run(linear);
                double seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
                gemm = Math.Max(gemm, 4 * 2.0 * Rows * K * N / seconds / 1e9);
            }
        }
        return new ComputeCeiling(peak, gemm, $"{Rows} x {K} x {N} (bf16 weights)", "fp32", _backend.Threads);
    }

    private enum StreamKind { Fill, Copy, Triad, Read }

    private sealed class StreamJob(float* a, float* b, float* c, long n) : PoolJob
    {
        public StreamKind Kind;
        public readonly double[] Sums = new double[64];

        private int _parts;

        public override int BeginRun(int workers) => _parts = workers;

        public override void RunChunk(int part, int worker)
        {
            int workers = _parts;
            long start = n * part / workers / 64 * 64, end = n * (part + 1) / workers / 64 * 64;
            if (part == workers - 1) end = n;
            switch (Kind)
            {
                case StreamKind.Fill:
                    for (long i = start; i < end; i++) { a[i] = 0; b[i] = 1; c[i] = 2; }
                    break;
                case StreamKind.Copy:
                    Copy(a + start, b + start, end - start);
                    break;
                case StreamKind.Triad:
                    Triad(a + start, b + start, c + start, end - start);
                    break;
                case StreamKind.Read:
                    Sums[part] = ReadAll(b + start, end - start);
                    break;
            }
        }
    }

    /// <summary>a[i] = b[i], with ordinary (write-allocate) stores as STREAM compiles them.</summary>
    private static void Copy(float* a, float* b, long n)
    {
        long i = 0;
        if (Vector512.IsHardwareAccelerated)
            for (; i + 64 <= n; i += 64)
            {
                Vector512.Load(b + i).Store(a + i); Vector512.Load(b + i + 16).Store(a + i + 16);
                Vector512.Load(b + i + 32).Store(a + i + 32); Vector512.Load(b + i + 48).Store(a + i + 48);
            }
        for (; i < n; i++) a[i] = b[i];
    }

    /// <summary>a[i] = b[i] + s c[i], with ordinary stores (STREAM's triad).</summary>
    private static void Triad(float* a, float* b, float* c, long n)
    {
        long i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var s = Vector512.Create(3f);
            for (; i + 32 <= n; i += 32)
            {
                Vector512.FusedMultiplyAdd(s, Vector512.Load(c + i), Vector512.Load(b + i)).Store(a + i);
                Vector512.FusedMultiplyAdd(s, Vector512.Load(c + i + 16), Vector512.Load(b + i + 16)).Store(a + i + 16);
            }
        }
        for (; i < n; i++) a[i] = b[i] + 3f * c[i];
    }

    /// <summary>Sums an array with eight independent accumulators: a pure read stream.</summary>
    private static float ReadAll(float* p, long n)
    {
        if (!Vector512.IsHardwareAccelerated) return System.Numerics.Tensors.TensorPrimitives.Sum(new ReadOnlySpan<float>(p, (int)n));
        Vector512<float> s0 = default, s1 = default, s2 = default, s3 = default, s4 = default, s5 = default, s6 = default, s7 = default;
        long i = 0;
        for (; i + 128 <= n; i += 128)
        {
            s0 += Vector512.Load(p + i); s1 += Vector512.Load(p + i + 16);
            s2 += Vector512.Load(p + i + 32); s3 += Vector512.Load(p + i + 48);
            s4 += Vector512.Load(p + i + 64); s5 += Vector512.Load(p + i + 80);
            s6 += Vector512.Load(p + i + 96); s7 += Vector512.Load(p + i + 112);
        }
        float sum = Vector512.Sum(s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7);
        for (; i < n; i++) sum += p[i];
        return sum;
    }

    /// <summary>Twelve independent FMA chains per worker, enough to cover the FMA latency on every pipe.</summary>
    private sealed class FmaJob : PoolJob
    {
        public int Iterations;
        public readonly float[] Sink = new float[64];

        public double FlopsPerWorker => (double)Iterations * 12 * 2 * (Vector512.IsHardwareAccelerated ? 16 : Vector256.IsHardwareAccelerated ? 8 : 1);

        public override int BeginRun(int workers) => workers;

        public override void RunChunk(int chunk, int worker)
        {
            if (Vector512.IsHardwareAccelerated && Avx512F.IsSupported) Sink[chunk] = Run512();
            else if (Fma.IsSupported) Sink[chunk] = Run256();
            else Sink[chunk] = RunScalar();
        }

        private float Run512()
        {
            var m = Vector512.Create(0.999999f);
            var d = Vector512.Create(1e-7f);
            Vector512<float> a0 = Vector512.Create(1f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0, a9 = a0, a10 = a0, a11 = a0;
            for (int i = 0; i < Iterations; i++)
            {
                a0 = Avx512F.FusedMultiplyAdd(a0, m, d); a1 = Avx512F.FusedMultiplyAdd(a1, m, d);
                a2 = Avx512F.FusedMultiplyAdd(a2, m, d); a3 = Avx512F.FusedMultiplyAdd(a3, m, d);
                a4 = Avx512F.FusedMultiplyAdd(a4, m, d); a5 = Avx512F.FusedMultiplyAdd(a5, m, d);
                a6 = Avx512F.FusedMultiplyAdd(a6, m, d); a7 = Avx512F.FusedMultiplyAdd(a7, m, d);
                a8 = Avx512F.FusedMultiplyAdd(a8, m, d); a9 = Avx512F.FusedMultiplyAdd(a9, m, d);
                a10 = Avx512F.FusedMultiplyAdd(a10, m, d); a11 = Avx512F.FusedMultiplyAdd(a11, m, d);
            }
            var sum = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11;
            return Vector512.Sum(sum);
        }

        private float Run256()
        {
            var m = Vector256.Create(0.999999f);
            var d = Vector256.Create(1e-7f);
            Vector256<float> a0 = Vector256.Create(1f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0, a9 = a0, a10 = a0, a11 = a0;
            for (int i = 0; i < Iterations; i++)
            {
                a0 = Fma.MultiplyAdd(a0, m, d); a1 = Fma.MultiplyAdd(a1, m, d);
                a2 = Fma.MultiplyAdd(a2, m, d); a3 = Fma.MultiplyAdd(a3, m, d);
                a4 = Fma.MultiplyAdd(a4, m, d); a5 = Fma.MultiplyAdd(a5, m, d);
                a6 = Fma.MultiplyAdd(a6, m, d); a7 = Fma.MultiplyAdd(a7, m, d);
                a8 = Fma.MultiplyAdd(a8, m, d); a9 = Fma.MultiplyAdd(a9, m, d);
                a10 = Fma.MultiplyAdd(a10, m, d); a11 = Fma.MultiplyAdd(a11, m, d);
            }
            return Vector256.Sum(a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11);
        }

        private float RunScalar()
        {
            float a = 1, b = 1, c = 1, d = 1, e = 1, f = 1, g = 1, h = 1, i2 = 1, j = 1, k = 1, l = 1;
            for (int i = 0; i < Iterations; i++)
            {
                a = MathF.FusedMultiplyAdd(a, 0.999999f, 1e-7f); b = MathF.FusedMultiplyAdd(b, 0.999999f, 1e-7f);
                c = MathF.FusedMultiplyAdd(c, 0.999999f, 1e-7f); d = MathF.FusedMultiplyAdd(d, 0.999999f, 1e-7f);
                e = MathF.FusedMultiplyAdd(e, 0.999999f, 1e-7f); f = MathF.FusedMultiplyAdd(f, 0.999999f, 1e-7f);
                g = MathF.FusedMultiplyAdd(g, 0.999999f, 1e-7f); h = MathF.FusedMultiplyAdd(h, 0.999999f, 1e-7f);
                i2 = MathF.FusedMultiplyAdd(i2, 0.999999f, 1e-7f); j = MathF.FusedMultiplyAdd(j, 0.999999f, 1e-7f);
                k = MathF.FusedMultiplyAdd(k, 0.999999f, 1e-7f); l = MathF.FusedMultiplyAdd(l, 0.999999f, 1e-7f);
            }
            return a + b + c + d + e + f + g + h + i2 + j + k + l;
        }
    }
}
