using GptJx.Backends;
using GptJx.Cuda;
using GptJx.Model;
using GptJx.Tensors;

namespace GptJx.Cli;

/// <summary>Loads a model for a command, with progress, warnings and notes on stderr.</summary>
internal static class ModelLoading
{
    public static GptJxModel Load(DirectoryInfo model, string device, string? dtype, int prefillChunk = 256, int sequences = 1, int? context = null)
    {
        if (!model.Exists) throw new UsageException($"--model: folder '{model.FullName}' does not exist");
        var options = new ModelLoadOptions
        {
            PrefillChunk = prefillChunk,
            Progress = new TerminalProgress("loading"),
            Warning = message => Console.Error.WriteLine($"warning: {message}"),
        };
        return ModelLoader.Load(model.FullName, device, CommonOptions.ParseDType(dtype), options, sequences, context, Note);
    }

    /// <summary>A backend for the model in <paramref name="directory"/>, sized for the given rows, sequences and context.</summary>
    public static IBackend CreateBackend(string device, DType? type, string directory, int maxRows, int sequences, int context) =>
        DeviceSelector.Create(device, type, ModelConfig.Load(directory), maxRows, sequences, context, Note);

    private static void Note(string message) => Console.Error.WriteLine($"note: {message}");
}
