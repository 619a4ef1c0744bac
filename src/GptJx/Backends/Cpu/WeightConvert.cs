using System.Runtime.InteropServices;
using GptJx.Tensors;

namespace GptJx.Backends.Cpu;

/// <summary>Element-type conversions into and out of packed weight rows.</summary>
internal static unsafe class WeightConvert
{
    public static void Convert(ReadOnlySpan<byte> source, DType from, byte* destination, DType to, int count)
    {
        if (from == to)
        {
            source[..(count * from.Size())].CopyTo(new Span<byte>(destination, count * to.Size()));
            return;
        }
        Span<float> buffer = count <= 8192 ? stackalloc float[count] : new float[count];
        HalfConvert.ToSingle(source, from, buffer);
        FromSingle(buffer, destination, to);
    }

    public static void FromSingle(ReadOnlySpan<float> values, byte* destination, DType to)
    {
        switch (to)
        {
            case DType.F32:
                values.CopyTo(new Span<float>(destination, values.Length));
                break;
            case DType.F16:
                System.Numerics.Tensors.TensorPrimitives.ConvertToHalf(values, new Span<Half>(destination, values.Length));
                break;
            case DType.BF16:
                var dst = new Span<ushort>(destination, values.Length);
                for (int i = 0; i < values.Length; i++) dst[i] = HalfConvert.SingleToBF16(values[i]);
                break;
        }
    }

    /// <summary>Widens one packed row to fp32.</summary>
    public static void ToSingle(byte* row, DType type, Span<float> destination) =>
        HalfConvert.ToSingle(new ReadOnlySpan<byte>(row, destination.Length * type.Size()), type, destination);
}
