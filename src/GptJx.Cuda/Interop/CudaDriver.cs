using System.Runtime.InteropServices;

namespace GptJx.Cuda.Interop;

/// <summary>
/// The CUDA driver API functions this backend uses (libcuda.so.1 / nvcuda.dll), by their
/// versioned export names. Every function returns a CUresult, checked by <see cref="CudaCheck.Driver"/>.
/// </summary>
internal static unsafe partial class CudaDriver
{
    /// <summary>Logical name resolved by <see cref="NativeLibraries"/>.</summary>
    public const string Library = "gptjx-cuda-driver";

    public const int CUDA_SUCCESS = 0;
    public const int CUDA_ERROR_NOT_READY = 600;

    // CUdevice_attribute
    public const int AttrMultiprocessorCount = 16;
    public const int AttrClockRate = 13;
    public const int AttrMemoryClockRate = 36;
    public const int AttrGlobalMemoryBusWidth = 37;
    public const int AttrL2CacheSize = 38;
    public const int AttrComputeCapabilityMajor = 75;
    public const int AttrComputeCapabilityMinor = 76;
    public const int AttrMaxSharedMemoryPerBlockOptin = 97;

    // CUfunction_attribute
    public const int FuncAttrMaxDynamicSharedSizeBytes = 8;

    // CUjit_option
    public const int JitInfoLogBuffer = 3;
    public const int JitInfoLogBufferSizeBytes = 4;
    public const int JitErrorLogBuffer = 5;
    public const int JitErrorLogBufferSizeBytes = 6;

    public const uint StreamNonBlocking = 1;
    public const uint EventDefault = 0;
    public const uint EventDisableTiming = 2;
    public const int StreamCaptureModeThreadLocal = 1;

    [LibraryImport(Library)] public static partial int cuInit(uint flags);
    [LibraryImport(Library)] public static partial int cuDriverGetVersion(out int version);
    [LibraryImport(Library)] public static partial int cuGetErrorName(int error, out IntPtr name);
    [LibraryImport(Library)] public static partial int cuGetErrorString(int error, out IntPtr text);

    [LibraryImport(Library)] public static partial int cuDeviceGetCount(out int count);
    [LibraryImport(Library)] public static partial int cuDeviceGet(out int device, int ordinal);
    [LibraryImport(Library)] public static partial int cuDeviceGetName(byte* name, int length, int device);
    [LibraryImport(Library)] public static partial int cuDeviceGetAttribute(out int value, int attribute, int device);
    [LibraryImport(Library, EntryPoint = "cuDeviceTotalMem_v2")] public static partial int cuDeviceTotalMem(out nuint bytes, int device);

    [LibraryImport(Library)] public static partial int cuDevicePrimaryCtxRetain(out IntPtr context, int device);
    [LibraryImport(Library, EntryPoint = "cuDevicePrimaryCtxRelease_v2")] public static partial int cuDevicePrimaryCtxRelease(int device);
    [LibraryImport(Library, EntryPoint = "cuCtxPushCurrent_v2")] public static partial int cuCtxPushCurrent(IntPtr context);
    [LibraryImport(Library, EntryPoint = "cuCtxPopCurrent_v2")] public static partial int cuCtxPopCurrent(out IntPtr context);
    [LibraryImport(Library)] public static partial int cuCtxGetCurrent(out IntPtr context);

    [LibraryImport(Library, EntryPoint = "cuMemGetInfo_v2")] public static partial int cuMemGetInfo(out nuint free, out nuint total);
    [LibraryImport(Library, EntryPoint = "cuMemAlloc_v2")] public static partial int cuMemAlloc(out ulong pointer, nuint bytes);
    [LibraryImport(Library, EntryPoint = "cuMemFree_v2")] public static partial int cuMemFree(ulong pointer);
    [LibraryImport(Library, EntryPoint = "cuMemAllocHost_v2")] public static partial int cuMemAllocHost(out IntPtr pointer, nuint bytes);
    [LibraryImport(Library)] public static partial int cuMemFreeHost(IntPtr pointer);
    [LibraryImport(Library, EntryPoint = "cuMemcpyHtoDAsync_v2")] public static partial int cuMemcpyHtoDAsync(ulong destination, void* source, nuint bytes, IntPtr stream);
    [LibraryImport(Library, EntryPoint = "cuMemcpyDtoHAsync_v2")] public static partial int cuMemcpyDtoHAsync(void* destination, ulong source, nuint bytes, IntPtr stream);
    [LibraryImport(Library, EntryPoint = "cuMemcpyDtoDAsync_v2")] public static partial int cuMemcpyDtoDAsync(ulong destination, ulong source, nuint bytes, IntPtr stream);
    [LibraryImport(Library)] public static partial int cuMemsetD8Async(ulong destination, byte value, nuint count, IntPtr stream);

    [LibraryImport(Library)] public static partial int cuStreamCreate(out IntPtr stream, uint flags);
    [LibraryImport(Library, EntryPoint = "cuStreamDestroy_v2")] public static partial int cuStreamDestroy(IntPtr stream);
    [LibraryImport(Library)] public static partial int cuStreamSynchronize(IntPtr stream);
    [LibraryImport(Library)] public static partial int cuStreamIsCapturing(IntPtr stream, out int status);
    [LibraryImport(Library)] public static partial int cuEventCreate(out IntPtr evt, uint flags);
    [LibraryImport(Library, EntryPoint = "cuEventDestroy_v2")] public static partial int cuEventDestroy(IntPtr evt);
    [LibraryImport(Library)] public static partial int cuEventRecord(IntPtr evt, IntPtr stream);
    [LibraryImport(Library)] public static partial int cuEventSynchronize(IntPtr evt);
    [LibraryImport(Library)] public static partial int cuEventElapsedTime(out float milliseconds, IntPtr start, IntPtr end);

    [LibraryImport(Library)] public static partial int cuModuleLoadDataEx(out IntPtr module, void* image, uint numOptions, int* options, void** optionValues);
    [LibraryImport(Library)] public static partial int cuModuleUnload(IntPtr module);
    [LibraryImport(Library)] public static partial int cuModuleGetFunction(out IntPtr function, IntPtr module, byte* name);
    [LibraryImport(Library)] public static partial int cuFuncSetAttribute(IntPtr function, int attribute, int value);
    [LibraryImport(Library)] public static partial int cuLaunchKernel(IntPtr function, uint gridX, uint gridY, uint gridZ,
        uint blockX, uint blockY, uint blockZ, uint sharedBytes, IntPtr stream, void** parameters, void** extra);

    [LibraryImport(Library, EntryPoint = "cuStreamBeginCapture_v2")] public static partial int cuStreamBeginCapture(IntPtr stream, int mode);
    [LibraryImport(Library)] public static partial int cuStreamEndCapture(IntPtr stream, out IntPtr graph);
    [LibraryImport(Library)] public static partial int cuGraphInstantiateWithFlags(out IntPtr graphExec, IntPtr graph, ulong flags);
    [LibraryImport(Library)] public static partial int cuGraphLaunch(IntPtr graphExec, IntPtr stream);
    [LibraryImport(Library)] public static partial int cuGraphDestroy(IntPtr graph);
    [LibraryImport(Library)] public static partial int cuGraphExecDestroy(IntPtr graphExec);
}
