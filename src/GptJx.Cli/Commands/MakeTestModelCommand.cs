using System.CommandLine;
using GptJx.Model;
using GptJx.Tensors;
using GptJx.TestModels;

namespace GptJx.Cli.Commands;

internal static class MakeTestModelCommand
{
    public static Command Create()
    {
        var output = new Option<DirectoryInfo>("--out", "-o") { Description = "Folder to write the checkpoint into", Required = true };
        var preset = new Option<string>("--preset") { Description = "tiny (a few MB) or gpt-jx-3b (the full-size architecture, 5.3 GB at 16-bit)", DefaultValueFactory = _ => "tiny" };
        var layers = new Option<int?>("--layers") { Description = "Override the number of layers" };
        var width = new Option<int?>("--width") { Description = "Override the model width" };
        var heads = new Option<int?>("--heads") { Description = "Override the number of heads" };
        var ffn = new Option<int?>("--ffn") { Description = "Override the feed-forward width" };
        var vocab = new Option<int?>("--vocab") { Description = "Override the vocabulary size" };
        var context = new Option<int?>("--context") { Description = "Override the context length" };
        var dtype = new Option<string>("--dtype") { Description = "fp32, fp16 or bf16", DefaultValueFactory = _ => "bf16" };
        var format = new Option<string>("--format") { Description = "safetensors, sharded or bin", DefaultValueFactory = _ => "safetensors" };
        var untied = new Option<bool>("--untied") { Description = "Write a separate lm_head.weight" };
        var seed = new Option<ulong>("--seed") { Description = "Seed of the random weights", DefaultValueFactory = _ => 1 };
        var command = new Command("make-test-model", "Write a random-weight GPT-JX checkpoint in the published layout, with tokenizer files")
        {
            output, preset, layers, width, heads, ffn, vocab, context, dtype, format, untied, seed,
        };
        command.SetAction((parse, _) => CommonOptions.Run(parse, () =>
        {
            var config = ModelConfig.Preset(parse.GetValue(preset)!);
            int vocabulary = Positive(parse.GetValue(vocab), "--vocab") ?? config.VocabularySize;
            int endOfText = Math.Min(config.EosTokenId, vocabulary - 1);   // GPT-2's end-of-text, or the last id of a cut vocabulary
            config = config with
            {
                Layers = Positive(parse.GetValue(layers), "--layers") ?? config.Layers,
                Width = Positive(parse.GetValue(width), "--width") ?? config.Width,
                Heads = Positive(parse.GetValue(heads), "--heads") ?? config.Heads,
                FeedForwardWidth = Positive(parse.GetValue(ffn), "--ffn") ?? config.FeedForwardWidth,
                VocabularySize = vocabulary,
                ContextLength = Positive(parse.GetValue(context), "--context") ?? config.ContextLength,
                BosTokenId = endOfText,
                EosTokenId = endOfText,
                TieWordEmbeddings = !parse.GetValue(untied),
            };
            if (config.Width % config.Heads != 0) throw new UsageException($"--heads {config.Heads} must divide --width {config.Width}");
            var type = CommonOptions.ParseDType(parse.GetValue(dtype))!.Value;
            var kind = parse.GetValue(format) switch
            {
                "safetensors" => CheckpointFormat.SafeTensors,
                "sharded" => CheckpointFormat.Sharded,
                "bin" => CheckpointFormat.PyTorchBin,
                var f => throw new UsageException($"--format '{f}' is not one of safetensors, sharded, bin"),
            };
            var dir = parse.GetValue(output)!.FullName;
            long total = TestModel.Tensors(config, type).Sum(t => t.ByteLength);
            var progress = new TerminalProgress("writing");
            var started = DateTime.UtcNow;
            TestModel.Write(dir, config, type, kind, parse.GetValue(seed), new Progress<long>(b => progress.Report((double)b / total)));
            progress.Report(1);
            Console.Out.WriteLine($"wrote {dir}: {config.ParameterCount:N0} parameters, {total / 1e9:F2} GB {type.Name()} {parse.GetValue(format)} in {(DateTime.UtcNow - started).TotalSeconds:F1} s");
            return 0;
        }));
        return command;
    }

    private static int? Positive(int? value, string name) =>
        value is int v && v <= 0 ? throw new UsageException($"{name} must be positive") : value;
}
