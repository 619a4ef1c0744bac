using System.Runtime.InteropServices;

namespace GptJx.Cuda.Interop;

/// <summary>The retained primary context of one device; released with cuDevicePrimaryCtxRelease_v2.</summary>
internal sealed class PrimaryContextHandle : SafeHandle
{
    public PrimaryContextHandle(int device) : base(IntPtr.Zero, true) => Device = device;

    public int Device { get; }
    public override bool IsInvalid => handle == IntPtr.Zero;

    public static PrimaryContextHandle Retain(int device)
    {
        var h = new PrimaryContextHandle(device);
        CudaCheck.Driver(CudaDriver.cuDevicePrimaryCtxRetain(out var ctx, device));
        h.SetHandle(ctx);
        return h;
    }

    protected override bool ReleaseHandle() => CudaDriver.cuDevicePrimaryCtxRelease(Device) == 0;

    /// <summary>Makes the context current on this thread for the scope (no-op when it already is).</summary>
    public ContextScope Enter()
    {
        CudaCheck.Driver(CudaDriver.cuCtxGetCurrent(out var current));
        if (current == handle) return default;
        CudaCheck.Driver(CudaDriver.cuCtxPushCurrent(handle));
        return new ContextScope(true);
    }
}

internal readonly struct ContextScope : IDisposable
{
    private readonly bool _pushed;
    public ContextScope(bool pushed) => _pushed = pushed;
    public void Dispose()
    {
        if (_pushed) CudaDriver.cuCtxPopCurrent(out _);
    }
}

/// <summary>
/// A handle that belongs to a context: holds a reference on the context handle (so the
/// context outlives it) and makes the context current while releasing. The reference is
/// taken when the native object exists (<see cref="Set"/>), so a creation that fails leaves
/// the context's count as it was.
/// </summary>
internal abstract class ContextBoundHandle : SafeHandle
{
    private readonly PrimaryContextHandle _context;

    protected ContextBoundHandle(PrimaryContextHandle context) : base(IntPtr.Zero, true) => _context = context;

    public override bool IsInvalid => handle == IntPtr.Zero;

    public void Set(IntPtr value)
    {
        if (value == IntPtr.Zero) return;
        var added = false;
        _context.DangerousAddRef(ref added);
        SetHandle(value);
    }

    protected sealed override bool ReleaseHandle()
    {
        var ctx = _context.DangerousGetHandle();
        var pushed = CudaDriver.cuCtxPushCurrent(ctx) == 0;
        try { return Release(handle); }
        finally
        {
            if (pushed) CudaDriver.cuCtxPopCurrent(out _);
            _context.DangerousRelease();
        }
    }

    protected abstract bool Release(IntPtr value);
}

internal sealed class StreamHandle(PrimaryContextHandle c) : ContextBoundHandle(c)
{ protected override bool Release(IntPtr v) => CudaDriver.cuStreamDestroy(v) == 0; }

internal sealed class EventHandle(PrimaryContextHandle c) : ContextBoundHandle(c)
{ protected override bool Release(IntPtr v) => CudaDriver.cuEventDestroy(v) == 0; }

internal sealed class CudaModuleHandle(PrimaryContextHandle c) : ContextBoundHandle(c)
{ protected override bool Release(IntPtr v) => CudaDriver.cuModuleUnload(v) == 0; }

/// <summary>A device allocation (the CUdeviceptr is stored as the handle value).</summary>
internal sealed class DeviceMemoryHandle(PrimaryContextHandle c) : ContextBoundHandle(c)
{ protected override bool Release(IntPtr v) => CudaDriver.cuMemFree((ulong)v) == 0; }

/// <summary>Page-locked host memory from cuMemAllocHost.</summary>
internal sealed class PinnedHostHandle(PrimaryContextHandle c) : ContextBoundHandle(c)
{ protected override bool Release(IntPtr v) => CudaDriver.cuMemFreeHost(v) == 0; }

internal sealed class GraphHandle(PrimaryContextHandle c) : ContextBoundHandle(c)
{ protected override bool Release(IntPtr v) => CudaDriver.cuGraphDestroy(v) == 0; }

internal sealed class GraphExecHandle(PrimaryContextHandle c) : ContextBoundHandle(c)
{ protected override bool Release(IntPtr v) => CudaDriver.cuGraphExecDestroy(v) == 0; }

internal sealed class CublasHandle(PrimaryContextHandle c) : ContextBoundHandle(c)
{ protected override bool Release(IntPtr v) => CuBlas.cublasDestroy(v) == 0; }
