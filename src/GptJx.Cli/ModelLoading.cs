using System.CommandLine;
using GptJx.Backends;
using GptJx.Cuda;
using GptJx.Model;
using GptJx.Tensors;

namespace GptJx.Cli;

/// <summary>Picks the backend for --device and loads a model onto it, with progress and notes on stderr.</summary>
internal static class ModelLoading
{
    public static GptJxModel Load(ParseResult parse, DirectoryInfo model, string device, string? dtype, int prefillChunk = 256, int slots = 1)
    {
        if (!model.Exists) throw new UsageException($"--model: folder '{model.FullName}' does not exist");
        var config = ModelConfig.Load(model.FullName);
        var backend = CreateBackend(device, CommonOptions.ParseDType(dtype), config, prefillChunk, slots);
        var loaded = GptJxModel.Load(model.FullName, backend, new ModelLoadOptions
        {
            PrefillChunk = prefillChunk,
            Progress = new TerminalProgress("loading"),
            Warning = message => Console.Error.WriteLine($"warning: {message}"),
        });
        if (loaded.Backend is CudaBackend cuda)
        {
            var stats = cuda.FinishLoading();
            if (parse.GetValue(CommonOptions.Verbose)) Console.Error.WriteLine($"loaded onto {cuda.Name}: {stats}");
        }
        return loaded;
    }

    public static IBackend CreateBackend(string device, DType? type, ModelConfig config, int maxRows, int slots = 1)
    {
        try
        {
            return DeviceSelector.Create(device, type, config, maxRows, slots, note: n => Console.Error.WriteLine($"note: {n}"));
        }
        catch (ArgumentException e) when (e.ParamName == "device")
        {
            throw new UsageException(e.Message[..e.Message.IndexOf(" (Parameter", StringComparison.Ordinal)]);
        }
    }
}
