using System.CommandLine;
using System.CommandLine.Help;
using GptJx.Cli;
using GptJx.Cli.Commands;

// The root is a plain command named as users type it, so that help and errors say `gptjx`
// (a RootCommand takes the assembly's name, GptJx.Cli).
var root = new Command("gptjx", "Run, inspect and benchmark GPT-JX models on the CPU or a CUDA GPU")
{
    new HelpOption(), new VersionOption(), CommonOptions.Verbose,
};
foreach (var command in new[]
{
    GenerateCommand.Create(), LogitsCommand.Create(), EvalCommand.Create(),
    TokenizeCommands.Tokenize(), TokenizeCommands.Detokenize(), InspectCommand.Create(), MakeTestModelCommand.Create(),
    VerifyCommand.Create(), BenchCommand.Create(), ServeCommand.Create(),
})
    root.Subcommands.Add(command);

var parse = root.Parse(args);
if (CommandLineErrors.Describe(parse) is { } error)
{
    Console.Error.WriteLine($"error: {error}");
    return 2;
}
return await parse.InvokeAsync();
