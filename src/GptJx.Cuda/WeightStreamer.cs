using System.Diagnostics;
using GptJx.Checkpoints;
using GptJx.Cuda.Interop;
using GptJx.Tensors;

namespace GptJx.Cuda;

/// <summary>
/// Streams checkpoint bytes (memory-mapped) to the device in chunks through two pinned host
/// buffers: while chunk i is copied to the device asynchronously, chunk i+1 is copied into the
/// other pinned buffer. Each chunk lands in a device staging buffer and a convert kernel writes
/// it, converted to the destination type, at its place in the destination (row/column offsets
/// for concatenated weights). An event per buffer says when it is free again. Host memory
/// stays bounded by the two buffers.
/// </summary>
internal sealed unsafe class WeightStreamer : IDisposable
{
    private readonly PrimaryContextHandle _context;
    private readonly CudaStream _stream;
    private readonly KernelCatalog _kernels;
    private readonly long _chunkBytes;
    private readonly PinnedBuffer[] _host = new PinnedBuffer[2];
    private readonly DeviceBuffer[] _device = new DeviceBuffer[2];
    private readonly CudaEvent[] _free = new CudaEvent[2];
    private int _next;
    private readonly Stopwatch _clock = new();

    public WeightStreamer(PrimaryContextHandle context, CudaStream stream, KernelCatalog kernels, long chunkBytes)
    {
        _context = context;
        _stream = stream;
        _kernels = kernels;
        _chunkBytes = chunkBytes;
        for (var i = 0; i < 2; i++)
        {
            _host[i] = new PinnedBuffer(context, chunkBytes);
            _device[i] = new DeviceBuffer(context, chunkBytes);
            _free[i] = new CudaEvent(context);
        }
    }

    public long Bytes { get; private set; }
    public double Seconds => _clock.Elapsed.TotalSeconds;

    /// <summary>
    /// Copies a [rows, cols] source (a 1-D tensor is one row) to
    /// destination[(rowOffset + r) * leadingDim + colOffset + c], converting to <paramref name="destinationType"/>;
    /// with <paramref name="transpose"/>, to destination[(rowOffset + c) * leadingDim + colOffset + r].
    /// </summary>
    public void Copy(TensorData source, DeviceBuffer destination, DType destinationType, long leadingDim, long rowOffset, int colOffset, bool transpose = false)
    {
        var shape = source.Info.Shape;
        long rows = shape.Length >= 2 ? shape[0] : 1;
        long cols = shape.Length >= 2 ? shape.Skip(1).Aggregate(1L, (a, b) => a * b) : shape.Length == 1 ? shape[0] : 1;
        int elem = source.Info.DType.Size();
        long rowBytes = cols * elem;
        if (rowBytes > _chunkBytes) throw new CheckpointException(source.Info.File, source.Info.Name, $"a row of {rowBytes} bytes exceeds the {_chunkBytes}-byte load buffer");
        var (outRows, outCols) = transpose ? (cols, rows) : (rows, cols);
        if (outCols + colOffset > leadingDim || (rowOffset + outRows - 1) * leadingDim + colOffset + outCols > destination.Bytes / destinationType.Size())
            throw new InvalidOperationException($"tensor '{source.Info.Name}' does not fit its destination");
        var kernel = _kernels[$"convert{(transpose ? "_t" : "")}_{CudaBackend.Suffix(source.Info.DType)}_{CudaBackend.Suffix(destinationType)}"];
        long rowsPerChunk = Math.Max(1, _chunkBytes / rowBytes);
        _clock.Start();
        try
        {
            for (long r0 = 0; r0 < rows; r0 += rowsPerChunk)
            {
                long n = Math.Min(rowsPerChunk, rows - r0);
                long bytes = n * rowBytes;
                var b = _next;
                _next ^= 1;
                _free[b].Synchronize();  // the device is done with this pair of buffers
                Buffer.MemoryCopy(source.Pointer + r0 * rowBytes, _host[b].Pointer, _chunkBytes, bytes);
                CudaCheck.Driver(CudaDriver.cuMemcpyHtoDAsync(_device[b].Pointer, _host[b].Pointer, (nuint)bytes, _stream.Handle));
                if (transpose)
                    kernel.Launch(Dim3.Of((cols + 31) / 32, Math.Min((n + 31) / 32, 65535)), new Dim3(32, 8), 0, _stream,
                        new KernelArgs().Ptr(_device[b].Pointer).Long(n).Int((int)cols).Ptr(destination.Pointer)
                            .Long(leadingDim).Long(rowOffset).Long(colOffset + r0));
                else
                    kernel.Launch(Dim3.Of((cols + 255) / 256, Math.Min(n, 65535)), new Dim3(256), 0, _stream,
                        new KernelArgs().Ptr(_device[b].Pointer).Long(n).Int((int)cols).Ptr(destination.Pointer)
                            .Long(leadingDim).Long(rowOffset + r0).Int(colOffset));
                _free[b].Record(_stream);
                Bytes += bytes;
            }
        }
        finally { _clock.Stop(); }
    }

    /// <summary>Waits until every queued chunk has reached its destination.</summary>
    public void Finish()
    {
        _clock.Start();
        _stream.Synchronize();
        _clock.Stop();
    }

    public void Dispose()
    {
        for (var i = 0; i < 2; i++)
        {
            _free[i]?.Dispose();
            _device[i]?.Dispose();
            _host[i]?.Dispose();
        }
    }
}
