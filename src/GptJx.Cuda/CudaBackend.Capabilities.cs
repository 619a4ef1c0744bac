using GptJx.Backends;

namespace GptJx.Cuda;

/// <summary>
/// The optional engine capabilities, mapped onto CUDA: a recorded forward call is a CUDA graph,
/// tokens are picked by the argmax/sampling kernels so only their ids cross PCIe, and launches are counted.
/// </summary>
public sealed partial class CudaBackend : IForwardRecording, IDeviceTokenPicker, IKernelLaunchCounter
{
    public long KernelLaunches => _stream.Launches;

    void IForwardRecording.BeginRecording() => BeginCapture();

    IDisposable IForwardRecording.EndRecording() => EndCapture();

    void IForwardRecording.AbortRecording() => AbortCapture();

    void IForwardRecording.Replay(IDisposable recording, ReadOnlySpan<int> ids, AttentionBatch batch, ReadOnlySpan<int> logitRows) =>
        Replay((CudaGraph)recording, ids, batch, logitRows);

    public void PickTokens(ITensor logits, ReadOnlySpan<TokenDraw> draws, Span<int> tokens)
    {
        if (draws.Length != logits.Rows) throw new ArgumentException($"{draws.Length} draws for {logits.Rows} rows", nameof(draws));
        bool greedy = true;
        foreach (var d in draws) greedy &= d.Temperature == 0f;
        if (greedy)
        {
            Argmax(logits, tokens);
            return;
        }
        Span<SampleParams> parameters = draws.Length <= 256 ? stackalloc SampleParams[draws.Length] : new SampleParams[draws.Length];
        for (int i = 0; i < draws.Length; i++)
            parameters[i] = new SampleParams(draws[i].Temperature, draws[i].TopK, draws[i].TopP, draws[i].Uniform);
        Sample(logits, parameters, tokens);
    }
}
