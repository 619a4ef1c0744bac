using System.CommandLine;
using GptJx.Tensors;

namespace GptJx.Cli;

/// <summary>Options shared by several commands, and the error handling every command uses.</summary>
internal static class CommonOptions
{
    public static readonly Option<bool> Verbose = new("--verbose", "-v")
    {
        Description = "Print details and, on failure, the full error",
        Recursive = true,
    };

    public static Option<DirectoryInfo> Model(bool required = true) => new("--model", "-m")
    {
        Description = "Checkpoint folder (config.json, *.safetensors or pytorch_model.bin, tokenizer files)",
        Required = required,
    };

    public static Option<string> Device() => new("--device")
    {
        Description = "Where to run: auto (CUDA if available, else CPU), cpu or cuda[:N]",
        DefaultValueFactory = _ => "auto",
    };

    public static Option<string?> DType() => new("--dtype")
    {
        Description = "Weight type: fp32, fp16 or bf16 (default: the checkpoint's)",
    };

    public static DType? ParseDType(string? text)
    {
        if (text is null) return null;
        if (!DTypeExtensions.TryParse(text, out var type)) throw new UsageException($"--dtype '{text}' is not one of fp32, fp16, bf16");
        return type;
    }

    public static int[] ParseIds(string text)
    {
        var parts = text.Split([',', ' '], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var ids = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!int.TryParse(parts[i], out ids[i]) || ids[i] < 0)
                throw new UsageException($"--ids: '{parts[i]}' is not a token id (a non-negative integer)");
        if (ids.Length == 0) throw new UsageException("--ids: no token ids given");
        return ids;
    }

    /// <summary>Runs a command body: errors become one line on stderr and exit code 1 (the stack with --verbose).</summary>
    public static async Task<int> Run(ParseResult parse, Func<Task<int>> body)
    {
        try
        {
            return await body();
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine("cancelled");
            return 130;
        }
        catch (Exception e)
        {
            Console.Out.Flush();
            Console.Error.WriteLine($"error: {Describe(e)}");
            if (parse.GetValue(Verbose)) Console.Error.WriteLine(e);
            return e is UsageException ? 2 : 1;
        }
    }

    public static Task<int> Run(ParseResult parse, Func<int> body) => Run(parse, () => Task.FromResult(body()));

    private static string Describe(Exception e) => e switch
    {
        ArgumentOutOfRangeException a when a.Message.Contains(" (Parameter") => a.Message[..a.Message.IndexOf(" (Parameter", StringComparison.Ordinal)],
        ArgumentException a when a.Message.Contains(" (Parameter") => a.Message[..a.Message.IndexOf(" (Parameter", StringComparison.Ordinal)],
        _ => e.Message.ReplaceLineEndings(" "),
    };
}

/// <summary>A bad command line (exit code 2).</summary>
internal sealed class UsageException(string message) : Exception(message);
