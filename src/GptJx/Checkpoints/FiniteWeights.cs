using System.Runtime.InteropServices;
using GptJx.Tensors;

namespace GptJx.Checkpoints;

/// <summary>
/// Weights must be finite: one NaN or infinity in a weight makes every logit NaN. They are
/// refused at load, naming the tensor and the element, by whoever reads the weights anyway
/// (a backend that packs them, see <see cref="Backends.IFiniteWeightCheck"/>, else the binder).
/// </summary>
public static class FiniteWeights
{
    /// <summary>Throws when an element of <paramref name="tensor"/> is NaN or infinite.</summary>
    public static void Require(TensorData tensor)
    {
        long at = FiniteScan.FirstNonFinite(tensor.Bytes, tensor.Info.DType);
        if (at >= 0) throw NotFinite(tensor.Info, at, HalfConvert.Read(tensor.Bytes, tensor.Info.DType, at), tensor.Info.DType);
    }

    /// <summary>Throws when one of <paramref name="values"/>, <paramref name="tensor"/> read as fp32, is NaN or infinite.</summary>
    public static void Require(TensorInfo tensor, ReadOnlySpan<float> values)
    {
        long at = FiniteScan.FirstNonFinite(MemoryMarshal.AsBytes(values), DType.F32);
        if (at >= 0) throw NotFinite(tensor, at, values[(int)at], DType.F32);
    }

    /// <summary>
    /// The error for element <paramref name="element"/> of <paramref name="tensor"/>, which holds
    /// <paramref name="value"/> and is kept as <paramref name="keptAs"/> (a finite value may overflow it).
    /// </summary>
    public static CheckpointException NotFinite(TensorInfo tensor, long element, float value, DType keptAs) =>
        new(tensor.File, tensor.Name, float.IsFinite(value)
            ? $"element {element} is {value}, beyond the range of {keptAs.Name()}, the type the weights are kept in; weights must be finite"
            : $"element {element} is {value}; weights must be finite");
}
