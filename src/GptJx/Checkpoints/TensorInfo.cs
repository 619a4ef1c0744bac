using GptJx.Tensors;

namespace GptJx.Checkpoints;

/// <summary>
/// One tensor as a checkpoint stores it: name, element type, shape (row-major,
/// contiguous) and the file that holds its bytes.
/// </summary>
public sealed record TensorInfo(string Name, DType DType, long[] Shape, string File)
{
    public long ElementCount => Shape.Aggregate(1L, (a, b) => a * b);
    public long ByteLength => ElementCount * DType.Size();
    public string ShapeText => "[" + string.Join(", ", Shape) + "]";
}
