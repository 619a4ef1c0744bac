using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using GptJx.Tensors;

namespace GptJx.Backends.Cpu;

/// <summary>Which instruction set the CPU kernels use; chosen once at run time.</summary>
public enum KernelLevel
{
    Scalar,
    Vector256,
    Vector512,
}

/// <summary>
/// y[t, :] (= or +=) x[t, :] W^T + b over a <see cref="PackedMatrix"/>, fp32 arithmetic.
/// The register-blocked micro-kernel keeps a block of token rows (8 with AVX-512) times one
/// 32-output panel in registers and loops over the inputs: per input it loads the panel's
/// 32 weights once (one 64-byte load for 16-bit types), widens them in registers (bf16 is a
/// 16-bit shift, fp16 an integer rebias), broadcasts each row's input and issues two FMAs
/// per row. Panels are split across workers; each panel is read from memory once per call
/// and reused from cache for every row block, so decode of a batch of B sequences reads the
/// weights once, not B times.
/// </summary>
[SkipLocalsInit]
internal static unsafe class Gemm
{
    public const int Width = PackedMatrix.PanelWidth;
    /// <summary>How far ahead of the kernels' weight stream to prefetch, in bytes (0: rely on the hardware prefetchers).</summary>
    internal static readonly nint PrefetchDistance = int.TryParse(Environment.GetEnvironmentVariable("GPTJX_CPU_PREFETCH"), out int d) && d >= 0 ? d : 4096;

    public static KernelLevel Best { get; } =
        Vector512.IsHardwareAccelerated && Avx512F.IsSupported && Avx512BW.IsSupported ? KernelLevel.Vector512
        : Avx2.IsSupported && Fma.IsSupported ? KernelLevel.Vector256
        : KernelLevel.Scalar;

    /// <summary>Rows per micro-kernel call at each level.</summary>
    public static int RowBlock(KernelLevel level) => level switch
    {
        KernelLevel.Vector512 => 8,
        KernelLevel.Vector256 => 2,
        _ => 4,
    };

    /// <summary>
    /// Computes panel <paramref name="panel"/> of <paramref name="w"/> for <paramref name="rows"/> rows of x
    /// (row stride <paramref name="ldx"/>) into y (row stride <paramref name="ldy"/>).
    /// </summary>
    public static void Panel(KernelLevel level, float* x, int ldx, int rows, PackedMatrix w, int panel, float* y, int ldy, bool accumulate)
    {
        int block = RowBlock(level);
        float* tmp = stackalloc float[8 * Width];
        byte* p = w.Panel(panel);
        int k = w.Inputs;
        ReadOnlySpan<byte> order = Order(level, w.Type);
        for (int r0 = 0; r0 < rows; r0 += block)
        {
            int r = Math.Min(block, rows - r0);
            float* xr = x + (long)r0 * ldx;
            switch (level)
            {
                case KernelLevel.Vector512:
                    switch (w.Type)
                    {
                        case DType.BF16: Dispatch512<BF16x32>(r, xr, ldx, p, k, tmp); break;
                        case DType.F16: Dispatch512<F16x32>(r, xr, ldx, p, k, tmp); break;
                        default: Dispatch512<F32x32>(r, xr, ldx, p, k, tmp); break;
                    }
                    break;
                case KernelLevel.Vector256:
                    if (r == 2) Kernel256<R2>(xr, ldx, p, k, w.Type, tmp);
                    else Kernel256<R1>(xr, ldx, p, k, w.Type, tmp);
                    break;
                default:
                    KernelScalar(r, xr, ldx, p, k, w.Type, tmp);
                    break;
            }
            Epilogue(tmp, order, r, w, panel, y + (long)r0 * ldy, ldy, accumulate);
        }
    }

    /// <summary>Where output j of a panel sits in the kernel's accumulators (widening splits even and odd 16-bit lanes).</summary>
    private static ReadOnlySpan<byte> Order(KernelLevel level, DType type)
    {
        if (type == DType.F32 || level == KernelLevel.Scalar) return Natural;
        return level == KernelLevel.Vector512 ? EvenOdd512 : EvenOdd256;
    }

    private static ReadOnlySpan<byte> Natural => [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31];
    private static ReadOnlySpan<byte> EvenOdd512 => [0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31];
    private static ReadOnlySpan<byte> EvenOdd256 => [0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15, 16, 24, 17, 25, 18, 26, 19, 27, 20, 28, 21, 29, 22, 30, 23, 31];

    private static void Epilogue(float* tmp, ReadOnlySpan<byte> order, int rows, PackedMatrix w, int panel, float* y, int ldy, bool accumulate)
    {
        int o0 = panel * Width;
        int count = Math.Min(Width, w.Outputs - o0);
        float[]? bias = w.Bias;
        if (count == Width && Avx512F.IsSupported && (order == EvenOdd512 || order == Natural))
        {
            // Whole panel: interleave the even/odd accumulators back into output order in registers.
            bool interleaved = order == EvenOdd512;
            var lowIndex = Vector512.Create(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
            var highIndex = Vector512.Create(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
            Vector512<float> b0 = default, b1 = default;
            if (bias is not null)
                fixed (float* bp = &bias[o0]) { b0 = Vector512.Load(bp); b1 = Vector512.Load(bp + 16); }
            for (int r = 0; r < rows; r++)
            {
                var a = Vector512.Load(tmp + r * Width);
                var b = Vector512.Load(tmp + r * Width + 16);
                Vector512<float> lo = a, hi = b;
                if (interleaved)
                {
                    lo = Avx512F.PermuteVar16x32x2(a, lowIndex, b);
                    hi = Avx512F.PermuteVar16x32x2(a, highIndex, b);
                }
                lo += b0;
                hi += b1;
                float* yr = y + (long)r * ldy + o0;
                if (accumulate)
                {
                    lo += Vector512.Load(yr);
                    hi += Vector512.Load(yr + 16);
                }
                lo.Store(yr);
                hi.Store(yr + 16);
            }
            return;
        }
        for (int r = 0; r < rows; r++)
        {
            float* acc = tmp + r * Width;
            float* yr = y + (long)r * ldy + o0;
            for (int j = 0; j < count; j++)
            {
                float v = acc[order[j]];
                if (bias is not null) v += bias[o0 + j];
                yr[j] = accumulate ? yr[j] + v : v;
            }
        }
    }

    // ---- AVX-512 -----------------------------------------------------------

    private interface IRows { static abstract int Count { get; } }
    private struct R1 : IRows { public static int Count => 1; }
    private struct R2 : IRows { public static int Count => 2; }
    private struct R3 : IRows { public static int Count => 3; }
    private struct R4 : IRows { public static int Count => 4; }
    private struct R5 : IRows { public static int Count => 5; }
    private struct R6 : IRows { public static int Count => 6; }
    private struct R7 : IRows { public static int Count => 7; }
    private struct R8 : IRows { public static int Count => 8; }

    /// <summary>One input's 32 weights of a panel, widened to two fp32 vectors.</summary>
    private interface IPanelRow512
    {
        static abstract int StepBytes { get; }
        static abstract void Load(byte* p, out Vector512<float> a, out Vector512<float> b);
    }

    /// <summary>bf16 pairs in 32-bit lanes: the even output is the low half (shift it up), the odd one the high half (mask).</summary>
    private struct BF16x32 : IPanelRow512
    {
        public static int StepBytes => 64;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Load(byte* p, out Vector512<float> a, out Vector512<float> b)
        {
            var v = Vector512.Load((uint*)p);
            a = Avx512F.ShiftLeftLogical(v, 16).AsSingle();
            b = (v & Vector512.Create(0xFFFF0000u)).AsSingle();
        }
    }

    /// <summary>fp16 pairs: each half rebased to fp32 with integer ops and one multiply (exact, subnormals included).</summary>
    private struct F16x32 : IPanelRow512
    {
        public static int StepBytes => 64;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Load(byte* p, out Vector512<float> a, out Vector512<float> b)
        {
            var v = Vector512.Load((uint*)p);
            a = Widen(v & Vector512.Create(0xFFFFu));
            b = Widen(Avx512F.ShiftRightLogical(v, 16));
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Widen(Vector512<uint> h)
        {
            var magnitude = Avx512F.ShiftLeftLogical(h & Vector512.Create(0x7FFFu), 13);
            var value = (magnitude.AsSingle() * Vector512.Create(BitConverter.UInt32BitsToSingle(0x77800000u))).AsUInt32();
            var special = Vector512.GreaterThanOrEqual(magnitude, Vector512.Create(0x0F800000u)); // inf / NaN
            value |= special & Vector512.Create(0x7F800000u);
            return (value | Avx512F.ShiftLeftLogical(h & Vector512.Create(0x8000u), 16)).AsSingle();
        }
    }

    private struct F32x32 : IPanelRow512
    {
        public static int StepBytes => 128;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Load(byte* p, out Vector512<float> a, out Vector512<float> b)
        {
            a = Vector512.Load((float*)p);
            b = Vector512.Load((float*)p + 16);
        }
    }

    // Every row count runs the same kernel, so each output sums its inputs in the same order
    // whatever else is in the batch: batching never changes a sequence's results.
    private static void Dispatch512<TF>(int rows, float* x, int ldx, byte* w, int k, float* tmp) where TF : struct, IPanelRow512
    {
        switch (rows)
        {
            case 1: Kernel512<R1, TF>(x, ldx, w, k, tmp); break;
            case 2: Kernel512<R2, TF>(x, ldx, w, k, tmp); break;
            case 3: Kernel512<R3, TF>(x, ldx, w, k, tmp); break;
            case 4: Kernel512<R4, TF>(x, ldx, w, k, tmp); break;
            case 5: Kernel512<R5, TF>(x, ldx, w, k, tmp); break;
            case 6: Kernel512<R6, TF>(x, ldx, w, k, tmp); break;
            case 7: Kernel512<R7, TF>(x, ldx, w, k, tmp); break;
            default: Kernel512<R8, TF>(x, ldx, w, k, tmp); break;
        }
    }

    private static void Kernel512<TR, TF>(float* x, int ldx, byte* w, int k, float* tmp)
        where TR : struct, IRows where TF : struct, IPanelRow512
    {
        Vector512<float> a0 = default, b0 = default, a1 = default, b1 = default, a2 = default, b2 = default, a3 = default, b3 = default;
        Vector512<float> a4 = default, b4 = default, a5 = default, b5 = default, a6 = default, b6 = default, a7 = default, b7 = default;
        float* x0 = x, x1 = x + ldx, x2 = x1 + ldx, x3 = x2 + ldx, x4 = x3 + ldx, x5 = x4 + ldx, x6 = x5 + ldx, x7 = x6 + ldx;
        nint ahead = PrefetchDistance;
        for (int i = 0; i < k; i++)
        {
            if (ahead > 0)
            {
                Sse.Prefetch0(w + ahead);
                if (TF.StepBytes == 128) Sse.Prefetch0(w + ahead + 64);
            }
            TF.Load(w, out var wa, out var wb);
            w += TF.StepBytes;
            var s = Vector512.Create(x0[i]);
            a0 = Avx512F.FusedMultiplyAdd(wa, s, a0);
            b0 = Avx512F.FusedMultiplyAdd(wb, s, b0);
            if (TR.Count > 1)
            {
                s = Vector512.Create(x1[i]);
                a1 = Avx512F.FusedMultiplyAdd(wa, s, a1);
                b1 = Avx512F.FusedMultiplyAdd(wb, s, b1);
            }
            if (TR.Count > 2)
            {
                s = Vector512.Create(x2[i]);
                a2 = Avx512F.FusedMultiplyAdd(wa, s, a2);
                b2 = Avx512F.FusedMultiplyAdd(wb, s, b2);
            }
            if (TR.Count > 3)
            {
                s = Vector512.Create(x3[i]);
                a3 = Avx512F.FusedMultiplyAdd(wa, s, a3);
                b3 = Avx512F.FusedMultiplyAdd(wb, s, b3);
            }
            if (TR.Count > 4)
            {
                s = Vector512.Create(x4[i]);
                a4 = Avx512F.FusedMultiplyAdd(wa, s, a4);
                b4 = Avx512F.FusedMultiplyAdd(wb, s, b4);
            }
            if (TR.Count > 5)
            {
                s = Vector512.Create(x5[i]);
                a5 = Avx512F.FusedMultiplyAdd(wa, s, a5);
                b5 = Avx512F.FusedMultiplyAdd(wb, s, b5);
            }
            if (TR.Count > 6)
            {
                s = Vector512.Create(x6[i]);
                a6 = Avx512F.FusedMultiplyAdd(wa, s, a6);
                b6 = Avx512F.FusedMultiplyAdd(wb, s, b6);
            }
            if (TR.Count > 7)
            {
                s = Vector512.Create(x7[i]);
                a7 = Avx512F.FusedMultiplyAdd(wa, s, a7);
                b7 = Avx512F.FusedMultiplyAdd(wb, s, b7);
            }
        }
        a0.Store(tmp); b0.Store(tmp + 16);
        if (TR.Count > 1) { a1.Store(tmp + 32); b1.Store(tmp + 48); }
        if (TR.Count > 2) { a2.Store(tmp + 64); b2.Store(tmp + 80); }
        if (TR.Count > 3) { a3.Store(tmp + 96); b3.Store(tmp + 112); }
        if (TR.Count > 4) { a4.Store(tmp + 128); b4.Store(tmp + 144); }
        if (TR.Count > 5) { a5.Store(tmp + 160); b5.Store(tmp + 176); }
        if (TR.Count > 6) { a6.Store(tmp + 192); b6.Store(tmp + 208); }
        if (TR.Count > 7) { a7.Store(tmp + 224); b7.Store(tmp + 240); }
    }

    // ---- AVX2 + FMA ----------------------------------------------------------

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Load256(byte* p, DType type, out Vector256<float> a, out Vector256<float> b, out Vector256<float> c, out Vector256<float> d)
    {
        if (type == DType.F32)
        {
            a = Vector256.Load((float*)p); b = Vector256.Load((float*)p + 8);
            c = Vector256.Load((float*)p + 16); d = Vector256.Load((float*)p + 24);
            return;
        }
        var lo = Vector256.Load((uint*)p);
        var hi = Vector256.Load((uint*)p + 8);
        if (type == DType.BF16)
        {
            var mask = Vector256.Create(0xFFFF0000u);
            a = Avx2.ShiftLeftLogical(lo, 16).AsSingle(); b = (lo & mask).AsSingle();
            c = Avx2.ShiftLeftLogical(hi, 16).AsSingle(); d = (hi & mask).AsSingle();
            return;
        }
        a = Widen256(lo & Vector256.Create(0xFFFFu)); b = Widen256(Avx2.ShiftRightLogical(lo, 16));
        c = Widen256(hi & Vector256.Create(0xFFFFu)); d = Widen256(Avx2.ShiftRightLogical(hi, 16));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Widen256(Vector256<uint> h)
    {
        var magnitude = Avx2.ShiftLeftLogical(h & Vector256.Create(0x7FFFu), 13);
        var value = (magnitude.AsSingle() * Vector256.Create(BitConverter.UInt32BitsToSingle(0x77800000u))).AsUInt32();
        var special = Vector256.GreaterThanOrEqual(magnitude, Vector256.Create(0x0F800000u));
        value |= special & Vector256.Create(0x7F800000u);
        return (value | Avx2.ShiftLeftLogical(h & Vector256.Create(0x8000u), 16)).AsSingle();
    }

    private static void Kernel256<TR>(float* x, int ldx, byte* w, int k, DType type, float* tmp) where TR : struct, IRows
    {
        Vector256<float> a0 = default, b0 = default, c0 = default, d0 = default;
        Vector256<float> a1 = default, b1 = default, c1 = default, d1 = default;
        int step = Width * type.Size();
        float* x1 = x + ldx;
        for (int i = 0; i < k; i++)
        {
            Load256(w, type, out var wa, out var wb, out var wc, out var wd);
            w += step;
            var s = Vector256.Create(x[i]);
            a0 = Fma.MultiplyAdd(wa, s, a0); b0 = Fma.MultiplyAdd(wb, s, b0);
            c0 = Fma.MultiplyAdd(wc, s, c0); d0 = Fma.MultiplyAdd(wd, s, d0);
            if (TR.Count > 1)
            {
                s = Vector256.Create(x1[i]);
                a1 = Fma.MultiplyAdd(wa, s, a1); b1 = Fma.MultiplyAdd(wb, s, b1);
                c1 = Fma.MultiplyAdd(wc, s, c1); d1 = Fma.MultiplyAdd(wd, s, d1);
            }
        }
        a0.Store(tmp); b0.Store(tmp + 8); c0.Store(tmp + 16); d0.Store(tmp + 24);
        if (TR.Count > 1) { a1.Store(tmp + 32); b1.Store(tmp + 40); c1.Store(tmp + 48); d1.Store(tmp + 56); }
    }

    // ---- portable ------------------------------------------------------------

    private static void KernelScalar(int rows, float* x, int ldx, byte* w, int k, DType type, float* tmp)
    {
        new Span<float>(tmp, rows * Width).Clear();
        Span<float> weights = stackalloc float[Width];
        int es = type.Size();
        for (int i = 0; i < k; i++)
        {
            byte* p = w + (long)i * Width * es;
            for (int j = 0; j < Width; j++)
                weights[j] = type switch
                {
                    DType.F32 => ((float*)p)[j],
                    DType.F16 => HalfConvert.F16ToSingle(((ushort*)p)[j]),
                    _ => HalfConvert.BF16ToSingle(((ushort*)p)[j]),
                };
            for (int r = 0; r < rows; r++)
            {
                float xv = x[(long)r * ldx + i];
                float* acc = tmp + r * Width;
                for (int j = 0; j < Width; j++) acc[j] = MathF.FusedMultiplyAdd(weights[j], xv, acc[j]);
            }
        }
    }
}

/// <summary>
/// The linear layer on the pool: chunks of two consecutive panels (each one contiguous stream
/// of weights), claimed by whichever worker is free.
/// </summary>
internal sealed unsafe class LinearJob : PoolJob
{
    private const int PanelsPerChunk = 2;
    public KernelLevel Level = Gemm.Best;
    private float* _x, _y;
    private int _rows, _ldx, _ldy;
    private PackedMatrix? _w;
    private bool _accumulate;

    public void Set(float* x, int rows, int ldx, PackedMatrix w, float* y, int ldy, bool accumulate)
    {
        _x = x; _rows = rows; _ldx = ldx; _w = w; _y = y; _ldy = ldy; _accumulate = accumulate;
    }

    public override int BeginRun(int workers) => (_w!.Panels + PanelsPerChunk - 1) / PanelsPerChunk;

    public override void RunChunk(int chunk, int worker)
    {
        var w = _w!;
        int end = Math.Min(w.Panels, (chunk + 1) * PanelsPerChunk);
        for (int p = chunk * PanelsPerChunk; p < end; p++)
            Gemm.Panel(Level, _x, _ldx, _rows, w, p, _y, _ldy, _accumulate);
    }
}
