using System.CommandLine;
using GptJx.Generation;

namespace GptJx.Cli.Commands;

internal static class GenerateCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model(required: false);
        model.Description += ". Without it, a random-weight test model is made once and used (to try the engine with no weights at hand)";
        var device = CommonOptions.Device();
        var dtype = CommonOptions.DType();
        var maxNew = new Option<int>("--max-new-tokens", "-n") { Description = "Tokens to generate at most", DefaultValueFactory = _ => 128 };
        var temperature = new Option<float>("--temperature", "-t") { Description = "0 = greedy; higher = more random", DefaultValueFactory = _ => 0f };
        var topK = new Option<int>("--top-k") { Description = "Sample among the K most likely tokens (0 = off)" };
        var topP = new Option<float>("--top-p") { Description = "Sample among the most likely tokens totalling probability P (1 = off)", DefaultValueFactory = _ => 1f };
        var penalty = new Option<float>("--repetition-penalty") { Description = "Penalty for tokens already seen (1 = off)", DefaultValueFactory = _ => 1f };
        var seed = new Option<ulong?>("--seed") { Description = "Seed for sampling: the same seed gives the same text" };
        var stop = new Option<string[]>("--stop") { Description = "Stop before this text (repeatable)", AllowMultipleArgumentsPerToken = false };
        var prompt = new Argument<string>("prompt") { Description = "The text to continue" };

        var command = new Command("generate", "Continue a prompt, streaming the text to stdout")
        {
            model, device, dtype, maxNew, temperature, topK, topP, penalty, seed, stop, prompt,
        };
        command.SetAction((parse, cancel) => CommonOptions.Run(parse, async () =>
        {
            var options = new GenerationOptions
            {
                MaxNewTokens = parse.GetValue(maxNew),
                Temperature = parse.GetValue(temperature),
                TopK = parse.GetValue(topK),
                TopP = parse.GetValue(topP),
                RepetitionPenalty = parse.GetValue(penalty),
                Seed = parse.GetValue(seed),
                StopSequences = parse.GetValue(stop) ?? [],
            };
            options.Validate();
            using var m = ModelLoading.Load(parse.GetValue(model) ?? DemoModel.Ensure(), parse.GetValue(device)!, parse.GetValue(dtype));
            var stdout = Console.Out;
            await foreach (var token in m.GenerateAsync(parse.GetValue(prompt)!, options, cancel))
            {
                stdout.Write(token.Text);
                stdout.Flush();
            }
            stdout.WriteLine();
            return 0;
        }));
        return command;
    }
}
