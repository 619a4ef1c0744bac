using System.CommandLine;
using GptJx.Benchmarking;
using GptJx.Generation;
using GptJx.Serving;
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

    /// <summary>Refuses --ids outside a vocabulary of <paramref name="size"/> (the model's or the tokenizer's: <paramref name="whose"/>).</summary>
    public static void CheckIds(int[] ids, int size, string whose)
    {
        foreach (int id in ids)
            if (id >= size) throw new UsageException($"--ids: token id {id} is outside the {whose} vocabulary of {size}");
    }

    /// <summary>
    /// The option that sets each library parameter a command passes on as typed, so that a
    /// refused value is reported as the option the user wrote (exit code 2).
    /// </summary>
    private static readonly Dictionary<string, string> OptionOfParameter = new(StringComparer.Ordinal)
    {
        [nameof(GenerationOptions.MaxNewTokens)] = "--max-new-tokens",
        [nameof(GenerationOptions.Temperature)] = "--temperature",
        [nameof(GenerationOptions.TopK)] = "--top-k",
        [nameof(GenerationOptions.TopP)] = "--top-p",
        [nameof(GenerationOptions.RepetitionPenalty)] = "--repetition-penalty",
        [nameof(GenerationOptions.StopSequences)] = "--stop",
        [nameof(EngineOptions.MaxBatchSize)] = "--max-batch",
        [nameof(EngineOptions.MaxQueueLength)] = "--max-queue",
        [nameof(EngineOptions.PrefillChunk)] = "--prefill-chunk",
        [nameof(EngineOptions.MaxSequenceLength)] = "--max-seq-len",
        [nameof(EngineOptions.RequestTimeout)] = "--timeout",
        [nameof(BenchmarkOptions.PromptTokens)] = "--prompt-tokens",
        [nameof(BenchmarkOptions.NewTokens)] = "--new-tokens",
        [nameof(BenchmarkOptions.DecodeContext)] = "--decode-context",
        ["device"] = "--device",
        ["weightType"] = "--dtype",
        ["context"] = "--context",
        ["preset"] = "--preset",
        ["host"] = "--host",
    };

    /// <summary>Runs a command body: errors become one line on stderr and exit code 1, or 2 for a bad command line (the stack with --verbose).</summary>
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
        catch (InvalidArgumentException e) when (e.ParamName is { } name && OptionOfParameter.TryGetValue(name, out var option))
        {
            return Fail(parse, e, e.MessageFor(option), 2);
        }
        catch (Exception e)
        {
            return Fail(parse, e, e.Message, e is UsageException ? 2 : 1);
        }
    }

    public static Task<int> Run(ParseResult parse, Func<int> body) => Run(parse, () => Task.FromResult(body()));

    private static int Fail(ParseResult parse, Exception e, string message, int exitCode)
    {
        Console.Out.Flush();
        Console.Error.WriteLine($"error: {message.ReplaceLineEndings(" ")}");
        if (parse.GetValue(Verbose)) Console.Error.WriteLine(e);
        return exitCode;
    }
}

/// <summary>A bad command line (exit code 2).</summary>
internal sealed class UsageException(string message) : Exception(message);
