using System.Diagnostics;
using System.Runtime.InteropServices;
using GptJx.Backends;
using GptJx.Checkpoints;
using GptJx.Cuda.Interop;
using GptJx.Tensors;

namespace GptJx.Cuda;

/// <summary>
/// The CUDA implementation of <see cref="IBackend"/>: weights in fp16 or bf16 on one device,
/// cuBLAS GEMMs (fp32 accumulation), fused PTX kernels for everything else, all work queued on one
/// stream. No op allocates or waits for the device except <see cref="CopyToHost"/>, <see cref="Synchronize"/>
/// and the sampling methods, so a whole forward pass can be captured as a CUDA graph
/// (<see cref="BeginCapture"/>, <see cref="EndCapture"/>, <see cref="Replay"/>).
/// </summary>
public sealed unsafe partial class CudaBackend : IBackend
{
    /// <summary>Head widths with compiled attention kernels.</summary>
    public static IReadOnlyList<int> SupportedHeadDims { get; } = [16, 32, 64, 80, 128];

    private readonly PrimaryContextHandle _context;
    private readonly CudaStream _stream;
    private readonly KernelCatalog _kernels;
    private readonly CublasHandle _blas;
    private readonly DeviceBuffer _workspace;
    private readonly CudaBackendOptions _options;

    // Preallocated device scratch for per-call inputs, and the pinned ring they are staged through.
    private readonly DeviceBuffer _ids, _gatherRows, _descriptors, _slopes, _sampleParams, _tokens;
    private readonly PinnedBuffer _ring, _tokensHost;
    private long _ringOffset;
    private const long RingBytes = 4L << 20;
    private const int MaxHeads = 1024;

    // What the device scratch holds now, so repeated uploads (32 layers, same batch) are skipped.
    private readonly SequenceDescriptor[] _uploadedDescriptors;
    private int _uploadedDescriptorCount = -1;
    private readonly float[] _uploadedSlopes = new float[MaxHeads];
    private int _uploadedSlopeCount = -1;

    private GraphCapture? _capture;
    private WeightStreamer? _streamer;
    private readonly Dictionary<nint, CudaEmbedding> _embeddingsBySource = new();
    private bool _disposed;

    private CudaBackend(int ordinal, DType weightType, CudaBackendOptions options, PrimaryContextHandle context, CudaDeviceInfo device)
    {
        _options = options;
        _context = context;
        Device = device;
        WeightType = weightType;
        Name = $"cuda:{ordinal} ({device.Name})";
        using var scope = context.Enter();
        _stream = new CudaStream(context) { SynchronizeEachLaunch = options.SynchronizeEachLaunch };
        _kernels = new KernelCatalog(context);
        // Raise the dynamic shared memory limit of the prefill kernels now (not during a capture),
        // for the head widths whose tiles fit this device's per-block opt-in maximum.
        CudaCheck.Driver(CudaDriver.cuDeviceGet(out var dev, ordinal));
        CudaCheck.Driver(CudaDriver.cuDeviceGetAttribute(out var optin, CudaDriver.AttrMaxSharedMemoryPerBlockOptin, dev));
        MaxSharedPerBlock = optin;
        foreach (var hd in SupportedHeadDims)
            if (PrefillSharedBytes(hd) <= optin)
                foreach (var t in new[] { "f16", "bf16" })
                    _kernels[$"attention_prefill_{t}_hd{hd}"].ReserveDynamicShared(PrefillSharedBytes(hd));
        foreach (var name in new[] { "gemv_f16_f32", "gemv_f16_f16", "gemv_bf16_f32", "gemv_bf16_bf16" })
            _kernels[name].ReserveDynamicShared(optin);

        _blas = new CublasHandle(context);
        CudaCheck.Blas(CuBlas.cublasCreate(out var blas));
        _blas.Set(blas);
        CudaCheck.Blas(CuBlas.cublasSetStream(blas, _stream.Handle));
        _workspace = new DeviceBuffer(context, options.WorkspaceBytes);
        CudaCheck.Blas(CuBlas.cublasSetWorkspace(blas, _workspace.Pointer, (nuint)options.WorkspaceBytes));
        CudaCheck.Blas(CuBlas.cublasSetMathMode(blas, CuBlas.DefaultMath));
        CudaCheck.Blas(CuBlas.cublasGetVersion(blas, out var blasVersion));
        CublasVersion = blasVersion;

        _ids = new DeviceBuffer(context, options.MaxRows * 4L);
        _gatherRows = new DeviceBuffer(context, options.MaxRows * 4L);
        _tokens = new DeviceBuffer(context, options.MaxRows * 4L);
        _sampleParams = new DeviceBuffer(context, options.MaxRows * (long)Marshal.SizeOf<SampleParams>());
        _descriptors = new DeviceBuffer(context, options.MaxSequences * (long)Marshal.SizeOf<SequenceDescriptor>());
        _slopes = new DeviceBuffer(context, MaxHeads * 4L);
        _uploadedDescriptors = new SequenceDescriptor[options.MaxSequences];
        _ring = new PinnedBuffer(context, RingBytes);
        _tokensHost = new PinnedBuffer(context, options.MaxRows * 4L);
    }

    // ---- creation -------------------------------------------------------------

    /// <summary>
    /// Creates a backend on device <paramref name="deviceOrdinal"/> keeping weights (and the KV cache)
    /// in <paramref name="weightType"/> (fp16 or bf16). When <paramref name="plan"/> is given, it is
    /// checked against the device's free memory before anything large is allocated. The device's
    /// primary context is retained once, here, and released when the backend is disposed.
    /// </summary>
    public static CudaBackend Create(int deviceOrdinal, DType weightType, CudaBackendOptions? options = null, CudaMemoryPlan? plan = null)
    {
        if (weightType == DType.F32)
            throw new ArgumentException("the CUDA backend keeps weights in fp16 or bf16, not fp32", nameof(weightType));
        options ??= new CudaBackendOptions();
        var probe = CudaDevice.Probe();
        if (!probe.IsAvailable) throw new InvalidOperationException($"CUDA is not available: {probe.Reason}");
        var info = CudaDevice.Describe(deviceOrdinal);
        if (info.Major < 8)
            throw new NotSupportedException($"{info.Name} has compute capability {info.Major}.{info.Minor}; the CUDA backend needs 8.0 or later");
        var context = PrimaryContextHandle.Retain(CudaDevice.Handle(deviceOrdinal));
        try
        {
            using (context.Enter())
            {
                CudaCheck.Driver(CudaDriver.cuMemGetInfo(out var free, out var total));
                info = info with { FreeBytes = (long)free, TotalBytes = (long)total };
            }
            plan?.EnsureFits(info.FreeBytes, info.TotalBytes, $"cuda:{deviceOrdinal} ({info.Name})");
            return new CudaBackend(deviceOrdinal, weightType, options, context, info);
        }
        catch
        {
            context.Dispose();
            throw;
        }
    }

    // ---- identity ------------------------------------------------------------

    public string Name { get; }
    public DType ComputeType => WeightType;
    public DType WeightType { get; }
    public CudaDeviceInfo Device { get; }
    /// <summary>Most shared memory one block may opt in to (bytes).</summary>
    public int MaxSharedPerBlock { get; private set; }
    /// <summary>cuBLAS version, e.g. 130000 for 13.0.0.</summary>
    public int CublasVersion { get; }

    /// <summary>Free and total device memory now.</summary>
    public (long Free, long Total) MemoryInfo()
    {
        using var scope = _context.Enter();
        CudaCheck.Driver(CudaDriver.cuMemGetInfo(out var free, out var total));
        return ((long)free, (long)total);
    }

    /// <summary>Throws <see cref="CudaOutOfMemoryException"/> (with the numbers) if <paramref name="plan"/> does not fit in free memory.</summary>
    public void EnsureMemory(CudaMemoryPlan plan)
    {
        var (free, total) = MemoryInfo();
        plan.EnsureFits(free, total, Name);
    }

    // ---- activations and cache ----------------------------------------------

    public ITensor Allocate(int capacityRows, int columns, DType type)
    {
        if (capacityRows < 1 || columns < 1) throw new ArgumentOutOfRangeException(nameof(capacityRows), $"tensor [{capacityRows}, {columns}] must be non-empty");
        NotCapturing(nameof(Allocate));
        using var scope = _context.Enter();
        return new CudaTensor(new DeviceBuffer(_context, (long)capacityRows * columns * type.Size()), capacityRows, columns, type);
    }

    public IKvCache CreateKvCache(int layers, int slots, int maxPositions, int heads, int headDim)
    {
        if (!SupportedHeadDims.Contains(headDim))
            throw new NotSupportedException($"head width {headDim} has no CUDA attention kernel (supported: {string.Join(", ", SupportedHeadDims)})");
        if (PrefillSharedBytes(headDim) > MaxSharedPerBlock)
            throw new NotSupportedException($"head width {headDim} needs {PrefillSharedBytes(headDim)} bytes of shared memory per block; {Device.Name} allows {MaxSharedPerBlock}");
        if (heads < 1 || heads > MaxHeads) throw new ArgumentOutOfRangeException(nameof(heads), heads, $"1..{MaxHeads} heads");
        if (layers < 1 || slots < 1 || maxPositions < 1) throw new ArgumentOutOfRangeException(nameof(layers), "layers, slots and positions must be positive");
        NotCapturing(nameof(CreateKvCache));
        using var scope = _context.Enter();
        var bytes = (long)layers * slots * heads * maxPositions * headDim * ComputeType.Size();
        var keys = new DeviceBuffer(_context, bytes);
        var values = new DeviceBuffer(_context, bytes);
        var partials = new DeviceBuffer(_context, CudaKvCache.PartialBytes(slots, heads, maxPositions, headDim));
        return new CudaKvCache(keys, values, partials, layers, slots, maxPositions, heads, headDim, ComputeType);
    }

    // ---- fused operations ------------------------------------------------------

    public void Embed(ReadOnlySpan<int> ids, IEmbedding table, float scale, ITensor output)
    {
        var t = (CudaEmbedding)table;
        var o = Tensor(output, DType.F32, t.Columns, nameof(output));
        if (ids.Length < 1 || ids.Length > o.CapacityRows || ids.Length > _options.MaxRows)
            throw new ArgumentOutOfRangeException(nameof(ids), ids.Length, $"1..{Math.Min(o.CapacityRows, _options.MaxRows)} ids");
        using var scope = _context.Enter();
        Upload(ids, _ids, GraphInputKind.Ids);
        o.SetRows(ids.Length);
        _kernels["embed_gather_" + Suffix(t.Type)].Launch(Dim3.Of(ids.Length), new Dim3(256), 0, _stream,
            new KernelArgs().Ptr(t.Table.Pointer).Ptr(_ids.Pointer).Int(t.Rows).Int(t.Columns).Float(scale).Ptr(o.Pointer));
    }

    public void LayerNorm(ITensor input, INorm norm, float epsilon, ITensor output)
    {
        var (n, x, y) = NormOperands(input, norm, output);
        if (x.Rows == 0) return;
        using var scope = _context.Enter();
        _kernels["layer_norm_" + Suffix(y.Type)].Launch(Dim3.Of(x.Rows), new Dim3(256), 0, _stream,
            new KernelArgs().Ptr(x.Pointer).Ptr(n.Gain.Pointer).Ptr(n.Bias?.Pointer ?? 0).Int(n.Width).Float(epsilon).Ptr(y.Pointer));
    }

    /// <summary>Checks a norm's operands: fp32 input of the norm's width, output of the same width, rows set to the input's.</summary>
    private (CudaNorm Norm, CudaTensor Input, CudaTensor Output) NormOperands(ITensor input, INorm norm, ITensor output)
    {
        var n = (CudaNorm)norm;
        var x = Tensor(input, DType.F32, n.Width, nameof(input));
        var y = (CudaTensor)output;
        if (y.Columns != n.Width) throw Shape(nameof(output), y, n.Width);
        Rows(y, x.Rows, nameof(output));
        return (n, x, y);
    }

    /// <summary>RMSNorm (for model variants that use it): y = x * rsqrt(mean(x^2) + eps) * gain; the norm's bias is ignored.</summary>
    public void RmsNorm(ITensor input, INorm norm, float epsilon, ITensor output)
    {
        var (n, x, y) = NormOperands(input, norm, output);
        if (x.Rows == 0) return;
        using var scope = _context.Enter();
        _kernels["rms_norm_" + Suffix(y.Type)].Launch(Dim3.Of(x.Rows), new Dim3(256), 0, _stream,
            new KernelArgs().Ptr(x.Pointer).Ptr(n.Gain.Pointer).Int(n.Width).Float(epsilon).Ptr(y.Pointer));
    }

    public void Linear(ITensor input, ILinear weight, ITensor output, bool accumulate = false)
    {
        var w = (CudaLinear)weight;
        var x = Tensor(input, w.Type, w.InFeatures, nameof(input));
        var y = (CudaTensor)output;
        if (y.Columns != w.OutFeatures) throw Shape(nameof(output), y, w.OutFeatures);
        if (y.Type != DType.F32 && y.Type != w.Type)
            throw new ArgumentException($"output is {y.Type.Name()}; a linear layer writes fp32 or its weight type {w.Type.Name()}", nameof(output));
        if (accumulate && y.Rows != x.Rows)
            throw new ArgumentException($"accumulating into {y.Rows} rows from {x.Rows} input rows", nameof(output));
        Rows(y, x.Rows, nameof(output));
        if (x.Rows == 0) return;
        using var scope = _context.Enter();

        // Decode: one fused GEMV (bias and residual in its epilogue) reading each weight row once.
        if (GemvPlan.For(x.Rows, w.InFeatures, w.OutFeatures, w.Ld, w.Type.Size(), MaxSharedPerBlock) is { } gemv)
        {
            _kernels[$"gemv_{Suffix(w.Type)}_{Suffix(y.Type)}"].Launch(Dim3.Of(gemv.Blocks), new Dim3((uint)gemv.Threads), gemv.SharedBytes, _stream,
                new KernelArgs().Ptr(w.Weight.Pointer).Int(w.Ld).Int(w.OutFeatures).Int(w.InFeatures).Ptr(x.Pointer).Int(x.Columns).Int(x.Rows)
                    .Ptr(w.Bias?.Pointer ?? 0).Int(accumulate ? 1 : 0).Ptr(y.Pointer).Int(y.Columns));
            return;
        }

        var beta = accumulate ? 1f : 0f;
        if (w.Bias is not null)
        {
            _kernels["bias_rows_" + Suffix(y.Type)].Launch(Dim3.Of((w.OutFeatures + 255) / 256, x.Rows), new Dim3(256), 0, _stream,
                new KernelArgs().Ptr(y.Pointer).Ptr(w.Bias.Pointer).Int(w.OutFeatures).Int(accumulate ? 1 : 0));
            beta = 1f;
        }
        GemmRaw(GemmShape.For(x.Rows, w.InFeatures, w.OutFeatures, w.Ld), w.Weight.Pointer, w.Type, x.Pointer, x.Type, y.Pointer, y.Type, beta);
    }

    /// <summary>One cublasGemmEx on the backend's stream with fp32 accumulation: C = A B + beta C in cuBLAS terms (see <see cref="GemmShape"/>).</summary>
    internal void GemmRaw(GemmShape g, ulong weight, DType weightType, ulong x, DType xType, ulong y, DType yType, float beta)
    {
        float alpha = 1f;
        CudaCheck.Blas(CuBlas.cublasGemmEx(_blas.DangerousGetHandle(), g.TransA, g.TransB, g.M, g.N, g.K,
            &alpha, weight, BlasType(weightType), g.Lda, x, BlasType(xType), g.Ldb,
            &beta, y, BlasType(yType), g.Ldc, CuBlas.Compute32F, CuBlas.GemmDefault));
        _stream.Launches++;
        if (_stream.SynchronizeEachLaunch && _stream.SynchronizeUnlessCapturing() is var status and not 0)
            throw CudaCheck.DriverError("cublasGemmEx", status, $"GEMM {g.M} x {g.N} x {g.K} (lda {g.Lda}, ldb {g.Ldb}, ldc {g.Ldc})");
    }

    public void Attention(ITensor qkv, IKvCache cache, int layer, AttentionBatch batch, float[] slopes, float scoreScale, ITensor output)
    {
        var c = (CudaKvCache)cache;
        int width = c.Heads * c.HeadDim;
        var q = Tensor(qkv, c.Type, 3 * width, nameof(qkv));
        var o = (CudaTensor)output;
        if (o.Columns != width || o.Type != c.Type) throw new ArgumentException($"output must be [rows, {width}] {c.Type.Name()}, not [{o.Rows}, {o.Columns}] {o.Type.Name()}", nameof(output));
        if ((uint)layer >= (uint)c.Layers) throw new ArgumentOutOfRangeException(nameof(layer), layer, $"cache has {c.Layers} layers");
        if (slopes.Length != c.Heads) throw new ArgumentException($"{slopes.Length} slopes for {c.Heads} heads", nameof(slopes));
        var seqs = batch.Active;
        if (seqs.Length == 0) return;
        if (seqs.Length > Math.Min(c.Slots, _options.MaxSequences))
            throw new ArgumentException($"{seqs.Length} sequences in one batch; at most {Math.Min(c.Slots, _options.MaxSequences)}", nameof(batch));
        int maxLength = 0, maxContext = 0;
        foreach (var s in seqs)
        {
            if ((uint)s.Slot >= (uint)c.Slots) throw new ArgumentException($"slot {s.Slot} out of range (cache has {c.Slots})", nameof(batch));
            if (s.Length < 1 || s.StartPosition < 0 || s.StartPosition + s.Length > c.MaxPositions)
                throw new ArgumentException($"sequence in slot {s.Slot}: positions {s.StartPosition}..{s.StartPosition + s.Length - 1} outside the cache's {c.MaxPositions}", nameof(batch));
            if (s.FirstRow < 0 || s.FirstRow + s.Length > q.Rows)
                throw new ArgumentException($"sequence in slot {s.Slot}: rows {s.FirstRow}..{s.FirstRow + s.Length - 1} outside qkv's {q.Rows} rows", nameof(batch));
            maxLength = Math.Max(maxLength, s.Length);
            maxContext = Math.Max(maxContext, s.StartPosition + s.Length);
        }
        Rows(o, q.Rows, nameof(output));
        if (_capture is not null)
        {
            if (_capture.CacheMaxPositions > 0 && (_capture.CacheSlots != c.Slots || _capture.CacheMaxPositions != c.MaxPositions))
                throw new InvalidOperationException("one captured step must use one KV cache");
            (_capture.CacheSlots, _capture.CacheMaxPositions) = (c.Slots, c.MaxPositions);
            _capture.BatchRows = batch.TotalRows;
        }
        using var scope = _context.Enter();
        UploadDescriptors(seqs);
        UploadSlopes(slopes);

        var t = Suffix(c.Type);
        var keys = c.Keys.Pointer + (ulong)(layer * c.LayerBytes);
        var values = c.Values.Pointer + (ulong)(layer * c.LayerBytes);
        _kernels["kv_append_" + t].Launch(Dim3.Of(maxLength, seqs.Length), new Dim3(256), 0, _stream,
            new KernelArgs().Ptr(q.Pointer).Ptr(_descriptors.Pointer).Int(c.Heads).Int(c.HeadDim).Int(c.MaxPositions).Ptr(keys).Ptr(values));

        if (maxLength == 1)
        {
            // Flash-decoding. The device picks each sequence's chunk from its context; under capture the grid
            // covers the whole cache so the graph stays valid as contexts grow.
            int target = DecodeSplits.Target(Device.Multiprocessors, c.Heads, seqs.Length, c.MaxSplits);
            int splits = c.MaxSplits;
            if (_capture is null)
            {
                splits = 1;
                foreach (var s in seqs) splits = Math.Max(splits, DecodeSplits.Used(s.StartPosition + s.Length, target));
            }
            _kernels[$"attention_decode_{t}_hd{c.HeadDim}"].Launch(Dim3.Of(splits, c.Heads, seqs.Length), new Dim3(128), 0, _stream,
                new KernelArgs().Ptr(q.Pointer).Ptr(keys).Ptr(values).Ptr(_descriptors.Pointer).Ptr(_slopes.Pointer)
                    .Int(c.Heads).Int(c.MaxPositions).Int(c.MaxSplits).Int(target).Float(scoreScale).Ptr(c.Partials.Pointer));
            _kernels[$"attention_combine_{t}_hd{c.HeadDim}"].Launch(Dim3.Of(c.Heads, seqs.Length), new Dim3(128), 0, _stream,
                new KernelArgs().Ptr(c.Partials.Pointer).Ptr(_descriptors.Pointer).Int(c.Heads).Int(c.MaxSplits).Int(target).Ptr(o.Pointer));
        }
        else
        {
            _kernels[$"attention_prefill_{t}_hd{c.HeadDim}"].Launch(Dim3.Of((maxLength + 63) / 64, c.Heads, seqs.Length), new Dim3(128),
                PrefillSharedBytes(c.HeadDim), _stream,
                new KernelArgs().Ptr(q.Pointer).Ptr(keys).Ptr(values).Ptr(_descriptors.Pointer).Ptr(_slopes.Pointer)
                    .Int(c.Heads).Int(c.MaxPositions).Float(scoreScale).Ptr(o.Pointer));
        }
    }

    /// <summary>Dynamic shared memory of attention_prefill (see kernels/attention_prefill.cu).</summary>
    internal static int PrefillSharedBytes(int headDim) =>
        3 * 64 * (headDim + 8) * 2 + 4 * 16 * 68 * 4 + 4 * 16 * 72 * 2 + 4 * 16 * (headDim + 4) * 4;

    public void SwiGlu(ITensor input, ITensor output)
    {
        var x = (CudaTensor)input;
        var y = (CudaTensor)output;
        if (x.Columns != 2 * y.Columns || x.Type != y.Type)
            throw new ArgumentException($"SwiGLU maps [rows, 2F] to [rows, F] of one type, not [{x.Rows}, {x.Columns}] {x.Type.Name()} to [{y.Rows}, {y.Columns}] {y.Type.Name()}");
        Rows(y, x.Rows, nameof(output));
        if (x.Rows == 0) return;
        using var scope = _context.Enter();
        _kernels["swiglu_" + Suffix(x.Type)].Launch(Dim3.Of((y.Columns + 255) / 256, x.Rows), new Dim3(256), 0, _stream,
            new KernelArgs().Ptr(x.Pointer).Int(y.Columns).Ptr(y.Pointer));
    }

    public void GatherRows(ITensor input, ReadOnlySpan<int> rows, ITensor output)
    {
        var x = (CudaTensor)input;
        var y = (CudaTensor)output;
        if (x.Columns != y.Columns || x.Type != y.Type) throw new ArgumentException("gather needs tensors of equal width and type");
        if (rows.Length > y.CapacityRows || rows.Length > _options.MaxRows)
            throw new ArgumentOutOfRangeException(nameof(rows), rows.Length, $"at most {Math.Min(y.CapacityRows, _options.MaxRows)} rows");
        foreach (var r in rows)
            if ((uint)r >= (uint)x.Rows) throw new ArgumentOutOfRangeException(nameof(rows), r, $"row outside the input's {x.Rows} rows");
        y.SetRows(rows.Length);
        if (rows.Length == 0) return;
        using var scope = _context.Enter();
        Upload(rows, _gatherRows, GraphInputKind.GatherRows);
        _kernels[x.Type == DType.F32 ? "gather_rows_b32" : "gather_rows_b16"].Launch(Dim3.Of((x.Columns + 255) / 256, rows.Length), new Dim3(256), 0, _stream,
            new KernelArgs().Ptr(x.Pointer).Ptr(_gatherRows.Pointer).Int(x.Columns).Ptr(y.Pointer));
    }

    public void Scale(ITensor tensor, float factor)
    {
        var x = (CudaTensor)tensor;
        if (x.ElementCount == 0) return;
        using var scope = _context.Enter();
        _kernels["scale_" + Suffix(x.Type)].Launch(Dim3.Of(Math.Min((x.ElementCount + 255) / 256, 8192)), new Dim3(256), 0, _stream,
            new KernelArgs().Ptr(x.Pointer).Long(x.ElementCount).Float(factor));
    }

    public void CopyToHost(ITensor tensor, Span<float> destination)
    {
        var x = Tensor(tensor, DType.F32, tensor.Columns, nameof(tensor));
        if (destination.Length < x.ElementCount)
            throw new ArgumentException($"destination holds {destination.Length} floats; the tensor has {x.ElementCount}", nameof(destination));
        NotCapturing(nameof(CopyToHost));
        if (x.ElementCount == 0) return;
        using var scope = _context.Enter();
        fixed (float* d = destination)
        {
            CudaCheck.Driver(CudaDriver.cuMemcpyDtoHAsync(d, x.Pointer, (nuint)(x.ElementCount * 4), _stream.Handle));
            _stream.Synchronize();
        }
    }

    public void Synchronize()
    {
        NotCapturing(nameof(Synchronize));
        using var scope = _context.Enter();
        _stream.Synchronize();
    }

    // ---- sampling on the device ------------------------------------------------

    /// <summary>Queues argmax over each row of fp32 <paramref name="logits"/>; read the ids with <see cref="ReadTokens"/>.</summary>
    public void EnqueueArgmax(ITensor logits)
    {
        var x = Tensor(logits, DType.F32, logits.Columns, nameof(logits));
        if (x.Rows > _options.MaxRows) throw new ArgumentOutOfRangeException(nameof(logits), x.Rows, $"at most {_options.MaxRows} rows");
        if (x.Rows == 0) return;
        using var scope = _context.Enter();
        _kernels["argmax_f32"].Launch(Dim3.Of(x.Rows), new Dim3(1024), 0, _stream, new KernelArgs().Ptr(x.Pointer).Int(x.Columns).Ptr(_tokens.Pointer));
        CudaCheck.Driver(CudaDriver.cuMemcpyDtoHAsync(_tokensHost.Pointer, _tokens.Pointer, (nuint)(x.Rows * 4), _stream.Handle));
    }

    /// <summary>Queues temperature / top-k / top-p sampling of each row (one <see cref="SampleParams"/> per row).</summary>
    public void EnqueueSample(ITensor logits, ReadOnlySpan<SampleParams> parameters)
    {
        var x = Tensor(logits, DType.F32, logits.Columns, nameof(logits));
        if (parameters.Length != x.Rows) throw new ArgumentException($"{parameters.Length} parameter sets for {x.Rows} rows", nameof(parameters));
        if (x.Rows > _options.MaxRows) throw new ArgumentOutOfRangeException(nameof(logits), x.Rows, $"at most {_options.MaxRows} rows");
        foreach (var p in parameters)
        {
            if (float.IsNaN(p.Temperature) || p.TopK < 0 || !(p.TopP > 0 && p.TopP <= 1) || !(p.Uniform >= 0 && p.Uniform < 1))
                throw new ArgumentException($"bad sampling parameters: temperature {p.Temperature}, top_k {p.TopK}, top_p {p.TopP}, uniform {p.Uniform}", nameof(parameters));
        }
        if (x.Rows == 0) return;
        using var scope = _context.Enter();
        Upload(parameters, _sampleParams, GraphInputKind.SampleParams);
        _kernels["sample_f32"].Launch(Dim3.Of(x.Rows), new Dim3(1024), 0, _stream,
            new KernelArgs().Ptr(x.Pointer).Int(x.Columns).Ptr(_sampleParams.Pointer).Ptr(_tokens.Pointer));
        CudaCheck.Driver(CudaDriver.cuMemcpyDtoHAsync(_tokensHost.Pointer, _tokens.Pointer, (nuint)(x.Rows * 4), _stream.Handle));
    }

    /// <summary>Waits for the stream and copies the ids of the last argmax/sample (one per row) into <paramref name="tokens"/>.</summary>
    public void ReadTokens(Span<int> tokens)
    {
        if (tokens.Length > _options.MaxRows) throw new ArgumentOutOfRangeException(nameof(tokens));
        Synchronize();
        new ReadOnlySpan<int>(_tokensHost.Pointer, tokens.Length).CopyTo(tokens);
    }

    /// <summary>Argmax of each row; only the ids cross PCIe.</summary>
    public void Argmax(ITensor logits, Span<int> tokens)
    {
        EnqueueArgmax(logits);
        ReadTokens(tokens[..logits.Rows]);
    }

    /// <summary>Samples one id per row on the device; only the ids cross PCIe.</summary>
    public void Sample(ITensor logits, ReadOnlySpan<SampleParams> parameters, Span<int> tokens)
    {
        EnqueueSample(logits, parameters);
        ReadTokens(tokens[..logits.Rows]);
    }

    // ---- uploads -------------------------------------------------------------

    /// <summary>
    /// Copies small per-call inputs to device scratch: through a pinned ring (waiting for the stream
    /// only when the ring wraps), or, under capture, through pinned buffers the graph owns and
    /// <see cref="Replay"/> rewrites.
    /// </summary>
    private void Upload<T>(ReadOnlySpan<T> data, DeviceBuffer destination, GraphInputKind kind) where T : unmanaged
    {
        var bytes = (long)data.Length * sizeof(T);
        if (bytes == 0) return;
        if (bytes > destination.Bytes) throw new ArgumentException($"{bytes} bytes of {kind} exceed the {destination.Bytes}-byte scratch buffer");
        byte* staging;
        if (_capture is not null)
        {
            staging = _capture.Reserve(kind, bytes, data.Length);
        }
        else
        {
            var aligned = (bytes + 255) & ~255L;
            if (aligned > RingBytes) throw new ArgumentException($"{bytes} bytes of {kind} exceed the upload ring");
            if (_ringOffset + aligned > RingBytes)
            {
                _stream.Synchronize();  // every earlier copy out of the ring has completed
                _ringOffset = 0;
            }
            staging = _ring.Pointer + _ringOffset;
            _ringOffset += aligned;
        }
        data.CopyTo(new Span<T>(staging, data.Length));
        CudaCheck.Driver(CudaDriver.cuMemcpyHtoDAsync(destination.Pointer, staging, (nuint)bytes, _stream.Handle));
    }

    private void UploadDescriptors(ReadOnlySpan<SequenceSpan> seqs)
    {
        Span<SequenceDescriptor> d = stackalloc SequenceDescriptor[seqs.Length];
        EncodeDescriptors(seqs, d);
        if (_uploadedDescriptorCount == seqs.Length && d.SequenceEqual(_uploadedDescriptors.AsSpan(0, seqs.Length))) return;
        Upload<SequenceDescriptor>(d, _descriptors, GraphInputKind.Descriptors);
        d.CopyTo(_uploadedDescriptors);
        _uploadedDescriptorCount = seqs.Length;
    }

    private void UploadSlopes(float[] slopes)
    {
        if (_uploadedSlopeCount == slopes.Length && slopes.AsSpan().SequenceEqual(_uploadedSlopes.AsSpan(0, slopes.Length))) return;
        Upload<float>(slopes, _slopes, GraphInputKind.Slopes);
        slopes.CopyTo(_uploadedSlopes, 0);
        _uploadedSlopeCount = slopes.Length;
    }

    /// <summary>The device form of a batch (what kernels/common.cuh's SequenceDesc holds).</summary>
    public static void EncodeDescriptors(ReadOnlySpan<SequenceSpan> seqs, Span<SequenceDescriptor> destination)
    {
        for (var i = 0; i < seqs.Length; i++)
        {
            var s = seqs[i];
            destination[i] = new SequenceDescriptor { Slot = s.Slot, Start = s.StartPosition, FirstRow = s.FirstRow, Length = s.Length, AlibiScale = s.AlibiScale };
        }
    }

    private void ForgetUploads()
    {
        _uploadedDescriptorCount = -1;
        _uploadedSlopeCount = -1;
    }

    // ---- utilities -------------------------------------------------------------

    internal static string Suffix(DType type) => type switch
    {
        DType.F32 => "f32",
        DType.F16 => "f16",
        DType.BF16 => "bf16",
        _ => throw new ArgumentOutOfRangeException(nameof(type)),
    };

    private static int BlasType(DType type) => type switch
    {
        DType.F32 => CuBlas.CudaR32F,
        DType.F16 => CuBlas.CudaR16F,
        DType.BF16 => CuBlas.CudaR16BF,
        _ => throw new ArgumentOutOfRangeException(nameof(type)),
    };

    private static CudaTensor Tensor(ITensor tensor, DType type, int columns, string name)
    {
        var t = tensor as CudaTensor ?? throw new ArgumentException($"{name} was not allocated by a CUDA backend", name);
        if (t.Type != type || t.Columns != columns)
            throw new ArgumentException($"{name} is [{t.Rows}, {t.Columns}] {t.Type.Name()}; expected [rows, {columns}] {type.Name()}", name);
        return t;
    }

    private static void Rows(CudaTensor output, int rows, string name)
    {
        if (rows > output.CapacityRows) throw new ArgumentException($"{name} holds {output.CapacityRows} rows; {rows} needed", name);
        output.SetRows(rows);
    }

    private static ArgumentException Shape(string name, CudaTensor t, int columns) =>
        new($"{name} has {t.Columns} columns; expected {columns}", name);

    private void NotCapturing(string operation)
    {
        if (_capture is not null) throw new InvalidOperationException($"{operation} cannot run while a CUDA graph is being captured");
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        using (_context.Enter())
        {
            if (_capture is not null) AbortCapture();
            try { _stream.Synchronize(); } catch (CudaException) { }
            _streamer?.Dispose();
            foreach (var d in new IDisposable[] { _ids, _gatherRows, _descriptors, _slopes, _sampleParams, _tokens, _ring, _tokensHost, _workspace, _blas, _kernels, _stream })
                d.Dispose();
        }
        _context.Dispose();
    }
}
