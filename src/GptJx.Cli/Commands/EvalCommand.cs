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
        var invalidUtf8 = TextFile.InvalidUtf8Option();
        var json = new Option<bool>("--json") { Description = "Print JSON instead of text" };
        var command = new Command("eval", "Perplexity of a text (token count, mean negative log-likelihood, perplexity)")
        {
            model, device, dtype, file, invalidUtf8, context, json,
        };
        command.SetAction((parse, _) => CommonOptions.Run(parse, () =>
        {
            string text = TextFile.Read(parse.GetValue(file)!, parse.GetValue(invalidUtf8)!);
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
