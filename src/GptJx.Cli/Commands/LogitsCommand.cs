using System.CommandLine;
using System.Globalization;
using System.Text;

namespace GptJx.Cli.Commands;

internal static class LogitsCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var device = CommonOptions.Device();
        var dtype = CommonOptions.DType();
        var ids = new Option<string>("--ids") { Description = "Comma-separated token ids", Required = true };
        var all = new Option<bool>("--all-positions") { Description = "Print the logits of every position, not just the last" };
        var command = new Command("logits", "Print the next-token logits for token ids as JSON {\"ids\":[...],\"logits\":[...]}")
        {
            model, device, dtype, ids, all,
        };
        command.SetAction((parse, _) => CommonOptions.Run(parse, () =>
        {
            var tokens = CommonOptions.ParseIds(parse.GetValue(ids)!);
            using var m = ModelLoading.Load(parse.GetValue(model)!, parse.GetValue(device)!, parse.GetValue(dtype));
            int v = m.VocabularySize;
            bool allPositions = parse.GetValue(all);
            using var sequence = m.CreateSequence(Math.Min(m.Config.ContextLength, tokens.Length));
            var logits = new float[(allPositions ? tokens.Length : 1) * v];
            if (allPositions) sequence.AppendAll(tokens, logits);
            else sequence.Append(tokens, logits);

            var json = new StringBuilder("{\"ids\":[").AppendJoin(',', tokens).Append("],\"logits\":");
            if (allPositions)
            {
                json.Append('[');
                for (int p = 0; p < tokens.Length; p++) AppendArray(json.Append(p > 0 ? "," : ""), logits.AsSpan(p * v, v));
                json.Append(']');
            }
            else AppendArray(json, logits);
            Console.Out.WriteLine(json.Append('}'));
            return 0;
        }));
        return command;
    }

    private static void AppendArray(StringBuilder json, ReadOnlySpan<float> values)
    {
        json.Append('[');
        for (int i = 0; i < values.Length; i++)
        {
            if (i > 0) json.Append(',');
            json.Append(values[i].ToString("R", CultureInfo.InvariantCulture));
        }
        json.Append(']');
    }
}
