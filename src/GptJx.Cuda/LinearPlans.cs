using GptJx.Cuda.Interop;

namespace GptJx.Cuda;

/// <summary>
/// cuBLAS parameters of a row-major linear product y[m, n] = x[m, k] W^T (+ beta y), W kept as
/// [n, ldw] rows (one per output; ldw >= k). cuBLAS is column-major, so it computes
/// y^T = W x^T: its A is W^T ([k, n] column-major with leading dimension ldw), transposed (OpT)
/// to [n, k]; its B is x^T ([k, m] column-major, leading dimension k), untransposed; its C is
/// y^T ([n, m] column-major, leading dimension n). cuBLAS m, n, k are therefore n, m, k.
/// </summary>
public readonly record struct GemmShape(int TransA, int TransB, int M, int N, int K, int Lda, int Ldb, int Ldc)
{
    public static GemmShape For(int rows, int k, int n, int ldw)
    {
        if (rows < 1 || k < 1 || n < 1 || ldw < k) throw new ArgumentOutOfRangeException(nameof(rows), $"GEMM {rows} x {k} x {n} with ldw {ldw}");
        return new GemmShape(CuBlas.OpT, CuBlas.OpN, n, rows, k, ldw, k, n);
    }
}

/// <summary>Device layout of a linear layer's weight: [out, Ld] rows, Ld = in rounded up to 8 (16-byte rows) unless shared.</summary>
public static class WeightRows
{
    /// <summary>Row stride, in elements, of a weight with <paramref name="inFeatures"/> inputs.</summary>
    public static int LeadingDimension(int inFeatures) => (inFeatures + 7) & ~7;
}

/// <summary>
/// Launch of kernels/gemv.cu: whether it applies (few rows, 16-byte weight rows, staged input in
/// shared memory) and its geometry. Larger products go to cuBLAS.
/// </summary>
public readonly record struct GemvPlan(int Blocks, int Threads, int SharedBytes)
{
    public const int MaxRows = 4;
    public const int Threads256 = 256;
    public const int OutputsPerBlock = Threads256 / 32;

    /// <summary>The launch for <paramref name="rows"/> x [<paramref name="k"/>] times [n, ldw] rows, or null when cuBLAS should run it.</summary>
    public static GemvPlan? For(int rows, int k, int n, int ldw, int elementSize, int maxSharedBytes)
    {
        if (rows < 1 || rows > MaxRows || ldw % 8 != 0 || ldw < k) return null;
        var shared = (long)rows * WeightRows.LeadingDimension(k) * elementSize;
        if (shared > maxSharedBytes) return null;
        return new GemvPlan((n + OutputsPerBlock - 1) / OutputsPerBlock, Threads256, (int)shared);
    }
}
