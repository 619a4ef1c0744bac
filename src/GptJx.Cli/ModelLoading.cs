using GptJx.Cuda;

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
        try
        {
            return ModelLoader.Load(model.FullName, device, CommonOptions.ParseDType(dtype), options, sequences, context,
                note: n => Console.Error.WriteLine($"note: {n}"));
        }
        catch (ArgumentException e) when (e.ParamName == "device")
        {
            throw new UsageException(e.Message[..e.Message.IndexOf(" (Parameter", StringComparison.Ordinal)]);
        }
    }
}
