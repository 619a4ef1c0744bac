using GptJx.Backends.Cpu;
using GptJx.Model;
using GptJx.Tensors;
using GptJx.TestModels;

namespace GptJx.Tests;

/// <summary>Small random-weight models written once per test run (full GPT-2 vocabulary, so real text works).</summary>
internal static class TestModels
{
    public static readonly ModelConfig Shape = ModelConfig.Tiny with { Layers = 2, Width = 32, Heads = 4, FeedForwardWidth = 70, ContextLength = 64 };

    private static readonly Lazy<string> Small = new(() =>
    {
        var dir = Path.Combine(Path.GetTempPath(), $"gptjx-tests-small-{Environment.ProcessId}");
        TestModel.Write(dir, Shape, DType.BF16, CheckpointFormat.SafeTensors, seed: 5);
        AppDomain.CurrentDomain.ProcessExit += (_, _) => { try { Directory.Delete(dir, true); } catch (IOException) { } };
        return dir;
    });

    /// <summary>Folder of a 2-layer bf16 model with a 64-token context.</summary>
    public static string SmallModelDirectory => Small.Value;

    public static GptJxModel LoadSmall() => GptJxModel.Load(SmallModelDirectory, new CpuBackend());
}
