using GptJx.Backends;
using GptJx.Tensors;

namespace GptJx.Cuda;

/// <summary>An activation buffer in device memory, [CapacityRows, Columns] row-major.</summary>
internal sealed class CudaTensor : ITensor
{
    public CudaTensor(DeviceBuffer buffer, int capacityRows, int columns, DType type)
    {
        Buffer = buffer;
        CapacityRows = capacityRows;
        Columns = columns;
        Type = type;
        Rows = capacityRows;
    }

    public DeviceBuffer Buffer { get; }
    public ulong Pointer => Buffer.Pointer;
    public int Rows { get; private set; }
    public int Columns { get; }
    public int CapacityRows { get; }
    public DType Type { get; }
    public long ElementCount => (long)Rows * Columns;

    public void SetRows(int rows)
    {
        if (rows < 0 || rows > CapacityRows)
            throw new ArgumentOutOfRangeException(nameof(rows), rows, $"tensor holds at most {CapacityRows} rows");
        Rows = rows;
    }

    public void Dispose() => Buffer.Dispose();
}

internal sealed class CudaEmbedding(DeviceBuffer table, int rows, int columns, DType type) : IEmbedding
{
    public DeviceBuffer Table { get; } = table;
    public int Rows { get; } = rows;
    public int Columns { get; } = columns;
    public DType Type { get; } = type;
    public void Dispose() => Table.Dispose();
}

/// <summary>
/// A linear layer on the device: the weight as [out, <see cref="Ld"/>] rows whatever the checkpoint's
/// layout (InOut checkpoints are transposed while loading), so decode reads each output's weights
/// contiguously; <see cref="Ld"/> is the input width rounded up to 8 (zero padding) except for a head
/// that shares the embedding table. Bias in fp32, or none.
/// </summary>
internal sealed class CudaLinear : ILinear
{
    private readonly bool _sharedWeight;

    public CudaLinear(DeviceBuffer weight, DeviceBuffer? bias, int inFeatures, int outFeatures, int ld, WeightLayout layout, DType type, bool sharedWeight)
    {
        Ld = ld;
        Weight = weight;
        Bias = bias;
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        Layout = layout;
        Type = type;
        _sharedWeight = sharedWeight;
    }

    public DeviceBuffer Weight { get; }
    public DeviceBuffer? Bias { get; }
    public int InFeatures { get; }
    public int OutFeatures { get; }
    /// <summary>Layout of the checkpoint tensors it was loaded from (the device layout is always [out, Ld]).</summary>
    public WeightLayout Layout { get; }
    /// <summary>Row stride of the device weight, in elements.</summary>
    public int Ld { get; }
    public DType Type { get; }

    public void Dispose()
    {
        if (_sharedWeight) Weight.Release(); else Weight.Dispose();
        Bias?.Dispose();
    }
}

internal sealed class CudaNorm(DeviceBuffer gain, DeviceBuffer? bias, int width) : INorm
{
    public DeviceBuffer Gain { get; } = gain;
    public DeviceBuffer? Bias { get; } = bias;
    public int Width { get; } = width;

    public void Dispose()
    {
        Gain.Dispose();
        Bias?.Dispose();
    }
}

/// <summary>
/// Key/value cache: K and V each [layers][slots][heads][max_positions][head_dim] in the compute type,
/// plus the flash-decoding partials [slots][heads][max_splits][head_dim + 2] fp32.
/// </summary>
internal sealed class CudaKvCache : IKvCache
{
    public CudaKvCache(DeviceBuffer keys, DeviceBuffer values, DeviceBuffer partials, int layers, int slots, int maxPositions, int heads, int headDim, DType type)
    {
        Keys = keys;
        Values = values;
        Partials = partials;
        Layers = layers;
        Slots = slots;
        MaxPositions = maxPositions;
        Heads = heads;
        HeadDim = headDim;
        Type = type;
        MaxSplits = (maxPositions + CudaMemoryPlan.DecodeChunk - 1) / CudaMemoryPlan.DecodeChunk;
    }

    public DeviceBuffer Keys { get; }
    public DeviceBuffer Values { get; }
    public DeviceBuffer Partials { get; }
    public int Layers { get; }
    public int Slots { get; }
    public int MaxPositions { get; }
    public int Heads { get; }
    public int HeadDim { get; }
    public DType Type { get; }
    public int MaxSplits { get; }
    public long LayerBytes => (long)Slots * Heads * MaxPositions * HeadDim * Type.Size();

    public static long PartialBytes(int slots, int heads, int maxPositions, int headDim) =>
        (long)slots * heads * ((maxPositions + CudaMemoryPlan.DecodeChunk - 1) / CudaMemoryPlan.DecodeChunk) * (headDim + 2) * 4;

    public void Dispose()
    {
        Keys.Dispose();
        Values.Dispose();
        Partials.Dispose();
    }
}
