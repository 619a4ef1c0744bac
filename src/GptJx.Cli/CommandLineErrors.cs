using System.CommandLine;
using System.CommandLine.Parsing;

namespace GptJx.Cli;

/// <summary>
/// A command line the parser refused, said in one line that names the offending option, value or
/// command (the caller prints it and exits 2). Help is printed only for --help.
/// </summary>
internal static class CommandLineErrors
{
    /// <summary>The error of <paramref name="parse"/>, or null when the command may run (or --help / --version was asked for).</summary>
    public static string? Describe(ParseResult parse)
    {
        if (parse.Action is { ClearsParseErrors: true }) return null;   // --help, --version
        var result = parse.CommandResult;
        string command = CommandPath(result);
        string seeHelp = $"see {command} --help";

        if ((OptionTakenAsArgument(parse) ?? parse.UnmatchedTokens.FirstOrDefault(IsOptionLike)) is { } unknown)
            return $"unknown option '{unknown}' for {command} ({seeHelp})";
        if (parse.UnmatchedTokens.Count > 0)
            return result.Command.Subcommands.Count > 0
                ? $"unknown command '{parse.UnmatchedTokens[0]}' ({seeHelp})"
                : $"unexpected argument '{parse.UnmatchedTokens[0]}' for {command} ({seeHelp})";
        if (parse.Errors.Count == 0) return null;

        foreach (var error in parse.Errors)
        {
            if (error.SymbolResult is not OptionResult option) continue;
            string name = option.Option.Name;
            if (option.IdentifierTokenCount == 0) return $"{name} is required ({seeHelp})";
            return option.Tokens.Count == 0 ? $"{name} needs a value" : $"{name}: '{option.Tokens[0].Value}' is not {Kind(option.Option.ValueType)}";
        }
        foreach (var argument in result.Command.Arguments)
            if (argument.Arity.MinimumNumberOfValues > 0 && (parse.GetResult(argument)?.Tokens.Count ?? 0) == 0)
                return $"{command} needs a {argument.Name} ({seeHelp})";
        if (result.Command.Subcommands.Count > 0) return $"no command given ({seeHelp})";
        return parse.Errors[0].Message;
    }

    private static bool IsOptionLike(string token) => token.Length > 1 && token[0] == '-';

    /// <summary>
    /// An unknown option the parser took as a command argument's value (`generate --bogus` would
    /// otherwise continue the prompt "--bogus"); arguments after "--" are taken as written.
    /// </summary>
    private static string? OptionTakenAsArgument(ParseResult parse)
    {
        var tokens = parse.Tokens;
        int doubleDash = tokens.Select((t, i) => (t, i)).FirstOrDefault(p => p.t.Type == TokenType.DoubleDash, (null!, tokens.Count)).i;
        foreach (var argument in parse.CommandResult.Children.OfType<ArgumentResult>())
            foreach (var token in argument.Tokens)
            {
                int at = tokens.Select((t, i) => (t, i)).FirstOrDefault(p => ReferenceEquals(p.t, token), (null!, -1)).i;
                if (IsOptionLike(token.Value) && at < doubleDash) return token.Value;
            }
        return null;
    }

    private static string CommandPath(CommandResult result) =>
        result.Parent is CommandResult parent ? $"{CommandPath(parent)} {result.Command.Name}" : result.Command.Name;

    private static string Kind(Type type) => (Nullable.GetUnderlyingType(type) ?? type) switch
    {
        var t when t == typeof(int) || t == typeof(long) => "an integer",
        var t when t == typeof(uint) || t == typeof(ulong) => "a non-negative integer",
        var t when t == typeof(float) || t == typeof(double) => "a number",
        var t when t == typeof(bool) => "true or false",
        var t when t == typeof(DirectoryInfo) || t == typeof(FileInfo) => "a path",
        _ => "a valid value",
    };
}
