using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace GptJx.Tensors;

/// <summary>
/// Conversions between fp32 and the 16-bit storage types, rounding to nearest even as PyTorch and
/// the device kernels do: the one place the host converts, for checkpoints, the CPU backend and the
/// CUDA backend's host copies.
/// </summary>
public static class HalfConvert
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float BF16ToSingle(ushort bits) => BitConverter.Int32BitsToSingle(bits << 16);

    /// <summary>Round-to-nearest-even, NaN preserved (as PyTorch does).</summary>
    public static ushort SingleToBF16(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value)) return (ushort)((bits >> 16) | 0x40);
        uint rounding = 0x7FFF + ((bits >> 16) & 1);
        return (ushort)((bits + rounding) >> 16);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float F16ToSingle(ushort bits) => (float)BitConverter.UInt16BitsToHalf(bits);

    public static ushort SingleToF16(float value) => BitConverter.HalfToUInt16Bits((Half)value);

    /// <summary>bf16 is the top half of an fp32: widen and shift, 16 lanes at a time.</summary>
    public static void BF16ToSingle(ReadOnlySpan<ushort> source, Span<float> destination)
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            ref ushort s = ref MemoryMarshal.GetReference(source);
            ref float d = ref MemoryMarshal.GetReference(destination);
            for (; i + 16 <= destination.Length; i += 16)
            {
                var (lo, hi) = Vector256.Widen(Vector256.LoadUnsafe(ref s, (nuint)i));
                Vector256.ShiftLeft(lo, 16).AsSingle().StoreUnsafe(ref d, (nuint)i);
                Vector256.ShiftLeft(hi, 16).AsSingle().StoreUnsafe(ref d, (nuint)(i + 8));
            }
        }
        for (; i < destination.Length; i++) destination[i] = BF16ToSingle(source[i]);
    }

    /// <summary>The value as stored in <paramref name="type"/> and read back.</summary>
    public static float Round(float value, DType type) => type switch
    {
        DType.F16 => (float)(Half)value,
        DType.BF16 => BF16ToSingle(SingleToBF16(value)),
        _ => value,
    };

    /// <summary>Writes <paramref name="values"/> as elements of <paramref name="type"/> (little-endian) into <paramref name="destination"/>.</summary>
    public static void FromSingle(ReadOnlySpan<float> values, DType type, Span<byte> destination)
    {
        switch (type)
        {
            case DType.F32:
                MemoryMarshal.AsBytes(values).CopyTo(destination);
                break;
            case DType.F16:
                var half = MemoryMarshal.Cast<byte, ushort>(destination);
                for (int i = 0; i < values.Length; i++) half[i] = SingleToF16(values[i]);
                break;
            case DType.BF16:
                var bf = MemoryMarshal.Cast<byte, ushort>(destination);
                for (int i = 0; i < values.Length; i++) bf[i] = SingleToBF16(values[i]);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(type));
        }
    }

    /// <summary>Reads element <paramref name="index"/> of a tensor's bytes as fp32.</summary>
    public static float Read(ReadOnlySpan<byte> bytes, DType type, long index) => type switch
    {
        DType.F32 => MemoryMarshal.Read<float>(bytes[(int)(index * 4)..]),
        DType.F16 => F16ToSingle(MemoryMarshal.Read<ushort>(bytes[(int)(index * 2)..])),
        DType.BF16 => BF16ToSingle(MemoryMarshal.Read<ushort>(bytes[(int)(index * 2)..])),
        _ => throw new ArgumentOutOfRangeException(nameof(type)),
    };

    /// <summary>Converts a run of elements of <paramref name="type"/> to fp32.</summary>
    public static void ToSingle(ReadOnlySpan<byte> source, DType type, Span<float> destination)
    {
        switch (type)
        {
            case DType.F32:
                MemoryMarshal.Cast<byte, float>(source)[..destination.Length].CopyTo(destination);
                break;
            case DType.F16:
                System.Numerics.Tensors.TensorPrimitives.ConvertToSingle(MemoryMarshal.Cast<byte, Half>(source)[..destination.Length], destination);
                break;
            case DType.BF16:
                BF16ToSingle(MemoryMarshal.Cast<byte, ushort>(source)[..destination.Length], destination);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(type));
        }
    }
}
