using System.CommandLine;
using GptJx.Generation;
using GptJx.Model;
using GptJx.Tensors;

namespace GptJx.Cli.Commands;

/// <summary>
/// Runs the CPU reference backend and another backend on the same tokens and compares
/// the residual stream after every layer, the logits, and a greedy continuation.
/// </summary>
internal static class VerifyCommand
{
    // Relative L2 error allowed per weight/activation type: fp32 matches the reference
    // closely; 16-bit activations lose about 2^-11 (fp16) or 2^-8 (bf16) per rounding,
    // which accumulates over layers.
    public static double Tolerance(DType type) => type switch
    {
        DType.F32 => 1e-4,
        DType.F16 => 1e-2,
        _ => 4e-2,
    };

    public static Command Create()
    {
        var model = CommonOptions.Model();
        var device = CommonOptions.Device();
        device.DefaultValueFactory = _ => "cuda";
        var dtype = CommonOptions.DType();
        var text = new Option<string>("--text") { Description = "Text to run (tokenized)", DefaultValueFactory = _ => "The quick brown fox jumps over the lazy dog. In 1492, Columbus sailed the ocean blue; 2 + 2 = 4." };
        var greedy = new Option<int>("--greedy-tokens") { Description = "Greedy tokens that must agree", DefaultValueFactory = _ => 32 };
        var command = new Command("verify", "Compare a backend against the CPU reference: every layer, the logits, greedy tokens")
        {
            model, device, dtype, text, greedy,
        };
        command.SetAction((parse, _) => CommonOptions.Run(parse, () =>
        {
            var dir = parse.GetValue(model)!;
            using var other = ModelLoading.Load(dir, parse.GetValue(device)!, parse.GetValue(dtype));
            using var reference = ModelLoading.Load(dir, "cpu", other.Backend.WeightType.Name());
            return Run(other, reference, parse.GetValue(text)!, parse.GetValue(greedy), Console.Out);
        }));
        return command;
    }

    /// <summary>
    /// Runs <paramref name="other"/> and the CPU <paramref name="reference"/> (same checkpoint, same weight type)
    /// on the tokens of <paramref name="text"/>, prints one row per layer, the logits and the greedy tokens,
    /// and returns the exit code: 0 when everything is within tolerance, 1 otherwise.
    /// </summary>
    public static int Run(GptJxModel other, GptJxModel reference, string text, int greedyTokens, TextWriter output)
    {
        var type = other.Backend.WeightType;
        double tolerance = Tolerance(other.Backend.ComputeType == DType.F32 ? type : other.Backend.ComputeType);
        var ids = reference.Tokenizer.Encode(text).Where(id => id < reference.VocabularySize).Take(Math.Min(other.MaxRowsPerForward, reference.Config.ContextLength)).ToArray();
        if (ids.Length == 0) throw new UsageException("--text gives no tokens inside the model's vocabulary");
        var expected = ForwardTrace.Run(reference, ids);
        var actual = ForwardTrace.Run(other, ids);

        output.WriteLine($"verify {other.Backend.Name} against {reference.Backend.Name}: {ids.Length} tokens, weights {type.Name()}, tolerance {tolerance:G2} (relative L2)");
        output.WriteLine($"{"stage",-10} {"rel. error",12} {"max |diff|",12}  result");
        bool ok = true;
        void Row(string stage, float[] a, float[] b)
        {
            double rel = ForwardTrace.RelativeError(a, b);
            double max = 0;
            for (int i = 0; i < a.Length; i++) max = Math.Max(max, Math.Abs(a[i] - b[i]));
            bool pass = rel <= tolerance && !double.IsNaN(rel);
            ok &= pass;
            output.WriteLine($"{stage,-10} {rel,12:E3} {max,12:E3}  {(pass ? "ok" : "FAIL")}");
        }
        for (int l = 0; l < expected.Layers.Length; l++) Row($"layer {l}", actual.Layers[l], expected.Layers[l]);
        Row("logits", actual.Logits, expected.Logits);

        int v = reference.VocabularySize, agree = 0;
        for (int p = 0; p < ids.Length; p++)
            if (Sampler.ArgMax(actual.Logits.AsSpan(p * v, v)) == Sampler.ArgMax(expected.Logits.AsSpan(p * v, v))) agree++;
        output.WriteLine($"top-1 agreement over positions: {agree}/{ids.Length}");

        if (greedyTokens > 0)
        {
            var options = new GenerationOptions { MaxNewTokens = greedyTokens, StopAtEndOfText = false };
            var prompt = ids.Take(8).ToArray();
            var a = TextGenerator.Generate(other, prompt, options).Select(t => t.Id).ToArray();
            var b = TextGenerator.Generate(reference, prompt, options).Select(t => t.Id).ToArray();
            int same = 0;
            while (same < Math.Min(a.Length, b.Length) && a[same] == b[same]) same++;
            bool pass = same == b.Length;
            ok &= pass;
            output.WriteLine($"greedy tokens identical: {same}/{b.Length}  {(pass ? "ok" : "FAIL")}");
        }
        output.WriteLine(ok ? "PASS" : "FAIL");
        return ok ? 0 : 1;
    }
}
