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
        var bytes = new byte[source.Length * t.Type.Size()];
        HalfConvert.FromSingle(source, t.Type, bytes);
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
        HalfConvert.ToSingle(bytes, t.Type, destination[..(int)t.ElementCount]);
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
        HalfConvert.ToSingle(bytes, c.Type, destination[..count]);
    }
}
