using GptJx.Tensors;

namespace GptJx.Backends.Cpu;

/// <summary>An fp32 activation buffer in a pinned managed array.</summary>
internal sealed class CpuTensor : ITensor
{
    public CpuTensor(int capacityRows, int columns)
    {
        CapacityRows = capacityRows;
        Columns = columns;
        Rows = capacityRows;
        Data = GC.AllocateUninitializedArray<float>(checked(capacityRows * columns), pinned: true);
    }

    public float[] Data { get; }
    public int Rows { get; private set; }
    public int Columns { get; }
    public int CapacityRows { get; }
    public DType Type => DType.F32;

    public Span<float> Active => Data.AsSpan(0, Rows * Columns);

    public Span<float> Row(int row) => Data.AsSpan(row * Columns, Columns);

    public void SetRows(int rows)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(rows, CapacityRows);
        Rows = rows;
    }

    public void Dispose() { }
}
