using System.CommandLine;
using System.Text.Json;
using GptJx.Tokenization;

namespace GptJx.Cli.Commands;

internal static class TokenizeCommands
{
    public static Command Tokenize()
    {
        var model = CommonOptions.Model(required: false);
        var text = new Option<string?>("--text") { Description = "Text to tokenize" };
        var file = new Option<FileInfo?>("--text-file") { Description = "UTF-8 file to tokenize" };
        var special = new Option<bool>("--parse-special") { Description = "Turn the literal text <|endoftext|> into the special token" };
        var invalidUtf8 = TextFile.InvalidUtf8Option();
        var json = new Option<bool>("--json") { Description = "Print JSON {\"ids\":[...],\"tokens\":[...]}" };
        var command = new Command("tokenize", "Print the GPT-2 token ids of a text") { model, text, file, invalidUtf8, special, json };
        command.SetAction((parse, _) => CommonOptions.Run(parse, () =>
        {
            string input = (parse.GetValue(text), parse.GetValue(file)) switch
            {
                (string t, null) => t,
                (null, FileInfo f) => TextFile.Read(f, parse.GetValue(invalidUtf8)!),
                _ => throw new UsageException("give exactly one of --text or --text-file"),
            };
            var tokenizer = Gpt2Tokenizer.Load(parse.GetValue(model)?.FullName);
            var ids = tokenizer.Encode(input, parse.GetValue(special));
            if (parse.GetValue(json))
            {
                var pieces = ids.Select(id => tokenizer.Decode([id])).ToArray();
                Console.Out.WriteLine(JsonSerializer.Serialize(new { ids, tokens = pieces }));
            }
            else Console.Out.WriteLine(string.Join(',', ids));
            return 0;
        }));
        return command;
    }

    public static Command Detokenize()
    {
        var model = CommonOptions.Model(required: false);
        var ids = new Option<string>("--ids") { Description = "Comma-separated token ids", Required = true };
        var command = new Command("detokenize", "Print the text of token ids") { model, ids };
        command.SetAction((parse, _) => CommonOptions.Run(parse, () =>
        {
            var tokenizer = Gpt2Tokenizer.Load(parse.GetValue(model)?.FullName);
            var tokens = CommonOptions.ParseIds(parse.GetValue(ids)!);
            CommonOptions.CheckIds(tokens, tokenizer.VocabularySize, "tokenizer's");
            Console.Out.WriteLine(tokenizer.Decode(tokens));
            return 0;
        }));
        return command;
    }
}
