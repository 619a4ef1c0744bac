using System.CommandLine;
using System.Text.Json;
using GptJx.Generation;

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
            CommonOptions.CheckIds(tokens, v, "model's");
            if (tokens.Length > m.Config.ContextLength)
                throw new UsageException($"--ids: {tokens.Length} ids exceed the model's context of {m.Config.ContextLength}");
            using var sequence = m.CreateSequence(tokens.Length);

            // Written as computed, a row at a time: all positions of a long input are
            // hundreds of megabytes of JSON, which never need to be in memory at once.
            using var stdout = Console.OpenStandardOutput();
            using var json = new Utf8JsonWriter(stdout);
            json.WriteStartObject();
            json.WriteStartArray("ids");
            foreach (int id in tokens) json.WriteNumberValue(id);
            json.WriteEndArray();
            if (parse.GetValue(all))
            {
                json.WriteStartArray("logits");
                int chunk = m.MaxRowsPerForward;
                var logits = new float[chunk * v];
                for (int start = 0; start < tokens.Length; start += chunk)
                {
                    int n = Math.Min(chunk, tokens.Length - start);
                    sequence.AppendAll(tokens.AsSpan(start, n), logits.AsSpan(0, n * v));
                    for (int row = 0; row < n; row++) WriteRow(json, logits.AsSpan(row * v, v), start + row);
                }
                json.WriteEndArray();
            }
            else
            {
                var logits = new float[v];
                sequence.Append(tokens, logits);
                json.WritePropertyName("logits");
                WriteRow(json, logits, tokens.Length - 1);
            }
            json.WriteEndObject();
            json.Flush();
            stdout.Write("\n"u8);
            return 0;
        }));
        return command;
    }

    /// <summary>One position's logits as a JSON array; JSON has no NaN or infinity, so those are an error naming the position.</summary>
    private static void WriteRow(Utf8JsonWriter json, ReadOnlySpan<float> logits, int position)
    {
        NonFiniteLogitsException.ThrowIfAny(logits, position);
        json.WriteStartArray();
        foreach (float value in logits) json.WriteNumberValue(value);
        json.WriteEndArray();
        json.Flush();
    }
}
