using GptJx.Model;
using GptJx.Tensors;
using GptJx.TestModels;

namespace GptJx.Cli;

/// <summary>
/// The model `gptjx generate` uses when no --model is given: the tiny random-weight
/// test model, written once to the user's local data folder. It shows the engine
/// working end to end; its text is random.
/// </summary>
internal static class DemoModel
{
    public static DirectoryInfo Ensure()
    {
        var root = Environment.GetEnvironmentVariable("GPTJX_DEMO_MODEL")
            ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData, Environment.SpecialFolderOption.Create), "gptjx", "models", "tiny");
        var dir = new DirectoryInfo(root);
        if (!File.Exists(Path.Combine(dir.FullName, "config.json")))
        {
            Console.Error.WriteLine($"note: no --model given: writing a random-weight test model to {dir.FullName} (pass --model DIR to run a real checkpoint)");
            TestModel.Write(dir.FullName, ModelConfig.Tiny, DType.BF16, CheckpointFormat.SafeTensors, seed: 1);
        }
        else
        {
            Console.Error.WriteLine($"note: no --model given: using the random-weight test model in {dir.FullName}");
        }
        return dir;
    }
}
