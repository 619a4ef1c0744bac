using GptJx.Backends;
using GptJx.Cuda.Interop;

namespace GptJx.Cuda;

/// <summary>The host-to-device inputs a captured graph reads at replay.</summary>
internal enum GraphInputKind
{
    Ids,
    Descriptors,
    Slopes,
    GatherRows,
    SampleParams,
}

/// <summary>
/// State of one capture: a pinned arena (allocated before capture starts, since allocation is not
/// allowed during capture) from which every upload takes its staging bytes. The recorded copies read
/// those bytes at each replay, so rewriting them changes the graph's inputs.
/// </summary>
internal sealed unsafe class GraphCapture : IDisposable
{
    private long _offset;

    public GraphCapture(PinnedBuffer arena) => Arena = arena;

    public PinnedBuffer Arena { get; }
    public List<(GraphInputKind Kind, long Offset, int Count)> Inputs { get; } = new();

    /// <summary>Slots and positions of the KV cache the captured attention ran on (0 when none did):
    /// a replay's batch is checked against them, since the kernels trust the descriptors.</summary>
    public int CacheSlots { get; set; }
    public int CacheMaxPositions { get; set; }
    /// <summary>Token rows of the captured attention batch (0 when no attention ran).</summary>
    public int BatchRows { get; set; }
    /// <summary>The stream's launch count when the capture began.</summary>
    public long FirstLaunch { get; init; }

    public byte* Reserve(GraphInputKind kind, long bytes, int count)
    {
        var aligned = (bytes + 255) & ~255L;
        if (_offset + aligned > Arena.Bytes)
            throw new InvalidOperationException($"graph inputs exceed the {Arena.Bytes}-byte capture arena (raise CudaBackendOptions.GraphInputBytes)");
        Inputs.Add((kind, _offset, count));
        var p = Arena.Pointer + _offset;
        _offset += aligned;
        return p;
    }

    public void Dispose() => Arena.Dispose();
}

/// <summary>
/// A captured, instantiated sequence of backend ops (typically one decode step: embed, 32 layers,
/// final norm, gather, lm_head, scale, and optionally sampling). Replay with new token ids and a
/// batch of the same shape through <see cref="CudaBackend.Replay"/>.
/// </summary>
public sealed class CudaGraph : IDisposable
{
    private readonly PrimaryContextHandle _context;

    internal CudaGraph(PrimaryContextHandle context, GraphHandle graph, GraphExecHandle exec, GraphCapture inputs, CudaEvent done, int sequences, int rows,
        long launches)
    {
        _context = context;
        Launches = launches;
        Graph = graph;
        Exec = exec;
        Inputs = inputs;
        Done = done;
        Sequences = sequences;
        Rows = rows;
    }

    internal GraphHandle Graph { get; }
    internal GraphExecHandle Exec { get; }
    internal GraphCapture Inputs { get; }
    internal CudaEvent Done { get; }

    /// <summary>Sequences in the captured batch (a replay must use the same count).</summary>
    public int Sequences { get; }
    /// <summary>Token rows of the captured step.</summary>
    public int Rows { get; }
    /// <summary>Kernels (and library calls) each replay runs.</summary>
    public long Launches { get; }

    public void Dispose()
    {
        using (_context.Enter()) Done.Synchronize();  // the last replay has finished with the graph and its inputs
        Exec.Dispose();
        Graph.Dispose();
        Inputs.Dispose();
        Done.Dispose();
    }
}

public sealed unsafe partial class CudaBackend
{

    /// <summary>
    /// Starts recording the ops that follow (instead of running them) into a CUDA graph. Run the same
    /// step once eagerly first (cuBLAS picks and loads its kernels then). Only ops with no host
    /// synchronization may be captured: not CopyToHost, Synchronize, Allocate, CreateKvCache or loading.
    /// </summary>
    public void BeginCapture()
    {
        if (_capture is not null) throw new InvalidOperationException("a capture is already in progress");
        using var scope = _context.Enter();
        _stream.Synchronize();
        _capture = new GraphCapture(new PinnedBuffer(_context, _options.GraphInputBytes)) { FirstLaunch = _stream.Launches };
        ForgetUploads();
        var status = CudaDriver.cuStreamBeginCapture(_stream.Handle, CudaDriver.StreamCaptureModeThreadLocal);
        if (status != 0)
        {
            _capture.Dispose();
            _capture = null;
            throw CudaCheck.DriverError("cuStreamBeginCapture_v2", status);
        }
    }

    /// <summary>Ends the capture and instantiates the graph.</summary>
    public CudaGraph EndCapture()
    {
        var capture = _capture ?? throw new InvalidOperationException("no capture in progress");
        using var scope = _context.Enter();
        _capture = null;
        ForgetUploads();
        var graph = new GraphHandle(_context);
        var exec = new GraphExecHandle(_context);
        try
        {
            CudaCheck.Driver(CudaDriver.cuStreamEndCapture(_stream.Handle, out var g));
            graph.Set(g);
            CudaCheck.Driver(CudaDriver.cuGraphInstantiateWithFlags(out var e, g, 0));
            exec.Set(e);
        }
        catch
        {
            exec.Dispose();
            graph.Dispose();
            capture.Dispose();
            throw;
        }
        var rows = capture.Inputs.Where(i => i.Kind == GraphInputKind.Ids).Select(i => i.Count).FirstOrDefault();
        var seqs = capture.Inputs.Where(i => i.Kind == GraphInputKind.Descriptors).Select(i => i.Count).FirstOrDefault();
        var launches = _stream.Launches - capture.FirstLaunch;
        _stream.Launches = capture.FirstLaunch;  // captured kernels run when the graph is replayed
        return new CudaGraph(_context, graph, exec, capture, new CudaEvent(_context), seqs, rows, launches);
    }

    /// <summary>Abandons a capture (after an exception in the captured ops); the stream is usable again.</summary>
    public void AbortCapture()
    {
        if (_capture is null) return;
        using var scope = _context.Enter();
        CudaDriver.cuStreamEndCapture(_stream.Handle, out var g);
        if (g != IntPtr.Zero) CudaDriver.cuGraphDestroy(g);
        _stream.Launches = _capture.FirstLaunch;  // nothing captured will run
        _capture.Dispose();
        _capture = null;
        ForgetUploads();
    }

    /// <summary>Whether ops are being recorded into a graph now.</summary>
    public bool IsCapturing => _capture is not null;

    /// <summary>
    /// Replays <paramref name="graph"/> with new inputs: <paramref name="ids"/> (same count as captured),
    /// <paramref name="batch"/> (same number of sequences; positions may differ), the rows to gather
    /// and, when sampling was captured, its per-row parameters. Inputs not given keep their captured values.
    /// Read sampled tokens afterwards with <see cref="ReadTokens"/>.
    /// </summary>
    public void Replay(CudaGraph graph, ReadOnlySpan<int> ids, AttentionBatch batch, ReadOnlySpan<int> gatherRows = default,
        ReadOnlySpan<SampleParams> sampling = default)
    {
        NotCapturing(nameof(Replay));
        using var scope = _context.Enter();
        graph.Done.Synchronize();  // the previous replay has read its inputs
        var seqs = batch.Active;
        // The step's rows: the ids when the graph reads ids, else those of the captured attention batch.
        var rows = graph.Rows > 0 ? ids.Length : graph.Inputs.BatchRows;
        if (graph.Sequences > 0) CheckReplayBatch(seqs, rows, graph.Inputs.CacheSlots, graph.Inputs.CacheMaxPositions);
        else if (seqs.Length > 0) throw new ArgumentException("the graph was captured without attention; replay it with an empty batch", nameof(batch));
        foreach (var r in gatherRows)
            if ((uint)r >= (uint)rows) throw new ArgumentOutOfRangeException(nameof(gatherRows), r, $"row outside the step's {rows} rows");
        Span<SequenceDescriptor> descriptors = stackalloc SequenceDescriptor[seqs.Length];
        EncodeDescriptors(seqs, descriptors);
        foreach (var (kind, offset, count) in graph.Inputs.Inputs)
        {
            var p = graph.Inputs.Arena.Pointer + offset;
            switch (kind)
            {
                case GraphInputKind.Ids:
                    Write(ids, p, count, "ids");
                    break;
                case GraphInputKind.Descriptors:
                    Write<SequenceDescriptor>(descriptors, p, count, "batch sequences");
                    break;
                case GraphInputKind.GatherRows:
                    if (!gatherRows.IsEmpty) Write(gatherRows, p, count, "gathered rows");
                    break;
                case GraphInputKind.SampleParams:
                    if (!sampling.IsEmpty) Write(sampling, p, count, "sampling parameters");
                    break;
                case GraphInputKind.Slopes:
                    break;
            }
        }
        ForgetUploads();  // the device scratch now holds the graph's inputs
        CudaCheck.Driver(CudaDriver.cuGraphLaunch(graph.Exec.DangerousGetHandle(), _stream.Handle));
        _stream.Launches += graph.Launches;
        graph.Done.Record(_stream);
    }

    /// <summary>
    /// The checks <see cref="Attention"/> makes eagerly, for a batch a replay feeds straight to the kernels:
    /// every sequence in a slot of the cache, its positions inside it, its rows inside the step's rows.
    /// </summary>
    internal static void CheckReplayBatch(ReadOnlySpan<SequenceSpan> seqs, int rows, int cacheSlots, int cacheMaxPositions)
    {
        var total = 0;
        foreach (var s in seqs)
        {
            if (s.Length < 1 || s.FirstRow < 0 || s.FirstRow + s.Length > rows)
                throw new ArgumentException($"sequence in slot {s.Slot}: rows {s.FirstRow}..{s.FirstRow + s.Length - 1} outside the step's {rows} rows", "batch");
            if (cacheMaxPositions > 0 && ((uint)s.Slot >= (uint)cacheSlots || s.StartPosition < 0 || s.StartPosition + s.Length > cacheMaxPositions))
                throw new ArgumentException($"sequence in slot {s.Slot}: positions {s.StartPosition}..{s.StartPosition + s.Length - 1} outside the cache's {cacheSlots} x {cacheMaxPositions}", "batch");
            total += s.Length;
        }
        if (total != rows) throw new ArgumentException($"the batch has {total} rows; the step has {rows}", "batch");
    }

    private static void Write<T>(ReadOnlySpan<T> data, byte* destination, int count, string what) where T : unmanaged
    {
        if (data.Length != count) throw new ArgumentException($"the graph was captured with {count} {what}; got {data.Length}");
        data.CopyTo(new Span<T>(destination, count));
    }
}
