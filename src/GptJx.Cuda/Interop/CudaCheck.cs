using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace GptJx.Cuda.Interop;

/// <summary>A failed CUDA driver or cuBLAS call: which call, which status, what it means.</summary>
public sealed class CudaException : Exception
{
    public CudaException(string library, string call, int code, string errorName, string description, string? detail = null)
        : base(Format(library, call, code, errorName, description, detail))
    {
        Library = library;
        Call = call;
        Code = code;
        ErrorName = errorName;
    }

    /// <summary>"CUDA driver" or "cuBLAS".</summary>
    public string Library { get; }
    /// <summary>The native function that failed, e.g. cuMemAlloc_v2.</summary>
    public string Call { get; }
    public int Code { get; }
    /// <summary>The status name, e.g. CUDA_ERROR_OUT_OF_MEMORY.</summary>
    public string ErrorName { get; }

    public static string Format(string library, string call, int code, string errorName, string description, string? detail) =>
        $"{call} failed: {errorName} ({code}): {description}" + (string.IsNullOrEmpty(detail) ? "" : $"\n{detail}");
}

/// <summary>
/// The one place where native statuses are checked. <c>CudaCheck.Driver(CudaDriver.cuMemAlloc(out p, n))</c>
/// names the call from the expression text, so call sites stay one line.
/// </summary>
internal static unsafe class CudaCheck
{
    public static void Driver(int status, [CallerArgumentExpression(nameof(status))] string expression = "")
    {
        if (status != CudaDriver.CUDA_SUCCESS) throw DriverError(CallName(expression), status);
    }

    public static void Blas(int status, [CallerArgumentExpression(nameof(status))] string expression = "")
    {
        if (status != CuBlas.CUBLAS_STATUS_SUCCESS) throw BlasError(CallName(expression), status);
    }

    public static CudaException DriverError(string call, int status, string? detail = null)
    {
        var (name, text) = DescribeDriver(status);
        return new CudaException("CUDA driver", call, status, name, text + DriverDetail(), detail);
    }

    /// <summary>
    /// What the driver can say beyond the status, as " (...)", or "". The emulated device
    /// (tools/cuda-emulator) exports gptjx_emu_error_detail, which names the kernel, the address
    /// and the thread of a failed launch; real drivers have no such export.
    /// </summary>
    public static string DriverDetail()
    {
        if (!NativeLibraries.TryLoad(CudaDriver.Library, out var library, out _)) return "";
        if (!NativeLibrary.TryGetExport(library, "gptjx_emu_error_detail", out var export)) return "";
        var detail = Marshal.PtrToStringUTF8(((delegate* unmanaged<IntPtr>)export)());
        return string.IsNullOrEmpty(detail) ? "" : $" ({detail})";
    }

    public static CudaException BlasError(string call, int status) =>
        new("cuBLAS", call, status, BlasStatusName(status), BlasStatusText(status));

    /// <summary>The exported name of the function called in <paramref name="expression"/>:
    /// "CudaDriver.cuMemAlloc(out p, n)" gives "cuMemAlloc_v2" (the versioned export).</summary>
    public static string CallName(string expression)
    {
        var open = expression.IndexOf('(');
        var head = open < 0 ? expression : expression[..open];
        var dot = head.LastIndexOf('.');
        var name = head[(dot + 1)..].Trim();
        return Versioned.TryGetValue(name, out var exported) ? exported : name;
    }

    // Bindings whose C# name drops the _v2 suffix of the export.
    private static readonly Dictionary<string, string> Versioned = new()
    {
        ["cuDeviceTotalMem"] = "cuDeviceTotalMem_v2",
        ["cuDevicePrimaryCtxRelease"] = "cuDevicePrimaryCtxRelease_v2",
        ["cuCtxPushCurrent"] = "cuCtxPushCurrent_v2",
        ["cuCtxPopCurrent"] = "cuCtxPopCurrent_v2",
        ["cuMemGetInfo"] = "cuMemGetInfo_v2",
        ["cuMemAlloc"] = "cuMemAlloc_v2",
        ["cuMemFree"] = "cuMemFree_v2",
        ["cuMemAllocHost"] = "cuMemAllocHost_v2",
        ["cuMemcpyHtoDAsync"] = "cuMemcpyHtoDAsync_v2",
        ["cuMemcpyDtoHAsync"] = "cuMemcpyDtoHAsync_v2",
        ["cuMemcpyDtoDAsync"] = "cuMemcpyDtoDAsync_v2",
        ["cuStreamDestroy"] = "cuStreamDestroy_v2",
        ["cuEventDestroy"] = "cuEventDestroy_v2",
        ["cuStreamBeginCapture"] = "cuStreamBeginCapture_v2",
        ["cublasCreate"] = "cublasCreate_v2",
        ["cublasDestroy"] = "cublasDestroy_v2",
        ["cublasGetVersion"] = "cublasGetVersion_v2",
        ["cublasSetStream"] = "cublasSetStream_v2",
        ["cublasSetWorkspace"] = "cublasSetWorkspace_v2",
    };

    /// <summary>Name and description from cuGetErrorName/cuGetErrorString, or from a built-in table
    /// when the driver cannot answer (not loaded, or an unknown code).</summary>
    public static (string Name, string Text) DescribeDriver(int status)
    {
        string? name = null, text = null;
        try
        {
            if (NativeLibraries.TryLoad(CudaDriver.Library, out _, out _))
            {
                if (CudaDriver.cuGetErrorName(status, out var n) == 0 && n != IntPtr.Zero) name = Marshal.PtrToStringAnsi(n);
                if (CudaDriver.cuGetErrorString(status, out var t) == 0 && t != IntPtr.Zero) text = Marshal.PtrToStringAnsi(t);
            }
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { }
        if (name is null && DriverNames.TryGetValue(status, out var known)) (name, text) = (known.Name, text ?? known.Text);
        return (name ?? $"CUDA_ERROR_{status}", text ?? "unknown CUDA driver error");
    }

    private static readonly Dictionary<int, (string Name, string Text)> DriverNames = new()
    {
        [1] = ("CUDA_ERROR_INVALID_VALUE", "invalid argument"),
        [2] = ("CUDA_ERROR_OUT_OF_MEMORY", "out of memory"),
        [3] = ("CUDA_ERROR_NOT_INITIALIZED", "initialization error"),
        [4] = ("CUDA_ERROR_DEINITIALIZED", "driver shutting down"),
        [34] = ("CUDA_ERROR_STUB_LIBRARY", "CUDA driver is a stub library"),
        [46] = ("CUDA_ERROR_DEVICE_UNAVAILABLE", "CUDA-capable device(s) is/are busy or unavailable"),
        [100] = ("CUDA_ERROR_NO_DEVICE", "no CUDA-capable device is detected"),
        [101] = ("CUDA_ERROR_INVALID_DEVICE", "invalid device ordinal"),
        [200] = ("CUDA_ERROR_INVALID_IMAGE", "device kernel image is invalid"),
        [201] = ("CUDA_ERROR_INVALID_CONTEXT", "invalid device context"),
        [209] = ("CUDA_ERROR_NO_BINARY_FOR_GPU", "no kernel image is available for execution on the device"),
        [218] = ("CUDA_ERROR_INVALID_PTX", "a PTX JIT compilation failed"),
        [222] = ("CUDA_ERROR_UNSUPPORTED_PTX_VERSION", "the provided PTX was compiled with an unsupported toolchain."),
        [400] = ("CUDA_ERROR_INVALID_HANDLE", "invalid resource handle"),
        [500] = ("CUDA_ERROR_NOT_FOUND", "named symbol not found"),
        [600] = ("CUDA_ERROR_NOT_READY", "device not ready"),
        [700] = ("CUDA_ERROR_ILLEGAL_ADDRESS", "an illegal memory access was encountered"),
        [701] = ("CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES", "too many resources requested for launch"),
        [719] = ("CUDA_ERROR_LAUNCH_FAILED", "unspecified launch failure"),
        [803] = ("CUDA_ERROR_SYSTEM_DRIVER_MISMATCH", "system has unsupported display driver / cuda driver combination"),
        [900] = ("CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED", "operation not permitted when stream is capturing"),
        [901] = ("CUDA_ERROR_STREAM_CAPTURE_INVALIDATED", "operation failed due to a previous error during capture"),
        [999] = ("CUDA_ERROR_UNKNOWN", "unknown error"),
    };

    public static string BlasStatusName(int status) => status switch
    {
        0 => "CUBLAS_STATUS_SUCCESS",
        1 => "CUBLAS_STATUS_NOT_INITIALIZED",
        3 => "CUBLAS_STATUS_ALLOC_FAILED",
        7 => "CUBLAS_STATUS_INVALID_VALUE",
        8 => "CUBLAS_STATUS_ARCH_MISMATCH",
        11 => "CUBLAS_STATUS_MAPPING_ERROR",
        13 => "CUBLAS_STATUS_EXECUTION_FAILED",
        14 => "CUBLAS_STATUS_INTERNAL_ERROR",
        15 => "CUBLAS_STATUS_NOT_SUPPORTED",
        16 => "CUBLAS_STATUS_LICENSE_ERROR",
        _ => $"CUBLAS_STATUS_{status}",
    };

    private static string BlasStatusText(int status) => status switch
    {
        1 => "the cuBLAS library was not initialized",
        3 => "resource allocation failed",
        7 => "an invalid numeric value was used as an argument",
        8 => "the device does not support the requested feature",
        11 => "access to GPU memory space failed",
        13 => "the GPU program failed to execute",
        14 => "an internal cuBLAS operation failed",
        15 => "the functionality requested is not supported",
        16 => "the functionality requested requires a license",
        _ => "unknown cuBLAS status",
    };
}
