using System.Runtime.InteropServices;
using System.Text.Json;
using GptJx.Model;
using GptJx.Tensors;
using GptJx.TestModels;
using GptJx.Tokenization;

namespace GptJx.Tests.Generation;

/// <summary>
/// A checkpoint (GPT-2 vocabulary) whose logits are the same at every position: end-of-text 8 above
/// every other token, which all tie at 0. Greedy decoding ends at once; sampling at temperature 1 ends
/// each step with probability e^8 / (e^8 + 50256) = 0.056. Every weight is zero except the end-of-text
/// embedding (a unit vector e) and the final LayerNorm's bias (e scaled so that the end-of-text logit is 8;
/// the LayerNorm's gain is 0, so the layers below do not matter).
/// </summary>
internal static class EndOfTextModel
{
    public static readonly ModelConfig Shape = ModelConfig.Tiny with { Layers = 1, Width = 32, Heads = 4, FeedForwardWidth = 64, ContextLength = 64 };

    public const int EndOfText = 50256;

    public const float EndOfTextLogit = 8f;

    public static void Write(string directory)
    {
        var config = TestModel.Config(Shape, DType.F32);
        double logitScale = Shape.LogitScale;
        float unit = 1f / MathF.Sqrt(Shape.Width);
        // Stored slopes left out: the ALiBi formula applies (and attention sees only zeros anyway).
        var tensors = TestModel.Tensors(Shape, DType.F32).Where(t => !t.Name.EndsWith("slopes", StringComparison.Ordinal)).ToList();
        CheckpointWriter.Write(directory, CheckpointFormat.SafeTensors, tensors, (spec, bytes) =>
        {
            var values = MemoryMarshal.Cast<byte, float>(bytes);
            if (spec.Name == "transformer.wte.weight") values.Slice(EndOfText * Shape.Width, Shape.Width).Fill(unit);
            else if (spec.Name == "transformer.ln_f.bias") values.Fill((float)(EndOfTextLogit / logitScale) * unit);
        });
        File.WriteAllText(Path.Combine(directory, "config.json"), config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        Gpt2Tokenizer.Default.WriteFiles(directory);
    }
}
