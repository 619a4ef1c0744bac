using System.CommandLine;
using GptJx.Checkpoints;
using GptJx.Model;
using GptJx.Tensors;

namespace GptJx.Cli.Commands;

internal static class InspectCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var context = new Option<int?>("--context") { Description = "Context length to size the KV cache for (default: the model's)" };
        var batch = new Option<int>("--batch") { Description = "Sequences to size the KV cache for", DefaultValueFactory = _ => 1 };
        var command = new Command("inspect", "Show a checkpoint's config, parameter count, dtype, sizes and memory needs") { model, context, batch };
        command.SetAction((parse, _) => CommonOptions.Run(parse, () =>
        {
            var dir = parse.GetValue(model)!;
            var config = ModelConfig.Load(dir.FullName);
            using var source = CheckpointLoader.Open(dir.FullName);
            long bytes = source.Tensors.Sum(t => t.ByteLength);
            var types = source.Tensors.GroupBy(t => t.DType).Select(g => $"{g.Key.Name()} ({g.Count()} tensors)");
            int ctx = parse.GetValue(context) ?? config.ContextLength;
            int sequences = parse.GetValue(batch);
            if (ctx < 1 || ctx > config.ContextLength) throw new UsageException($"--context must be 1..{config.ContextLength}");
            if (sequences < 1) throw new UsageException("--batch must be at least 1");
            var weightType = source.Tensors.FirstOrDefault()?.DType
                ?? throw new CheckpointException(source.Location, null, "holds no fp32, fp16 or bf16 tensors");
            double kv16 = 2.0 * config.Layers * config.Width * 2 * ctx * sequences;

            Console.Out.WriteLine($"model        {dir.FullName}");
            Console.Out.WriteLine($"checkpoint   {source.Location}");
            Console.Out.WriteLine($"layers       {config.Layers}   width {config.Width}   heads {config.Heads} x {config.HeadDim}   ffn {config.FeedForwardWidth}");
            Console.Out.WriteLine($"vocabulary   {config.VocabularySize}   context {config.ContextLength}   tied embeddings {config.TieWordEmbeddings}");
            Console.Out.WriteLine($"muP          embeddings x{config.EmbeddingScale}   logits x{config.LogitScale:G4} (alpha {config.OutputAlpha} * width scale {config.WidthScale})   q.k / d^{(config.ScaleQkDotByD ? "1" : "0.5")}");
            if (config.AlibiScaling is { } a) Console.Out.WriteLine($"alibi        linear scaling {(a.Factor is double f ? $"factor {f}" : $"train_seq_len {a.TrainSequenceLength}")}");
            Console.Out.WriteLine($"parameters   {config.ParameterCount:N0}");
            Console.Out.WriteLine($"tensors      {source.Tensors.Count}, {string.Join(", ", types)}");
            Console.Out.WriteLine($"weights      {Gb(bytes)} on disk");
            Console.Out.WriteLine($"memory       weights {Gb((double)config.ParameterCount * weightType.Size())} ({weightType.Name()})"
                + $" + KV cache {Gb(kv16)} at 16-bit / {Gb(2 * kv16)} at fp32 for {sequences} x {ctx} tokens"
                + $" ({2L * config.Layers * config.Width * 2:N0} bytes per token at 16-bit)");
            foreach (var key in config.UnknownKeys) Console.Error.WriteLine($"warning: config.json: unknown key '{key}'");
            return 0;
        }));
        return command;
    }

    private static string Gb(double bytes) => $"{bytes / 1e9:F2} GB";
}
