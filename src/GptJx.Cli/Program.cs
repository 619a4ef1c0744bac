using System.CommandLine;
using GptJx.Cli;
using GptJx.Cli.Commands;

var root = new RootCommand("gptjx: run, inspect and benchmark GPT-JX models on the CPU or a CUDA GPU");
root.Options.Add(CommonOptions.Verbose);
foreach (var command in new[]
{
    GenerateCommand.Create(), LogitsCommand.Create(), EvalCommand.Create(),
    TokenizeCommands.Tokenize(), TokenizeCommands.Detokenize(), InspectCommand.Create(), MakeTestModelCommand.Create(),
    VerifyCommand.Create(), BenchCommand.Create(), ServeCommand.Create(),
})
    root.Subcommands.Add(command);

return await root.Parse(args).InvokeAsync();
