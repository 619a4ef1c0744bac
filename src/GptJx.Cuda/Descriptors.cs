using System.Runtime.InteropServices;

namespace GptJx.Cuda;

/// <summary>One sequence of an attention batch as the kernels read it (struct SequenceDesc in kernels/common.cuh, 20 bytes).</summary>
[StructLayout(LayoutKind.Sequential, Pack = 4)]
public struct SequenceDescriptor
{
    public int Slot;
    public int Start;
    public int FirstRow;
    public int Length;
    public float AlibiScale;
}

/// <summary>Per-row sampling parameters (struct SampleParams in kernels/sampling.cu, 16 bytes).</summary>
[StructLayout(LayoutKind.Sequential, Pack = 4)]
public struct SampleParams
{
    /// <summary>Softmax temperature; 0 or less picks the argmax.</summary>
    public float Temperature;
    /// <summary>Keep the K most likely tokens (0 = all).</summary>
    public int TopK;
    /// <summary>Keep the smallest set whose probability reaches P (1 = all).</summary>
    public float TopP;
    /// <summary>A uniform random number in [0, 1) drawn by the caller (keeps runs reproducible from the host's seed).</summary>
    public float Uniform;

    public SampleParams(float temperature, int topK, float topP, float uniform)
    {
        Temperature = temperature;
        TopK = topK;
        TopP = topP;
        Uniform = uniform;
    }
}
