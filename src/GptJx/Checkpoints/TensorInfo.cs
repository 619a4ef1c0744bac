using GptJx.Tensors;

namespace GptJx.Checkpoints;

/// <summary>
/// One tensor as a checkpoint stores it: name, element type, shape (row-major,
/// contiguous) and the file that holds its bytes.
/// </summary>
public sealed record TensorInfo(string Name, DType DType, long[] Shape, string File)
{
    /// <summary>Most dimensions a checkpoint tensor may have: far more than any weight, and a bound on the work a hostile shape can cause.</summary>
    public const int MaxRank = 16;

    public long ElementCount => Shape.Aggregate(1L, (a, b) => a * b);
    public long ByteLength => ElementCount * DType.Size();
    public string ShapeText => "[" + string.Join(", ", Shape) + "]";
}
