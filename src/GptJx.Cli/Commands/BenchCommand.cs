using System.CommandLine;
using GptJx.Benchmarking;
using GptJx.Model;
using GptJx.Tensors;
using GptJx.TestModels;

namespace GptJx.Cli.Commands;

/// <summary>`gptjx bench`: a thin shell over <see cref="BenchmarkRunner"/>.</summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model(required: false);
        var preset = new Option<string?>("--preset") { Description = "Benchmark a random-weight model of this architecture instead of --model: gpt-jx-3b (full size) or tiny; written once to --cache-dir" };
        var cacheDir = new Option<DirectoryInfo?>("--cache-dir") { Description = "Where --preset models are kept (default: the user's local data folder, gptjx/models)" };
        var device = CommonOptions.Device();
        var dtype = CommonOptions.DType();
        var prompts = new Option<string?>("--prompt-tokens")
        {
            Description = $"Prompt lengths to prefill, comma-separated (default: those of {string.Join(',', BenchmarkOptions.DefaultPromptTokens)} that fit the model's context)",
        };
        var newTokens = new Option<int>("--new-tokens") { Description = "Tokens decoded per sequence", DefaultValueFactory = _ => 64 };
        var batches = new Option<string>("--batch") { Description = "Decode batch sizes (sequences decoded together), comma-separated", DefaultValueFactory = _ => "1,8" };
        var repeat = new Option<int>("--repeat") { Description = "Timed repetitions of each measurement (after a warm-up)", DefaultValueFactory = _ => 3 };
        var context = new Option<int?>("--decode-context") { Description = "Tokens in each sequence before decoding (default: the first prompt length, if the new tokens fit after it)" };
        var json = new Option<FileInfo?>("--json") { Description = "Also write the results as JSON to this file" };
        var noCeilings = new Option<bool>("--no-ceilings") { Description = "Skip the bandwidth and compute ceiling tests" };
        var command = new Command("bench", "Measure load, prefill and decode speed, peak memory, and the machine's bandwidth and compute ceilings")
        {
            model, preset, cacheDir, device, dtype, prompts, newTokens, batches, repeat, context, json, noCeilings,
        };
        command.SetAction((parse, _) => CommonOptions.Run(parse, () =>
        {
            var presetName = parse.GetValue(preset);
            var modelDir = parse.GetValue(model);
            if ((presetName is null) == (modelDir is null)) throw new UsageException("give either --model DIR or --preset NAME");
            var type = CommonOptions.ParseDType(parse.GetValue(dtype));
            string deviceName = parse.GetValue(device)!;
            var options = new BenchmarkOptions
            {
                PromptTokens = parse.GetValue(prompts) is { } lengths ? ParseList(lengths, "--prompt-tokens") : null,
                NewTokens = Positive(parse.GetValue(newTokens), "--new-tokens"),
                BatchSizes = ParseList(parse.GetValue(batches)!, "--batch"),
                Repeat = Positive(parse.GetValue(repeat), "--repeat"),
                DecodeContext = parse.GetValue(context) is int c ? Positive(c, "--decode-context") : null,
                MeasureCeilings = !parse.GetValue(noCeilings),
                Preset = presetName,
                Command = "gptjx " + string.Join(' ', Environment.GetCommandLineArgs().Skip(1)),
                Log = message => Console.Error.WriteLine(message),
            };
            if (modelDir is { Exists: false }) throw new UsageException($"--model: folder '{modelDir.FullName}' does not exist");
            // The lengths are checked against the model before a preset is written.
            options = options.FitTo(presetName is null ? ModelConfig.Load(modelDir!.FullName) : ModelConfig.Preset(presetName));
            string directory = presetName is null ? modelDir!.FullName : EnsurePreset(presetName, parse.GetValue(cacheDir));
            BenchmarkReport report;
            int sequences = options.BatchSizes.Max();
            int positions = Math.Max(options.PromptTokens!.Max(), options.DecodeContext!.Value + options.NewTokens + 1);
            try { report = BenchmarkRunner.Run(directory, () => ModelLoading.CreateBackend(deviceName, type, directory, options.PrefillChunk, sequences, positions), options); }
            catch (ArgumentException e) when (e is not InvalidArgumentException) { throw new UsageException(e.Message); }
            Console.Out.Write(report.ToTable());
            if (parse.GetValue(json) is { } file)
            {
                File.WriteAllText(file.FullName, report.ToJson() + "\n");
                Console.Out.WriteLine($"wrote {file.FullName}");
            }
            return 0;
        }));
        return command;
    }

    /// <summary>The preset's random-weight bf16 checkpoint, written on first use (kept out of any repository).</summary>
    private static string EnsurePreset(string name, DirectoryInfo? cacheDir)
    {
        var preset = ModelConfig.Preset(name);
        string root = cacheDir?.FullName ?? Path.Combine(
            Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData, Environment.SpecialFolderOption.Create), "gptjx", "models");
        string directory = Path.Combine(root, $"{name}-bf16");
        if (File.Exists(Path.Combine(directory, "config.json")))
        {
            var config = ModelConfig.Load(directory);
            // The same model if config.json reads back as the preset (the weights' type aside).
            if (config with { TorchDType = preset.TorchDType, UnknownKeys = preset.UnknownKeys } == preset)
            {
                Console.Error.WriteLine($"using the random-weight {name} model in {directory}");
                return directory;
            }
        }
        long bytes = TestModel.Tensors(preset, DType.BF16).Sum(t => t.ByteLength);
        Console.Error.WriteLine($"writing a random-weight {name} model ({bytes / 1e9:F2} GB bf16) to {directory} (once; reused by later runs)");
        var progress = new TerminalProgress("writing");
        TestModel.Write(directory, preset, DType.BF16, CheckpointFormat.SafeTensors, seed: 1, new Progress<long>(b => progress.Report((double)b / bytes)));
        progress.Report(1);
        return directory;
    }

    private static int[] ParseList(string text, string option)
    {
        var parts = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (parts.Length == 0) throw new UsageException($"{option}: no values given");
        return parts.Select(p => int.TryParse(p, out int v) && v > 0 ? v : throw new UsageException($"{option}: '{p}' is not a positive integer")).ToArray();
    }

    private static int Positive(int value, string option) => value > 0 ? value : throw new UsageException($"{option} must be positive");
}
