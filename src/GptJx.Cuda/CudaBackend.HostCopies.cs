using GptJx.Backends;
using GptJx.Cuda.Interop;
using GptJx.Tensors;

namespace GptJx.Cuda;

public sealed unsafe partial class CudaBackend
{
    /// <summary>
    /// Writes <paramref name="source"/> (row-major, rows x Columns values) into a tensor of any type,
    /// rounding to fp16/bf16 on the host, and sets the tensor's row count. Synchronous; for tests and
    /// op-by-op verification, not for the hot path.
    /// </summary>
    public void Upload(ITensor tensor, ReadOnlySpan<float> source)
    {
        var t = (CudaTensor)tensor;
        if (source.Length % t.Columns != 0 || source.Length / t.Columns > t.CapacityRows)
            throw new ArgumentException($"{source.Length} values do not make whole rows of [{t.CapacityRows}, {t.Columns}]", nameof(source));
        NotCapturing(nameof(Upload));
        var rows = source.Length / t.Columns;
        t.SetRows(rows);
        var bytes = HostConversions.Encode(source, t.Type);
        using var scope = _context.Enter();
        fixed (byte* p = bytes)
        {
            CudaCheck.Driver(CudaDriver.cuMemcpyHtoDAsync(t.Pointer, p, (nuint)bytes.Length, _stream.Handle));
            _stream.Synchronize();
        }
    }

    /// <summary>Reads the active rows of a tensor of any type as fp32 (waits for queued work).</summary>
    public void Download(ITensor tensor, Span<float> destination)
    {
        var t = (CudaTensor)tensor;
        if (destination.Length < t.ElementCount) throw new ArgumentException($"destination holds {destination.Length} values; the tensor has {t.ElementCount}", nameof(destination));
        NotCapturing(nameof(Download));
        var bytes = new byte[t.ElementCount * t.Type.Size()];
        using var scope = _context.Enter();
        fixed (byte* p = bytes)
        {
            if (bytes.Length > 0) CudaCheck.Driver(CudaDriver.cuMemcpyDtoHAsync(p, t.Pointer, (nuint)bytes.Length, _stream.Handle));
            _stream.Synchronize();
        }
        HostConversions.Decode(bytes, t.Type, destination);
    }

    /// <summary>Reads the K or V cache of one layer, slot and head: [positions, head_dim] as fp32.</summary>
    public void DownloadCache(IKvCache cache, bool values, int layer, int slot, int head, int positions, Span<float> destination)
    {
        var c = (CudaKvCache)cache;
        var count = positions * c.HeadDim;
        var bytes = new byte[count * c.Type.Size()];
        var offset = (((long)layer * c.Slots + slot) * c.Heads + head) * c.MaxPositions * c.HeadDim * c.Type.Size();
        using var scope = _context.Enter();
        fixed (byte* p = bytes)
        {
            CudaCheck.Driver(CudaDriver.cuMemcpyDtoHAsync(p, (values ? c.Values : c.Keys).Pointer + (ulong)offset, (nuint)bytes.Length, _stream.Handle));
            _stream.Synchronize();
        }
        HostConversions.Decode(bytes, c.Type, destination);
    }
}

/// <summary>fp32 &lt;-&gt; fp16/bf16 on the host (round to nearest even), matching the device conversions.</summary>
public static class HostConversions
{
    public static ushort ToBFloat16(float value)
    {
        var bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value)) return (ushort)((bits >> 16) | 0x40);
        return (ushort)((bits + 0x7FFFu + ((bits >> 16) & 1)) >> 16);
    }

    public static float FromBFloat16(ushort value) => BitConverter.UInt32BitsToSingle((uint)value << 16);

    /// <summary>The value as stored in <paramref name="type"/> and read back.</summary>
    public static float Round(float value, DType type) => type switch
    {
        DType.F16 => (float)(Half)value,
        DType.BF16 => FromBFloat16(ToBFloat16(value)),
        _ => value,
    };

    public static byte[] Encode(ReadOnlySpan<float> values, DType type)
    {
        var bytes = new byte[values.Length * type.Size()];
        for (var i = 0; i < values.Length; i++)
        {
            switch (type)
            {
                case DType.F32: BitConverter.TryWriteBytes(bytes.AsSpan(i * 4), values[i]); break;
                case DType.F16: BitConverter.TryWriteBytes(bytes.AsSpan(i * 2), BitConverter.HalfToUInt16Bits((Half)values[i])); break;
                case DType.BF16: BitConverter.TryWriteBytes(bytes.AsSpan(i * 2), ToBFloat16(values[i])); break;
            }
        }
        return bytes;
    }

    public static void Decode(ReadOnlySpan<byte> bytes, DType type, Span<float> destination)
    {
        var n = bytes.Length / type.Size();
        for (var i = 0; i < n; i++)
        {
            destination[i] = type switch
            {
                DType.F32 => BitConverter.ToSingle(bytes.Slice(i * 4, 4)),
                DType.F16 => (float)BitConverter.UInt16BitsToHalf(BitConverter.ToUInt16(bytes.Slice(i * 2, 2))),
                _ => FromBFloat16(BitConverter.ToUInt16(bytes.Slice(i * 2, 2))),
            };
        }
    }
}
