using GptJx.Backends;
using GptJx.Checkpoints;
using GptJx.Cuda.Interop;
using GptJx.Tensors;

namespace GptJx.Cuda;

public sealed unsafe partial class CudaBackend
{
    public IEmbedding LoadEmbedding(TensorData table)
    {
        var shape = table.Info.Shape;
        if (shape.Length != 2) throw new CheckpointException(table.Info.File, table.Info.Name, $"embedding must be 2-D [V, D], not {table.Info.ShapeText}");
        NotCapturing(nameof(LoadEmbedding));
        using var scope = _context.Enter();
        var buffer = new DeviceBuffer(_context, shape[0] * shape[1] * WeightType.Size());
        Streamer.Copy(table, buffer, WeightType, shape[1], 0, 0);
        var embedding = new CudaEmbedding(buffer, (int)shape[0], (int)shape[1], WeightType);
        _embeddingsBySource[(nint)table.Pointer] = embedding;
        return embedding;
    }

    public ILinear LoadLinear(IReadOnlyList<TensorData> weights, IReadOnlyList<TensorData>? biases, WeightLayout layout)
    {
        if (weights.Count == 0) throw new ArgumentException("a linear layer needs at least one weight", nameof(weights));
        if (biases is not null && biases.Count != weights.Count)
            throw new ArgumentException($"{biases.Count} biases for {weights.Count} weights", nameof(biases));
        NotCapturing(nameof(LoadLinear));
        var inOut = layout == WeightLayout.InOut;
        long inFeatures = -1, outFeatures = 0;
        foreach (var w in weights)
        {
            if (w.Info.Shape.Length != 2) throw new CheckpointException(w.Info.File, w.Info.Name, $"weight must be 2-D, not {w.Info.ShapeText}");
            long k = inOut ? w.Info.Shape[0] : w.Info.Shape[1];
            if (inFeatures >= 0 && k != inFeatures)
                throw new CheckpointException(w.Info.File, w.Info.Name, $"input width {k} differs from the other parts' {inFeatures}");
            inFeatures = k;
            outFeatures += inOut ? w.Info.Shape[1] : w.Info.Shape[0];
        }
        if (biases is not null)
            for (var i = 0; i < biases.Count; i++)
            {
                long n = inOut ? weights[i].Info.Shape[1] : weights[i].Info.Shape[0];
                if (biases[i].Info.ElementCount != n)
                    throw new CheckpointException(biases[i].Info.File, biases[i].Info.Name, $"bias {biases[i].Info.ShapeText} does not match {n} outputs");
            }

        using var scope = _context.Enter();
        DeviceBuffer? bias = null;
        if (biases is not null)
        {
            bias = new DeviceBuffer(_context, outFeatures * 4);
            long offset = 0;
            foreach (var b in biases)
            {
                Streamer.Copy(b, bias, DType.F32, outFeatures, 0, (int)offset);
                offset += b.Info.ElementCount;
            }
        }

        // A tied lm_head ([V, D] OutIn, the embedding's own bytes) shares the embedding's device table.
        if (!inOut && weights.Count == 1 && _embeddingsBySource.TryGetValue((nint)weights[0].Pointer, out var tied)
            && tied.Rows == outFeatures && tied.Columns == inFeatures)
        {
            tied.Table.AddRef();
            return new CudaLinear(tied.Table, bias, (int)inFeatures, (int)outFeatures, (int)inFeatures, layout, WeightType, sharedWeight: true);
        }

        // Device layout [N, ld]: one row per output, ld = K rounded up to 8 with zeroed padding.
        int ld = WeightRows.LeadingDimension((int)inFeatures);
        var buffer = new DeviceBuffer(_context, outFeatures * ld * WeightType.Size());
        if (ld != inFeatures) CudaCheck.Driver(CudaDriver.cuMemsetD8Async(buffer.Pointer, 0, (nuint)buffer.Bytes, _stream.Handle));
        long at = 0;
        foreach (var w in weights)
        {
            if (inOut)
            {
                Streamer.Copy(w, buffer, WeightType, ld, at, 0, transpose: true);  // [K, n_i] transposed into rows at..at+n_i of [N, ld]
                at += w.Info.Shape[1];
            }
            else
            {
                Streamer.Copy(w, buffer, WeightType, ld, at, 0);                   // [n_i, K] into rows at..at+n_i of [N, ld]
                at += w.Info.Shape[0];
            }
        }
        return new CudaLinear(buffer, bias, (int)inFeatures, (int)outFeatures, ld, layout, WeightType, sharedWeight: false);
    }

    public INorm LoadNorm(TensorData gain, TensorData? bias)
    {
        var width = gain.Info.ElementCount;
        if (bias is { } b && b.Info.ElementCount != width)
            throw new CheckpointException(b.Info.File, b.Info.Name, $"norm bias {b.Info.ShapeText} does not match gain {gain.Info.ShapeText}");
        NotCapturing(nameof(LoadNorm));
        using var scope = _context.Enter();
        var g = new DeviceBuffer(_context, width * 4);
        Streamer.Copy(gain, g, DType.F32, width, 0, 0);
        DeviceBuffer? beta = null;
        if (bias is { } bb)
        {
            beta = new DeviceBuffer(_context, width * 4);
            Streamer.Copy(bb, beta, DType.F32, width, 0, 0);
        }
        return new CudaNorm(g, beta, (int)width);
    }

    private WeightStreamer Streamer => _streamer ??= new WeightStreamer(_context, _stream, _kernels, _options.StagingChunkBytes);

    /// <summary>Bytes streamed so far and the time spent (host copies plus waits for the device).</summary>
    public WeightLoadStatistics LoadStatistics =>
        new(_finishedLoadBytes + (_streamer?.Bytes ?? 0), _finishedLoadSeconds + (_streamer?.Seconds ?? 0));

    private long _finishedLoadBytes;
    private double _finishedLoadSeconds;

    /// <summary>
    /// Waits for every weight copy to land, releases the pinned and device staging buffers, and
    /// returns the load statistics. Loading again later recreates the buffers.
    /// </summary>
    public void EndLoading() => FinishLoading();

    public WeightLoadStatistics FinishLoading()
    {
        if (_streamer is null) return LoadStatistics;
        using var scope = _context.Enter();
        _streamer.Finish();
        var stats = LoadStatistics;
        _finishedLoadBytes += _streamer.Bytes;
        _finishedLoadSeconds += _streamer.Seconds;
        _streamer.Dispose();
        _streamer = null;
        return stats;
    }
}
