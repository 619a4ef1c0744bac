using System.Globalization;
using GptJx.Backends;
using GptJx.Benchmarking;
using GptJx.Cuda.Interop;
using GptJx.Tensors;

namespace GptJx.Cuda;

public sealed partial class CudaBackend : IRooflineProbeSource
{
    /// <summary>Measures this device's copy/triad/read bandwidth and cuBLAS rate (see <see cref="CudaRooflineProbe"/>).</summary>
    public IRooflineProbe CreateRooflineProbe() => new CudaRooflineProbe(this);

    internal PrimaryContextHandle Context => _context;
    internal CudaStream Stream => _stream;
    internal KernelCatalog Kernels => _kernels;
    internal IntPtr BlasHandle => _blas.DangerousGetHandle();
}

/// <summary>
/// The ceilings of one CUDA device, timed with CUDA events on the backend's stream:
/// <list type="bullet">
/// <item>copy: cuMemcpyDtoDAsync of one buffer into another, counting read + write bytes (STREAM copy);</item>
/// <item>triad: a = b + s c in a kernel, three buffers' bytes (the roofline figure, as on the CPU);</item>
/// <item>read: a kernel that only reads one buffer (what decode does with the weights);</item>
/// <item>peak: cuBLAS GEMM on square operands (up to 8192^3, as large as fits in a tenth of a second) in the weight type, fp32 accumulation;</item>
/// <item>GEMM: the engine's own product at a prefill shape (up to 2048 rows through GPT-JX's fused c_fc | c_fc2, 2560 x 13652).</item>
/// </list>
/// Buffers are 1 GiB each (less when the device has less free), far beyond any L2 cache.
/// Nothing may be captured while a probe runs.
/// </summary>
public sealed unsafe class CudaRooflineProbe : IRooflineProbe
{
    private readonly CudaBackend _backend;

    internal CudaRooflineProbe(CudaBackend backend) => _backend = backend;

    public string Device => _backend.Name;

    /// <summary>Size of each bandwidth buffer for <paramref name="freeBytes"/> of free device memory: 1 GiB, or an eighth of free, in MiB.</summary>
    public static long BufferBytesFor(long freeBytes) => Math.Max(1L << 20, Math.Min(1L << 30, freeBytes / 8) & ~((1L << 20) - 1));

    /// <summary>GB/s from bytes moved and milliseconds.</summary>
    public static double GigabytesPerSecond(double bytes, double milliseconds) => milliseconds > 0 ? bytes / (milliseconds * 1e-3) / 1e9 : 0;

    /// <summary>GFLOP/s of an m x k x n product (2 m k n flops) in milliseconds.</summary>
    public static double GemmGflops(long m, long k, long n, double milliseconds) => milliseconds > 0 ? 2.0 * m * k * n / (milliseconds * 1e-3) / 1e9 : 0;

    public IReadOnlyDictionary<string, string> Describe()
    {
        var d = _backend.Device;
        var inv = CultureInfo.InvariantCulture;
        var facts = new Dictionary<string, string>
        {
            ["gpu"] = d.Name,
            ["compute capability"] = $"{d.Major}.{d.Minor}",
            ["multiprocessors"] = d.Multiprocessors.ToString(inv),
            ["CUDA driver API"] = d.DriverText,
            ["cuBLAS"] = $"{_backend.CublasVersion / 10000}.{_backend.CublasVersion / 100 % 100}.{_backend.CublasVersion % 100}",
            ["memory"] = CudaMemoryPlan.GiB(d.TotalBytes),
            ["weights"] = _backend.WeightType.Name(),
        };
        using (_backend.Context.Enter())
        {
            var (free, _) = _backend.MemoryInfo();
            facts["memory free"] = CudaMemoryPlan.GiB(free);
            if (CudaDriver.cuDeviceGet(out var dev, d.Ordinal) == 0)
            {
                int Attr(int a) => CudaDriver.cuDeviceGetAttribute(out var v, a, dev) == 0 ? v : 0;
                var l2 = Attr(CudaDriver.AttrL2CacheSize);
                if (l2 > 0) facts["L2 cache"] = CudaMemoryPlan.MiB(l2);
                var clock = Attr(CudaDriver.AttrClockRate);
                if (clock > 0) facts["SM clock"] = $"{clock / 1000} MHz";
                var memClock = Attr(CudaDriver.AttrMemoryClockRate);
                var bus = Attr(CudaDriver.AttrGlobalMemoryBusWidth);
                if (memClock > 0 && bus > 0)
                    facts["memory bus"] = string.Format(inv, "{0}-bit at {1} MHz ({2:F0} GB/s theoretical)", bus, memClock / 1000, 2.0 * memClock * 1e3 * bus / 8 / 1e9);
            }
        }
        try
        {
            const string version = "/proc/driver/nvidia/version";
            if (File.Exists(version))
            {
                var line = File.ReadLines(version).FirstOrDefault() ?? "";
                var m = System.Text.RegularExpressions.Regex.Match(line, @"Kernel Module(?: for \S+)?\s+(\d+\.\d+(?:\.\d+)?)");
                if (m.Success) facts["NVIDIA driver"] = m.Groups[1].Value;
            }
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return facts;
    }

    public BandwidthCeiling MeasureBandwidth(int repeats)
    {
        repeats = Math.Max(1, repeats);
        using var scope = _backend.Context.Enter();
        var (free, _) = _backend.MemoryInfo();
        var bytes = BufferBytesFor(free);
        var ctx = _backend.Context;
        var stream = _backend.Stream;
        using var a = new DeviceBuffer(ctx, bytes);
        using var b = new DeviceBuffer(ctx, bytes);
        using var c = new DeviceBuffer(ctx, bytes);
        using var sink = new DeviceBuffer(ctx, 256);
        foreach (var buffer in new[] { a, b, c }) CudaCheck.Driver(CudaDriver.cuMemsetD8Async(buffer.Pointer, 0x3C, (nuint)bytes, stream.Handle));
        var blocks = 4L * _backend.Device.Multiprocessors;

        var copy = Best(repeats, () => CudaCheck.Driver(CudaDriver.cuMemcpyDtoDAsync(a.Pointer, b.Pointer, (nuint)bytes, stream.Handle)));
        var triad = Best(repeats, () => _backend.Kernels["probe_triad"].Launch(Dim3.Of(blocks), new Dim3(512), 0, stream,
            new KernelArgs().Ptr(a.Pointer).Ptr(b.Pointer).Ptr(c.Pointer).Float(0.5f).Long(bytes / 16)));
        var read = Best(repeats, () => _backend.Kernels["probe_read"].Launch(Dim3.Of(blocks), new Dim3(512), 0, stream,
            new KernelArgs().Ptr(a.Pointer).Long(bytes / 16).Ptr(sink.Pointer)));
        stream.Synchronize();
        return new BandwidthCeiling(GigabytesPerSecond(2.0 * bytes, copy), GigabytesPerSecond(3.0 * bytes, triad),
            GigabytesPerSecond(bytes, read), bytes, _backend.Device.Multiprocessors);
    }

    public ComputeCeiling MeasureCompute(int repeats)
    {
        repeats = Math.Max(1, repeats);
        using var scope = _backend.Context.Enter();
        var type = _backend.WeightType;
        // Problems sized to the device: the largest that take about a tenth of a second at most
        // (8192^3 and 2048 rows on a data-centre GPU; less on a slow or an emulated device).
        var size = 1024;
        var ms = MeasureGemm(1, size, size, size, type);
        while (size < 8192 && ms * 8 <= GemmBudgetMs)
        {
            size *= 2;
            ms = MeasureGemm(1, size, size, size, type);
        }
        var peak = GemmGflops(size, size, size, MeasureGemm(repeats, size, size, size, type));
        const int k = 2560, n = 2 * 6826;
        var rows = 2048;
        while (rows > 16 && 2.0 * rows * k * n / (peak * 1e6) > GemmBudgetMs) rows /= 4;
        var engine = MeasureGemm(repeats, rows, k, n, type);  // [u | g] is written in the weight type, as the engine does
        return new ComputeCeiling(peak, GemmGflops(rows, k, n, engine), $"{rows} x {k} x {n}",
            $"{type.Name()} (fp32 accumulation, peak at {size}^3)", _backend.Device.Multiprocessors);
    }

    private const double GemmBudgetMs = 100;

    /// <summary>Best milliseconds of y[m, n] = x[m, k] W^T with W [n, k] in the weight type, y in <paramref name="outputType"/>.</summary>
    private double MeasureGemm(int repeats, int m, int k, int n, DType outputType)
    {
        var ctx = _backend.Context;
        var stream = _backend.Stream;
        var type = _backend.WeightType;
        using var w = new DeviceBuffer(ctx, (long)n * k * type.Size());
        using var xb = new DeviceBuffer(ctx, (long)m * k * type.Size());
        using var yb = new DeviceBuffer(ctx, (long)m * n * outputType.Size());
        CudaCheck.Driver(CudaDriver.cuMemsetD8Async(w.Pointer, 0x3C, (nuint)w.Bytes, stream.Handle));
        CudaCheck.Driver(CudaDriver.cuMemsetD8Async(xb.Pointer, 0x3C, (nuint)xb.Bytes, stream.Handle));
        var gemm = GemmShape.For(m, k, n, k);
        return Best(repeats, () => _backend.GemmRaw(gemm, w.Pointer, type, xb.Pointer, type, yb.Pointer, outputType, 0f));
    }

    /// <summary>Runs <paramref name="work"/> once to warm up, then <paramref name="repeats"/> times between timing events; the fastest in ms.</summary>
    private double Best(int repeats, Action work)
    {
        var stream = _backend.Stream;
        using var start = new CudaEvent(_backend.Context, timing: true);
        using var stop = new CudaEvent(_backend.Context, timing: true);
        work();
        var best = double.MaxValue;
        for (var i = 0; i < repeats; i++)
        {
            start.Record(stream);
            work();
            stop.Record(stream);
            stop.Synchronize();
            CudaCheck.Driver(CudaDriver.cuEventElapsedTime(out var ms, start.Handle, stop.Handle));
            best = Math.Min(best, ms);
        }
        return best;
    }
}
