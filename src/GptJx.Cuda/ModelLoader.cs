using GptJx.Model;
using GptJx.Tensors;

namespace GptJx.Cuda;

/// <summary>
/// The one-call way to load a model on a device: reads the config, creates the backend
/// for <c>auto</c>, <c>cpu</c>, <c>cuda</c> or <c>cuda:N</c> (with its memory plan),
/// binds the weights and finishes streaming them to the device.
/// </summary>
public static class ModelLoader
{
    /// <param name="directory">Checkpoint folder.</param>
    /// <param name="device">auto (CUDA when usable, else the CPU), cpu, cuda or cuda:N.</param>
    /// <param name="weightType">fp32 (CPU only), fp16 or bf16; null keeps the checkpoint's type.</param>
    /// <param name="options">Prefill chunk, progress, warnings.</param>
    /// <param name="sequences">Sequences that will be decoded together (KV-cache slots to plan for).</param>
    /// <param name="context">Positions per sequence to plan for (default: the model's context).</param>
    /// <param name="note">Receives one-line notes, such as the fallback to the CPU.</param>
    public static GptJxModel Load(string directory, string device = "auto", DType? weightType = null,
        ModelLoadOptions? options = null, int sequences = 1, int? context = null, Action<string>? note = null)
    {
        options ??= new ModelLoadOptions();
        options.Validate();
        var config = ModelConfig.Load(directory);
        var backend = DeviceSelector.Create(device, weightType, config, options.PrefillChunk, sequences, context, note);
        var model = GptJxModel.Load(directory, backend, options);
        if (model.Backend is CudaBackend cuda) note?.Invoke($"loaded onto {cuda.Name}: {cuda.LoadStatistics}");
        return model;
    }
}
