using GptJx.Checkpoints;
using GptJx.Tensors;

namespace GptJx.Backends.Cpu;

internal sealed class CpuNorm : INorm
{
    public CpuNorm(TensorData gain, TensorData? bias)
    {
        Width = (int)gain.Info.ElementCount;
        Gain = new float[Width];
        HalfConvert.ToSingle(gain.Bytes, gain.Info.DType, Gain);
        FiniteWeights.Require(gain.Info, Gain);
        Bias = new float[Width];
        if (bias is TensorData b)
        {
            HalfConvert.ToSingle(b.Bytes, b.Info.DType, Bias);
            FiniteWeights.Require(b.Info, Bias);
        }
    }

    public int Width { get; }
    public float[] Gain { get; }
    public float[] Bias { get; }

    public void Dispose() { }
}
