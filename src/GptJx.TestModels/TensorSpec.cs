using GptJx.Tensors;

namespace GptJx.TestModels;

/// <summary>A tensor to be written: name, element type and row-major shape.</summary>
public sealed record TensorSpec(string Name, DType DType, long[] Shape)
{
    public long ElementCount => Shape.Aggregate(1L, (a, b) => checked(a * b));
    public long ByteLength => checked(ElementCount * DType.Size());
}

/// <summary>The on-disk layouts <see cref="CheckpointWriter"/> can produce.</summary>
public enum CheckpointFormat
{
    /// <summary>One <c>model.safetensors</c>.</summary>
    SafeTensors,

    /// <summary><c>model-0000i-of-0000n.safetensors</c> shards plus <c>model.safetensors.index.json</c>.</summary>
    Sharded,

    /// <summary>A <c>pytorch_model.bin</c> that torch.load reads.</summary>
    PyTorchBin,
}
