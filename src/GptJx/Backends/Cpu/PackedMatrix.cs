using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using GptJx.Checkpoints;
using GptJx.Tensors;

namespace GptJx.Backends.Cpu;

/// <summary>
/// A weight matrix repacked at load into panels of <see cref="PanelWidth"/> outputs: panel p
/// holds outputs 32p..32p+31 as K consecutive groups of 32 values (one per output, in output
/// order, zero-padded past the last output), in the weight type (16-bit weights stay 16-bit).
/// A matrix product then streams each panel contiguously, once per call, whatever the number
/// of token rows. Serves both as a linear layer and as an embedding table (a row is a strided
/// gather, done for a few tokens per call).
/// </summary>
internal sealed unsafe class PackedMatrix : ILinear, IEmbedding
{
    public const int PanelWidth = 32;
    private byte* _data;

    private PackedMatrix(int outputs, int inputs, DType type)
    {
        Outputs = outputs;
        Inputs = inputs;
        Type = type;
        ElementSize = type.Size();
        Panels = (outputs + PanelWidth - 1) / PanelWidth;
        PanelBytes = (long)inputs * PanelWidth * ElementSize;
        _data = OsMemory.AllocateLarge(Panels * PanelBytes);
    }

    /// <summary>Output features.</summary>
    public int Outputs { get; }

    /// <summary>Input features (K).</summary>
    public int Inputs { get; }

    public DType Type { get; }
    public int ElementSize { get; }
    public int Panels { get; }
    public long PanelBytes { get; }
    public long ByteLength => Panels * PanelBytes;
    public float[]? Bias { get; private set; }

    public int InFeatures => Inputs;
    public int OutFeatures => Outputs;
    int IEmbedding.Rows => Outputs;
    int IEmbedding.Columns => Inputs;

    public byte* Panel(int panel) => _data + panel * PanelBytes;

    /// <summary>Output row <paramref name="output"/> (all K inputs) in fp32: an embedding lookup.</summary>
    public void ReadRow(int output, Span<float> destination)
    {
        byte* p = Panel(output / PanelWidth) + (output % PanelWidth) * ElementSize;
        int stride = PanelWidth * ElementSize;
        switch (Type)
        {
            case DType.BF16:
                for (int k = 0; k < Inputs; k++) destination[k] = HalfConvert.BF16ToSingle(*(ushort*)(p + (long)k * stride));
                break;
            case DType.F16:
                for (int k = 0; k < Inputs; k++) destination[k] = HalfConvert.F16ToSingle(*(ushort*)(p + (long)k * stride));
                break;
            default:
                for (int k = 0; k < Inputs; k++) destination[k] = *(float*)(p + (long)k * stride);
                break;
        }
    }

    /// <summary>
    /// Packs one or more checkpoint matrices, concatenated along the output dimension, on the
    /// pool's workers, and refuses a NaN or infinite weight unless <paramref name="allowNonFinite"/>
    /// (checked in each panel just packed, while it is in cache). Each part's mapped pages are
    /// dropped from the process once it is packed.
    /// </summary>
    public static PackedMatrix Pack(IReadOnlyList<TensorData> parts, IReadOnlyList<TensorData>? biases, WeightLayout layout, DType type, WorkerPool pool,
        bool allowNonFinite = false)
    {
        int inputs = (int)(layout == WeightLayout.InOut ? parts[0].Info.Shape[0] : parts[0].Info.Shape[1]);
        int outputs = parts.Sum(p => (int)(layout == WeightLayout.InOut ? p.Info.Shape[1] : p.Info.Shape[0]));
        var matrix = new PackedMatrix(outputs, inputs, type);
        try
        {
            var sources = new PartSource[parts.Count];
            int first = 0;
            for (int i = 0; i < parts.Count; i++)
            {
                int n = (int)(layout == WeightLayout.InOut ? parts[i].Info.Shape[1] : parts[i].Info.Shape[0]);
                sources[i] = new PartSource(parts[i].Pointer, parts[i].Info, first, n);
                first += n;
                OsMemory.Prefetch(parts[i].Pointer, parts[i].Length);
            }
            var job = new PackJob(matrix, sources, layout);
            pool.Run(job);
            if (job.FirstNonFinite != long.MaxValue && !allowNonFinite) throw job.NotFinite(job.FirstNonFinite);
            foreach (var part in parts) OsMemory.Release(part.Pointer, part.Length);
            if (biases is not null)
            {
                matrix.Bias = new float[outputs];
                int offset = 0;
                foreach (var b in biases)
                {
                    int n = (int)b.Info.ElementCount;
                    HalfConvert.ToSingle(b.Bytes, b.Info.DType, matrix.Bias.AsSpan(offset, n));
                    FiniteWeights.Require(b.Info, matrix.Bias.AsSpan(offset, n));
                    offset += n;
                }
            }
            return matrix;
        }
        catch
        {
            matrix.Dispose();
            throw;
        }
    }

    /// <summary>Packs fp32 [outputs, inputs] rows, any values (tests and micro-benchmarks of the kernels).</summary>
    public static PackedMatrix FromRows(ReadOnlySpan<float> weights, int outputs, int inputs, DType type, float[]? bias, WorkerPool pool)
    {
        var bytes = new byte[(long)outputs * inputs * type.Size()];
        var spec = new TensorInfo("w", type, [outputs, inputs], "memory");
        for (int i = 0; i < outputs * inputs; i++) Write(bytes, type, i, weights[i]);
        fixed (byte* p = bytes)
        {
            var m = Pack([new TensorData(spec, p)], null, WeightLayout.OutIn, type, pool, allowNonFinite: true);
            m.Bias = bias;
            return m;
        }
    }

    private static void Write(byte[] bytes, DType type, int index, float value)
    {
        switch (type)
        {
            case DType.F32: MemoryMarshal.Cast<byte, float>(bytes.AsSpan())[index] = value; break;
            case DType.F16: MemoryMarshal.Cast<byte, ushort>(bytes.AsSpan())[index] = HalfConvert.SingleToF16(value); break;
            default: MemoryMarshal.Cast<byte, ushort>(bytes.AsSpan())[index] = HalfConvert.SingleToBF16(value); break;
        }
    }

    private readonly struct PartSource(byte* pointer, TensorInfo info, int firstOutput, int outputs)
    {
        public byte* Pointer { get; } = pointer;
        public TensorInfo Info { get; } = info;
        public DType Type => Info.DType;
        public int FirstOutput { get; } = firstOutput;
        public int Outputs { get; } = outputs;
    }

    private sealed class PackJob(PackedMatrix m, PartSource[] parts, WeightLayout layout) : PoolJob
    {
        private const int Group = 16;

        /// <summary>Index of the first NaN or infinite packed element found (long.MaxValue: none).</summary>
        public long FirstNonFinite = long.MaxValue;

        public override int BeginRun(int workers) => (m.Panels + Group - 1) / Group;

        public override void RunChunk(int chunk, int worker)
        {
            int p0 = chunk * Group, p1 = Math.Min(m.Panels, p0 + Group);
            if (layout == WeightLayout.InOut) PackInOut(p0, p1);
            else for (int p = p0; p < p1; p++) PackOutIn(p);

            // The panels were just written, so this reads them from cache, not memory.
            long panelElements = m.PanelBytes / m.ElementSize;
            for (int p = p0; p < p1; p++)
            {
                long at = FiniteScan.FirstNonFinite(new ReadOnlySpan<byte>(m.Panel(p), checked((int)m.PanelBytes)), m.Type);
                if (at < 0) continue;
                long element = p * panelElements + at, seen;
                while (element < (seen = Interlocked.Read(ref FirstNonFinite)) && Interlocked.CompareExchange(ref FirstNonFinite, element, seen) != seen) { }
                return;
            }
        }

        /// <summary>The error for packed element <paramref name="element"/>, named in its checkpoint tensor's own layout.</summary>
        public CheckpointException NotFinite(long element)
        {
            long panelElements = m.PanelBytes / m.ElementSize;
            int panel = (int)(element / panelElements), input = (int)(element % panelElements / PanelWidth);
            int output = panel * PanelWidth + (int)(element % PanelWidth);
            var part = parts[PartOf(output)];
            int row = output - part.FirstOutput;
            long index = layout == WeightLayout.OutIn ? (long)row * m.Inputs + input : (long)input * part.Outputs + row;
            return FiniteWeights.NotFinite(part.Info, index, Load(part.Pointer + index * part.Type.Size(), part.Type), m.Type);
        }

        /// <summary>
        /// Source [K, n]: the 32 outputs of a panel at input k are contiguous in row k, so a
        /// group of panels is filled row by row, reading each source row's span sequentially.
        /// </summary>
        private void PackInOut(int p0, int p1)
        {
            int es = m.ElementSize, k = m.Inputs, chunk = PanelWidth * es;
            // Per panel: its source span in row 0 and the row stride when the whole panel lies in one
            // part of the same type (a straight 32-element copy per row); null where it straddles parts,
            // runs past the last output or converts types (element by element).
            int count = p1 - p0;
            byte** source = stackalloc byte*[count];
            long* stride = stackalloc long[count];
            for (int p = p0; p < p1; p++)
            {
                int o0 = p * PanelWidth;
                var src = parts[PartOf(o0)];
                bool simple = src.Type == m.Type && o0 + PanelWidth <= src.FirstOutput + src.Outputs;
                source[p - p0] = simple ? src.Pointer + (long)(o0 - src.FirstOutput) * es : null;
                stride[p - p0] = (long)src.Outputs * es;
            }
            for (int i = 0; i < k; i++)
            {
                for (int q = 0; q < count; q++)
                {
                    byte* to = m.Panel(p0 + q) + (long)i * chunk;
                    if (source[q] != null)
                    {
                        byte* from = source[q] + i * stride[q];
                        for (int b = 0; b < chunk; b += 64)
                            Vector512.Store(Vector512.Load(from + b), to + b);
                        continue;
                    }
                    for (int j = 0; j < PanelWidth; j++)
                    {
                        int o = (p0 + q) * PanelWidth + j;
                        if (o >= m.Outputs) { Store(p0 + q, i, j, 0f); continue; }
                        var ps = parts[PartOf(o)];
                        Store(p0 + q, i, j, Load(ps.Pointer + ((long)i * ps.Outputs + (o - ps.FirstOutput)) * ps.Type.Size(), ps.Type));
                    }
                }
            }
        }

        /// <summary>Source [n, K]: transpose 32 rows into the panel, a block of inputs at a time.</summary>
        private void PackOutIn(int p)
        {
            int k = m.Inputs;
            const int Block = 64;
            for (int i0 = 0; i0 < k; i0 += Block)
            {
                int i1 = Math.Min(k, i0 + Block);
                for (int j = 0; j < PanelWidth; j++)
                {
                    int o = p * PanelWidth + j;
                    if (o >= m.Outputs)
                    {
                        for (int i = i0; i < i1; i++) Store(p, i, j, 0f);
                        continue;
                    }
                    var ps = parts[PartOf(o)];
                    int sSize = ps.Type.Size();
                    byte* row = ps.Pointer + (long)(o - ps.FirstOutput) * k * sSize;
                    if (ps.Type == m.Type && sSize == 2)
                    {
                        ushort* d = (ushort*)m.Panel(p) + j;
                        ushort* s = (ushort*)row;
                        for (int i = i0; i < i1; i++) d[(long)i * PanelWidth] = s[i];
                    }
                    else
                    {
                        for (int i = i0; i < i1; i++) Store(p, i, j, Load(row + (long)i * sSize, ps.Type));
                    }
                }
            }
        }

        private int PartOf(int output)
        {
            for (int i = parts.Length - 1; i > 0; i--)
                if (output >= parts[i].FirstOutput) return i;
            return 0;
        }

        private static float Load(byte* p, DType type) => type switch
        {
            DType.F32 => *(float*)p,
            DType.F16 => HalfConvert.F16ToSingle(*(ushort*)p),
            _ => HalfConvert.BF16ToSingle(*(ushort*)p),
        };

        private void Store(int p, int i, int j, float value)
        {
            byte* d = m.Panel(p) + ((long)i * PanelWidth + j) * m.ElementSize;
            switch (m.Type)
            {
                case DType.F32: *(float*)d = value; break;
                case DType.F16: *(ushort*)d = HalfConvert.SingleToF16(value); break;
                default: *(ushort*)d = HalfConvert.SingleToBF16(value); break;
            }
        }
    }

    public void Dispose()
    {
        if (_data != null) NativeMemory.AlignedFree(_data);
        _data = null;
    }
}
