using GptJx.Cuda.Interop;

namespace GptJx.Cuda;

/// <summary>One device allocation. Freed on Dispose (or by its SafeHandle's finalizer).</summary>
internal sealed class DeviceBuffer : IDisposable
{
    private readonly DeviceMemoryHandle _handle;

    public DeviceBuffer(PrimaryContextHandle context, long bytes)
    {
        if (bytes <= 0) throw new ArgumentOutOfRangeException(nameof(bytes), bytes, "allocation size must be positive");
        _handle = new DeviceMemoryHandle(context);
        CudaCheck.Driver(CudaDriver.cuMemAlloc(out var pointer, (nuint)bytes));
        _handle.Set((IntPtr)(long)pointer);
        Bytes = bytes;
    }

    public long Bytes { get; }
    public ulong Pointer => (ulong)(long)_handle.DangerousGetHandle();

    /// <summary>Shares the allocation (e.g. a tied lm_head using the embedding table); pair with <see cref="Release"/>.</summary>
    public void AddRef()
    {
        var added = false;
        _handle.DangerousAddRef(ref added);
    }

    public void Release() => _handle.DangerousRelease();

    public void Dispose() => _handle.Dispose();
}

/// <summary>Page-locked host memory (for asynchronous copies).</summary>
internal sealed unsafe class PinnedBuffer : IDisposable
{
    private readonly PinnedHostHandle _handle;

    public PinnedBuffer(PrimaryContextHandle context, long bytes)
    {
        _handle = new PinnedHostHandle(context);
        CudaCheck.Driver(CudaDriver.cuMemAllocHost(out var pointer, (nuint)bytes));
        _handle.Set(pointer);
        Bytes = bytes;
    }

    public long Bytes { get; }
    public byte* Pointer => (byte*)_handle.DangerousGetHandle();

    public void Dispose() => _handle.Dispose();
}

internal sealed class CudaStream : IDisposable
{
    private readonly StreamHandle _handle;

    public CudaStream(PrimaryContextHandle context)
    {
        _handle = new StreamHandle(context);
        CudaCheck.Driver(CudaDriver.cuStreamCreate(out var stream, CudaDriver.StreamNonBlocking));
        _handle.Set(stream);
    }

    public IntPtr Handle => _handle.DangerousGetHandle();
    public void Synchronize() => CudaCheck.Driver(CudaDriver.cuStreamSynchronize(Handle));

    /// <summary>Whether every launch on this stream waits for the device (outside captures), so a kernel that fails is named at once.</summary>
    public bool SynchronizeEachLaunch { get; init; }

    /// <summary>Kernels and library calls queued on this stream (those captured into a graph included).</summary>
    public long Launches { get; set; }

    /// <summary>Waits for the stream unless it is being captured into a graph; returns the driver status.</summary>
    public int SynchronizeUnlessCapturing()
    {
        var status = CudaDriver.cuStreamIsCapturing(Handle, out var capturing);
        return status != 0 ? status : capturing != 0 ? 0 : CudaDriver.cuStreamSynchronize(Handle);
    }

    public void Dispose() => _handle.Dispose();
}

internal sealed class CudaEvent : IDisposable
{
    private readonly EventHandle _handle;

    public CudaEvent(PrimaryContextHandle context, bool timing = false)
    {
        _handle = new EventHandle(context);
        CudaCheck.Driver(CudaDriver.cuEventCreate(out var evt, timing ? CudaDriver.EventDefault : CudaDriver.EventDisableTiming));
        _handle.Set(evt);
    }

    public IntPtr Handle => _handle.DangerousGetHandle();
    public bool Recorded { get; private set; }
    public void Record(CudaStream stream) { CudaCheck.Driver(CudaDriver.cuEventRecord(Handle, stream.Handle)); Recorded = true; }
    public void Synchronize() { if (Recorded) CudaCheck.Driver(CudaDriver.cuEventSynchronize(Handle)); }
    public void Dispose() => _handle.Dispose();
}
