using System.Numerics;
using System.Runtime.InteropServices;

namespace GptJx.Tensors;

/// <summary>
/// Finds NaN and infinite elements in raw tensor bytes. A value is non-finite exactly when its
/// exponent bits are all ones (fp32 0x7F800000, fp16 0x7C00, bf16 0x7F80), so one masked compare
/// per element, a vector at a time, tells.
/// </summary>
public static class FiniteScan
{
    /// <summary>Index of the first NaN or infinite element of <paramref name="bytes"/> (elements of <paramref name="type"/>), or -1.</summary>
    public static long FirstNonFinite(ReadOnlySpan<byte> bytes, DType type) => type switch
    {
        DType.F32 => First(MemoryMarshal.Cast<byte, uint>(bytes), 0x7F800000u),
        DType.F16 => First(MemoryMarshal.Cast<byte, ushort>(bytes), (ushort)0x7C00),
        _ => First(MemoryMarshal.Cast<byte, ushort>(bytes), (ushort)0x7F80),
    };

    private static long First<T>(ReadOnlySpan<T> bits, T exponent) where T : unmanaged, IBinaryInteger<T>
    {
        var mask = new Vector<T>(exponent);
        int i = 0;
        for (; i + Vector<T>.Count <= bits.Length; i += Vector<T>.Count)
            if (Vector.EqualsAny(new Vector<T>(bits[i..]) & mask, mask)) break;
        for (; i < bits.Length; i++)
            if ((bits[i] & exponent) == exponent) return i;
        return -1;
    }
}
