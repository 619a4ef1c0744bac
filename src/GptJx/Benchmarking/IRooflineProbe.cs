namespace GptJx.Benchmarking;

/// <summary>
/// Measures the ceilings a backend's speed is judged against, on the machine it runs on:
/// memory bandwidth (what bounds decode, which reads every weight once per token) and the
/// matrix-multiply rate (what bounds prefill). The CPU supplies a copy/triad test and an FMA
/// peak; a GPU backend supplies device copy bandwidth and its GEMM library's rate.
/// </summary>
public interface IRooflineProbe
{
    /// <summary>What the probe measures, in words (CPU model, GPU name, ...).</summary>
    string Device { get; }

    /// <summary>Facts about the device for the report: CPU model, cores and SIMD level, or GPU name, driver and CUDA version.</summary>
    IReadOnlyDictionary<string, string> Describe();

    /// <summary>Memory bandwidth tests, best of <paramref name="repeats"/> each.</summary>
    BandwidthCeiling MeasureBandwidth(int repeats);

    /// <summary>Arithmetic peak and matrix-multiply rate, best of <paramref name="repeats"/> each.</summary>
    ComputeCeiling MeasureCompute(int repeats);
}

/// <summary>Lets a backend supply its own probe (a GPU backend measures its device).</summary>
public interface IRooflineProbeSource
{
    IRooflineProbe CreateRooflineProbe();
}

/// <param name="CopyGBs">a[i] = b[i]: 2 arrays' bytes per element (STREAM's convention: the write-allocate read of a is not counted).</param>
/// <param name="TriadGBs">a[i] = b[i] + s * c[i]: 3 arrays' bytes per element (STREAM's convention); the roofline figure.</param>
/// <param name="ReadGBs">sum of one array: read-only streaming, the access pattern of decode.</param>
/// <param name="BufferBytes">Size of each array, far beyond the last-level cache.</param>
public sealed record BandwidthCeiling(double CopyGBs, double TriadGBs, double ReadGBs, long BufferBytes, int Threads)
{
    /// <summary>The bandwidth the decode roofline uses (triad).</summary>
    public double RooflineGBs => TriadGBs;
}

/// <param name="PeakGflops">Independent FMA chains in registers: the arithmetic peak of the compute type (fp32 on the CPU).</param>
/// <param name="GemmGflops">The engine's own matrix product on a [rows, k] x [k, n] problem with 16-bit weights.</param>
/// <param name="GemmShape">"rows x k x n" of the GEMM test.</param>
public sealed record ComputeCeiling(double PeakGflops, double GemmGflops, string GemmShape, string ComputeType, int Threads);
