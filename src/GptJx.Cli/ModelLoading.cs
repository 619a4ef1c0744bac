using System.CommandLine;
using GptJx.Backends;
using GptJx.Backends.Cpu;
using GptJx.Tensors;

namespace GptJx.Cli;

/// <summary>Picks the backend for --device and loads a model onto it, with progress and warnings on stderr.</summary>
internal static class ModelLoading
{
    public static GptJxModel Load(ParseResult parse, DirectoryInfo model, string device, string? dtype, int prefillChunk = 256)
    {
        if (!model.Exists) throw new UsageException($"--model: folder '{model.FullName}' does not exist");
        var type = CommonOptions.ParseDType(dtype);
        var backend = CreateBackend(device, type, parse.GetValue(CommonOptions.Verbose));
        return GptJxModel.Load(model.FullName, backend, new ModelLoadOptions
        {
            PrefillChunk = prefillChunk,
            Progress = new TerminalProgress("loading"),
            Warning = message => Console.Error.WriteLine($"warning: {message}"),
        });
    }

    public static IBackend CreateBackend(string device, DType? type, bool verbose)
    {
        switch (device.Trim().ToLowerInvariant())
        {
            case "cpu":
            case "auto":
                return new CpuBackend(type);
            default:
                throw new UsageException($"--device '{device}' is not one of auto, cpu, cuda, cuda:N");
        }
    }
}
