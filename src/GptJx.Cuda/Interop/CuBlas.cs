using System.Runtime.InteropServices;

namespace GptJx.Cuda.Interop;

/// <summary>
/// The cuBLAS functions this backend uses (libcublas.so.13/.12/.11, cublas64_13/12/11.dll).
/// Every function returns a cublasStatus_t, checked by <see cref="CudaCheck.Blas"/>.
/// </summary>
internal static unsafe partial class CuBlas
{
    /// <summary>Logical name resolved by <see cref="NativeLibraries"/>.</summary>
    public const string Library = "gptjx-cublas";

    public const int CUBLAS_STATUS_SUCCESS = 0;

    // cublasOperation_t
    public const int OpN = 0;
    public const int OpT = 1;

    // cudaDataType
    public const int CudaR32F = 0;
    public const int CudaR16F = 2;
    public const int CudaR16BF = 14;

    // cublasComputeType_t / cublasGemmAlgo_t / cublasMath_t
    public const int Compute32F = 68;
    public const int GemmDefault = -1;
    public const int DefaultMath = 0;

    [LibraryImport(Library, EntryPoint = "cublasCreate_v2")] public static partial int cublasCreate(out IntPtr handle);
    [LibraryImport(Library, EntryPoint = "cublasDestroy_v2")] public static partial int cublasDestroy(IntPtr handle);
    [LibraryImport(Library, EntryPoint = "cublasGetVersion_v2")] public static partial int cublasGetVersion(IntPtr handle, out int version);
    [LibraryImport(Library, EntryPoint = "cublasSetStream_v2")] public static partial int cublasSetStream(IntPtr handle, IntPtr stream);
    [LibraryImport(Library, EntryPoint = "cublasSetWorkspace_v2")] public static partial int cublasSetWorkspace(IntPtr handle, ulong workspace, nuint bytes);
    [LibraryImport(Library)] public static partial int cublasSetMathMode(IntPtr handle, int mode);

    [LibraryImport(Library)] public static partial int cublasGemmEx(IntPtr handle, int transA, int transB, int m, int n, int k,
        float* alpha, ulong a, int aType, int lda, ulong b, int bType, int ldb,
        float* beta, ulong c, int cType, int ldc, int computeType, int algorithm);
}
