namespace GptJx.Cuda;

/// <summary>What the driver reports about one device.</summary>
public sealed record CudaDeviceInfo(int Ordinal, string Name, int Major, int Minor, int DriverVersion,
    long TotalBytes, long FreeBytes, int Multiprocessors)
{
    /// <summary>"13.0" from the driver's 13000.</summary>
    public string DriverText => $"{DriverVersion / 1000}.{DriverVersion % 1000 / 10}";

    public override string ToString() =>
        $"cuda:{Ordinal} {Name}, compute capability {Major}.{Minor}, {Multiprocessors} SMs, driver CUDA {DriverText}, " +
        $"{CudaMemoryPlan.GiB(TotalBytes)} ({CudaMemoryPlan.GiB(FreeBytes)} free)";
}

/// <summary>Options fixed when the backend is created (scratch sizes, load staging, cuBLAS workspace).</summary>
public sealed record CudaBackendOptions
{
    /// <summary>Most token rows one op handles (ids, gathered rows, sampled rows).</summary>
    public int MaxRows { get; init; } = 8192;
    /// <summary>Most sequences in one attention batch.</summary>
    public int MaxSequences { get; init; } = 256;
    /// <summary>Size of each of the two pinned (and device) staging buffers used while loading weights.</summary>
    public long StagingChunkBytes { get; init; } = CudaMemoryPlan.DefaultStagingChunkBytes;
    /// <summary>cuBLAS workspace, set explicitly so GEMMs can be captured in a CUDA graph.</summary>
    public long WorkspaceBytes { get; init; } = CudaMemoryPlan.DefaultWorkspaceBytes;
    /// <summary>Pinned bytes for the host-to-device inputs of one captured graph (ids, descriptors, rows).</summary>
    public long GraphInputBytes { get; init; } = 1 << 20;
    /// <summary>
    /// Wait for the device after every kernel and GEMM (outside graph captures), so a fault is reported
    /// by the launch that caused it, naming the kernel, instead of by a later synchronization.
    /// Slow; for debugging. Default: the environment variable GPTJX_CUDA_SYNC=1.
    /// </summary>
    public bool SynchronizeEachLaunch { get; init; } = Environment.GetEnvironmentVariable("GPTJX_CUDA_SYNC") == "1";
}

/// <summary>Bytes copied from the checkpoint to the device and the wall time it took.</summary>
public readonly record struct WeightLoadStatistics(long Bytes, double Seconds)
{
    public double GigabytesPerSecond => Seconds > 0 ? Bytes / Seconds / 1e9 : 0;
    public override string ToString() => $"{Bytes / 1e9:0.00} GB in {Seconds:0.00} s ({GigabytesPerSecond:0.00} GB/s)";
}
