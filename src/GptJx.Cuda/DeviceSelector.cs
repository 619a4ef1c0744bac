using GptJx.Backends;
using GptJx.Backends.Cpu;
using GptJx.Model;
using GptJx.Tensors;

namespace GptJx.Cuda;

/// <summary>
/// Turns a device name (auto, cpu, cuda, cuda:N) into a backend sized for a model:
/// auto takes the GPU when one is usable and says so when it falls back to the CPU.
/// </summary>
public static class DeviceSelector
{
    /// <param name="device">auto, cpu, cuda or cuda:N.</param>
    /// <param name="weightType">Weight type; null = the checkpoint's (bf16 for an fp32 checkpoint on a GPU).</param>
    /// <param name="config">The model, to plan device memory before loading.</param>
    /// <param name="maxRows">Most prompt tokens per forward call (the prefill chunk).</param>
    /// <param name="slots">Sequences that will be decoded together; a forward call may carry one decode row for each beside a prefill chunk.</param>
    /// <param name="context">Positions per sequence (default: the model's context).</param>
    /// <param name="note">Receives one-line notes (the CPU fallback).</param>
    public static IBackend Create(string device, DType? weightType, ModelConfig config, int maxRows, int slots = 1, int? context = null, Action<string>? note = null)
    {
        string name = device.Trim().ToLowerInvariant();
        if (name == "cpu") return new CpuBackend(weightType);
        if (name == "auto")
        {
            var probe = CudaDevice.Probe();
            if (probe.IsAvailable) return CreateCuda(0, weightType, config, maxRows, slots, context);
            note?.Invoke($"CUDA not available ({probe.Reason}); running on the CPU");
            return new CpuBackend(weightType);
        }
        if (name == "cuda" || name.StartsWith("cuda:", StringComparison.Ordinal))
        {
            int ordinal = 0;
            if (name.Length > 4 && (!int.TryParse(name[5..], out ordinal) || ordinal < 0))
                throw new InvalidArgumentException(nameof(device), $"'{device}' is not cuda:N with N a device number");
            var probe = CudaDevice.Probe();
            if (!probe.IsAvailable) throw new InvalidOperationException($"--device {device}: CUDA is not available: {probe.Reason}");
            return CreateCuda(ordinal, weightType, config, maxRows, slots, context);
        }
        throw new InvalidArgumentException(nameof(device), $"'{device}' is not one of auto, cpu, cuda, cuda:N");
    }

    private static CudaBackend CreateCuda(int ordinal, DType? weightType, ModelConfig config, int maxRows, int slots, int? context)
    {
        var type = weightType ?? (config.TorchDType is DType.F16 ? DType.F16 : DType.BF16);
        if (type == DType.F32) throw new InvalidArgumentException(nameof(weightType), "fp32 is not supported on CUDA (use fp16 or bf16)");
        int rows = maxRows + slots;
        var plan = CudaMemoryPlan.Compute(config, type, slots, context ?? config.ContextLength, rows);
        return CudaBackend.Create(ordinal, type, new CudaBackendOptions { MaxRows = rows, MaxSequences = slots + 1 }, plan);
    }
}
