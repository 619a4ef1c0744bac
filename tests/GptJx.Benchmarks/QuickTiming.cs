using System.Diagnostics;
using GptJx.Backends.Cpu;
using GptJx.Tensors;

namespace GptJx.Benchmarks;

/// <summary>
/// A few seconds' timing of the decode GEMV over more weights than the caches hold (so it
/// measures memory streaming, as in a real decode step) and of the prefill GEMM.
/// </summary>
internal static unsafe class QuickTiming
{
    private sealed class ReadJob(PackedMatrix[] ms) : PoolJob
    {
        public float Sink;
        public int Streams = 1;
        private int _parts;
        public override int BeginRun(int workers) => _parts = workers;
        public override void RunChunk(int part, int worker)
        {
            float sum = 0;
            foreach (var m in ms)
            {
                var (s, e) = Share(m.Panels, part, _parts);
                float* p = (float*)m.Panel(s);
                long count = (e - s) * m.PanelBytes / 4;
                var acc = System.Runtime.Intrinsics.Vector512<float>.Zero;
                var acc2 = acc; var acc3 = acc; var acc4 = acc;
                if (Streams == 1)
                for (long i = 0; i + 64 <= count; i += 64)
                {
                    acc += System.Runtime.Intrinsics.Vector512.Load(p + i);
                    acc2 += System.Runtime.Intrinsics.Vector512.Load(p + i + 16);
                    acc3 += System.Runtime.Intrinsics.Vector512.Load(p + i + 32);
                    acc4 += System.Runtime.Intrinsics.Vector512.Load(p + i + 48);
                }
                else
                {
                    long q = count / 4 / 16 * 16;
                    for (long i = 0; i + 16 <= q; i += 16)
                    {
                        acc += System.Runtime.Intrinsics.Vector512.Load(p + i);
                        acc2 += System.Runtime.Intrinsics.Vector512.Load(p + q + i);
                        acc3 += System.Runtime.Intrinsics.Vector512.Load(p + 2 * q + i);
                        acc4 += System.Runtime.Intrinsics.Vector512.Load(p + 3 * q + i);
                    }
                }
                sum += System.Runtime.Intrinsics.Vector512.Sum(acc + acc2 + acc3 + acc4);
            }
            Sink = sum;
        }
    }

    /// <summary>The floor of loading: first-touching as many fresh bytes as the full model's weights.</summary>
    public static int Alloc()
    {
        using var pool = new WorkerPool(Environment.ProcessorCount);
        const long each = 40L << 20;
        const int count = 132;
        var start = Stopwatch.GetTimestamp();
        var blocks = new nint[count];
        for (int i = 0; i < count; i++) blocks[i] = (nint)OsMemory.AllocateLarge(each);
        pool.Run(new FillJob(blocks, each));
        double s = Stopwatch.GetElapsedTime(start).TotalSeconds;
        Console.WriteLine($"first touch of {count * each / 1e9:F2} GB: {s:F2} s, {count * each / 1e9 / s:F2} GB/s");
        foreach (var b in blocks) System.Runtime.InteropServices.NativeMemory.AlignedFree((void*)b);
        return 0;
    }

    private sealed class FillJob(nint[] blocks, long each) : PoolJob
    {
        public override int BeginRun(int workers) => blocks.Length;
        public override void RunChunk(int chunk, int worker) => new Span<byte>((void*)blocks[chunk], (int)each).Fill(1);
    }

    public static int Run(string[] args)
    {
        int threads = args.Length > 0 ? int.Parse(args[0]) : Environment.ProcessorCount;
        using (var backend = new GptJx.Backends.Cpu.CpuBackend(threads: threads))
        {
            var bw = new GptJx.Benchmarking.CpuRooflineProbe(backend).MeasureBandwidth(3);
            Console.WriteLine($"bandwidth: read {bw.ReadGBs:F1} GB/s, copy {bw.CopyGBs:F1}, triad {bw.TriadGBs:F1}");
        }
        using var pool = new WorkerPool(threads);
        const int k = 2560, n = 7680, matrices = 16;   // 16 x 39 MB of bf16 weights
        var random = new Random(1);
        var w = new float[n * k];
        for (int i = 0; i < w.Length; i++) w[i] = (float)(random.NextDouble() - 0.5) * 0.04f;
        var ms = Enumerable.Range(0, matrices).Select(_ => PackedMatrix.FromRows(w, n, k, DType.BF16, null, pool)).ToArray();
        var job = new LinearJob();
        {
            // Interleaved: a pure read of the same packed bytes, then the one-row GEMV over them.
            var read = new ReadJob(ms);
            var x1 = GC.AllocateArray<float>(k, pinned: true);
            var y1 = GC.AllocateArray<float>(n, pinned: true);
            var tr = new List<double>(); var tg = new List<double>();
            fixed (float* xp = x1, yp = y1)
                for (int rep = 0; rep < 15; rep++)
                {
                    long s0 = Stopwatch.GetTimestamp();
                    pool.Run(read);
                    tr.Add(Stopwatch.GetElapsedTime(s0).TotalSeconds);
                    s0 = Stopwatch.GetTimestamp();
                    foreach (var m in ms) { job.Set(xp, 1, k, m, yp, n, false); pool.Run(job); }
                    tg.Add(Stopwatch.GetElapsedTime(s0).TotalSeconds);
                }
            double total = (double)matrices * n * k * 2;
            var read2 = new ReadJob(ms) { Streams = 4 };
            var t2 = new List<double>();
            for (int rep = 0; rep < 9; rep++)
            {
                long s0 = Stopwatch.GetTimestamp();
                pool.Run(read2);
                t2.Add(Stopwatch.GetElapsedTime(s0).TotalSeconds);
            }
            Console.WriteLine($"read with 4 streams per thread {total / t2.Order().ElementAt(4) / 1e9:F1} GB/s");
            Console.WriteLine($"read of the packed weights {total / tr.Order().ElementAt(7) / 1e9:F1} GB/s (median), GEMV {total / tg.Order().ElementAt(7) / 1e9:F1} GB/s; ratios {string.Join(' ', tr.Zip(tg, (a, b) => (a / b).ToString("F2")))}");
        }
        foreach (int rows in new[] { 1, 8, 128 })
        {
            var x = GC.AllocateArray<float>(rows * k, pinned: true);
            var y = GC.AllocateArray<float>(rows * n, pinned: true);
            for (int i = 0; i < x.Length; i++) x[i] = (float)random.NextDouble();
            var times = new List<double>();
            fixed (float* xp = x, yp = y)
            {
                for (int rep = 0; rep < 6; rep++)
                {
                    long start = Stopwatch.GetTimestamp();
                    foreach (var m in ms)
                    {
                        job.Set(xp, rows, k, m, yp, n, false);
                        pool.Run(job);
                    }
                    times.Add(Stopwatch.GetElapsedTime(start).TotalSeconds);
                }
            }
            double t = times.Skip(1).Order().ElementAt(2);
            double bytes = (double)matrices * n * k * 2;
            double flops = 2.0 * rows * n * k * matrices;
            Console.WriteLine($"rows {rows,4}: {t * 1e3,8:F2} ms  {bytes / t / 1e9,6:F1} GB/s of weights  {flops / t / 1e9,6:F1} GFLOP/s");
        }
        foreach (var m in ms) m.Dispose();
        return 0;
    }
}
