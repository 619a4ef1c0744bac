using System.Runtime.InteropServices;
using GptJx.Checkpoints;
using GptJx.Tensors;

namespace GptJx.Backends.Cpu;

/// <summary>
/// A weight matrix kept as [out, in] rows in native memory, in the backend's weight
/// type (16-bit weights stay 16-bit), so that each output is one contiguous dot product.
/// Serves both as a linear layer and as an embedding table.
/// </summary>
internal sealed unsafe class CpuMatrix : ILinear, IEmbedding
{
    private byte* _data;

    private CpuMatrix(int rows, int columns, DType type)
    {
        Rows = rows;
        Columns = columns;
        Type = type;
        _data = (byte*)NativeMemory.AlignedAlloc((nuint)((long)rows * columns * type.Size()), 64);
    }

    /// <summary>Output features (rows of the packed matrix).</summary>
    public int Rows { get; }

    /// <summary>Input features.</summary>
    public int Columns { get; }

    public DType Type { get; }
    public float[]? Bias { get; private set; }
    public int InFeatures => Columns;
    public int OutFeatures => Rows;

    public byte* RowPointer(int row) => _data + (long)row * Columns * Type.Size();

    /// <summary>Packs one or more checkpoint matrices, concatenated along the output dimension.</summary>
    public static CpuMatrix Pack(IReadOnlyList<TensorData> parts, IReadOnlyList<TensorData>? biases, WeightLayout layout, DType type)
    {
        int inFeatures = (int)(layout == WeightLayout.InOut ? parts[0].Info.Shape[0] : parts[0].Info.Shape[1]);
        int outFeatures = parts.Sum(p => (int)(layout == WeightLayout.InOut ? p.Info.Shape[1] : p.Info.Shape[0]));
        var matrix = new CpuMatrix(outFeatures, inFeatures, type);
        int rowOffset = 0;
        foreach (var part in parts)
        {
            int partOut = (int)(layout == WeightLayout.InOut ? part.Info.Shape[1] : part.Info.Shape[0]);
            if (layout == WeightLayout.OutIn) matrix.CopyRows(part, rowOffset, partOut);
            else matrix.TransposeInto(part, rowOffset, partOut);
            rowOffset += partOut;
        }
        if (biases is not null)
        {
            matrix.Bias = new float[outFeatures];
            int offset = 0;
            foreach (var b in biases)
            {
                int n = (int)b.Info.ElementCount;
                HalfConvert.ToSingle(b.Bytes, b.Info.DType, matrix.Bias.AsSpan(offset, n));
                offset += n;
            }
        }
        return matrix;
    }

    private void CopyRows(TensorData part, int rowOffset, int rows)
    {
        var src = part.Info.DType;
        Parallel.For(0, rows, r =>
        {
            var source = new ReadOnlySpan<byte>(part.Pointer + (long)r * Columns * src.Size(), Columns * src.Size());
            WeightConvert.Convert(source, src, RowPointer(rowOffset + r), Type, Columns);
        });
    }

    /// <summary>[in, out] -> rows of [out, in], converting the element type; blocked for cache locality.</summary>
    private void TransposeInto(TensorData part, int rowOffset, int outRows)
    {
        const int Block = 64;
        var src = part.Info.DType;
        int inCols = Columns;
        Parallel.For(0, (outRows + Block - 1) / Block, block =>
        {
            int o0 = block * Block, o1 = Math.Min(outRows, o0 + Block);
            Span<float> column = stackalloc float[Block];
            var tile = new float[Block * Block];
            for (int i0 = 0; i0 < inCols; i0 += Block)
            {
                int i1 = Math.Min(inCols, i0 + Block);
                for (int i = i0; i < i1; i++)
                {
                    var source = new ReadOnlySpan<byte>(part.Pointer + ((long)i * outRows + o0) * src.Size(), (o1 - o0) * src.Size());
                    HalfConvert.ToSingle(source, src, column[..(o1 - o0)]);
                    for (int o = o0; o < o1; o++) tile[(o - o0) * Block + (i - i0)] = column[o - o0];
                }
                for (int o = o0; o < o1; o++)
                {
                    var row = RowPointer(rowOffset + o) + (long)i0 * Type.Size();
                    WeightConvert.FromSingle(tile.AsSpan((o - o0) * Block, i1 - i0), row, Type);
                }
            }
        });
    }

    public void Dispose()
    {
        if (_data != null) NativeMemory.AlignedFree(_data);
        _data = null;
    }
}
