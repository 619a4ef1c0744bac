using System.CommandLine;
using System.Text.Json;
using GptJx.Generation;

namespace GptJx.Cli.Commands;

internal static class EvalCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var device = CommonOptions.Device();
        var dtype = CommonOptions.DType();
        var file = new Option<FileInfo>("--text-file") { Description = "UTF-8 text to score", Required = true };
        var context = new Option<int?>("--context") { Description = "Window length in tokens (default: the model's context)" };
        var json = new Option<bool>("--json") { Description = "Print JSON instead of text" };
        var command = new Command("eval", "Perplexity of a text (token count, mean negative log-likelihood, perplexity)")
        {
            model, device, dtype, file, context, json,
        };
        command.SetAction((parse, _) => CommonOptions.Run(parse, () =>
        {
            var path = parse.GetValue(file)!;
            if (!path.Exists) throw new UsageException($"--text-file: '{path.FullName}' does not exist");
            string text = File.ReadAllText(path.FullName);
            using var m = ModelLoading.Load(parse.GetValue(model)!, parse.GetValue(device)!, parse.GetValue(dtype));
            var ids = m.Encode(text);
            var result = Perplexity.Evaluate(m, ids, parse.GetValue(context), new TerminalProgress("scoring"));
            if (parse.GetValue(json))
                Console.Out.WriteLine(JsonSerializer.Serialize(new { tokens = result.Tokens, mean_nll = result.MeanNegativeLogLikelihood, perplexity = result.Perplexity }));
            else
                Console.Out.WriteLine($"tokens {result.Tokens}  mean NLL {result.MeanNegativeLogLikelihood:F4} nats  perplexity {result.Perplexity:F3}");
            return 0;
        }));
        return command;
    }
}
